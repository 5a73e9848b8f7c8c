"""The API answers while the models load: /healthz at once, /readyz says "starting".

`serve` binds the port first and builds the services (models, store, journal) in a
background task of the lifespan, so a sysadmin or a load balancer sees a live process
within a second or two instead of a refused connection for the whole load. Until the
services exist, every route that needs them answers 503 `starting` with Retry-After;
if the start fails, the reason is logged and the server exits 1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from appliance.domain.errors import ApplianceError
from appliance.server.services import Services

log = logging.getLogger(__name__)


class Starting(ApplianceError):
    status = 503
    code = "starting"

    def __init__(self, detail: str = "the appliance is starting (loading its models)") -> None:
        super().__init__(f"{detail}; retry shortly", retry_after=2)


def running_services(state: Any) -> Services:
    """The services, or `Starting` while they are being built."""
    services: Services | None = getattr(state, "services", None)
    if services is None:
        raise Starting()
    return services


def start_error(state: Any) -> str | None:
    error: str | None = getattr(state, "start_error", None)
    return error


async def build_in_background(
    state: Any, build: Callable[[], Any], on_failure: Callable[[str], None] | None
) -> None:
    """Run `build()` (a coroutine factory) and publish its result as `state.services`."""
    try:
        services = await build()
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
        log.error("appliance cannot start: %s", reason)
        state.start_error = reason
        if on_failure is not None:
            on_failure(reason)
        return
    state.services = services
    log.info("appliance ready: %s", services.plan.explain())
