"""Liveness, readiness (really pings every dependency) and Prometheus metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from appliance.engine.remote.generator import OpenAIGenerator
from appliance.server.auth import ANY_KEY
from appliance.server.openapi import errors
from appliance.server.services import Services
from appliance.server.startup import start_error
from appliance.wire.api import Health, Readiness

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 2.0


class HealthController(Controller):
    tags = ("health",)
    include_in_schema = True

    @get(
        "/healthz",
        summary="The process is alive (no dependency checks; no key needed)",
        opt={"exclude_from_auth": True},
        security=[{}],
    )
    async def healthz(self) -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="Models loaded (or the external generation server answering) and store "
        "answering; 503 names the failing part with a code (the reason is in the log), or "
        "`starting` while the models load (no key needed)",
        opt={"exclude_from_auth": True},
        security=[{}],
        responses={503: ResponseSpec(Readiness, description="A part is not running.")},
    )
    async def readyz(self, state: State) -> Response[Readiness]:
        """Codes only (ok, loading, failed, not_running, unreachable, timeout, error): no
        key is needed here, so the reasons behind them (exception texts, paths, the
        generation server's address) go to the log, which an admin reads."""
        services: Services | None = getattr(state, "services", None)
        if services is None:  # still loading the models, or failed to (the start logs why)
            failed = start_error(state) is not None
            return Response(
                Readiness(
                    status="unavailable" if failed else "starting",
                    checks={"models": "failed" if failed else "loading"},
                ),
                status_code=HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": "2"},
            )
        generator = services.generator
        if isinstance(generator, OpenAIGenerator):  # GET <url>/models (cached 5 s; logs why not)
            chat = "ok" if await generator.check() == "ok" else "unreachable"
        else:
            chat = "ok" if generator.alive else "not_running"
        checks: dict[str, str] = {
            "embedding_model": "ok" if services.embedder.alive else "not_running",
            "chat_model": chat,
        }
        for name, ping in (
            ("vector_store", services.store.ping),
            ("journal", services.journal.ping),
        ):
            try:
                await asyncio.wait_for(ping(), PING_TIMEOUT_S)
                checks[name] = "ok"
            except TimeoutError:
                log.warning("readiness: the %s gave no answer within %ss", name, PING_TIMEOUT_S)
                checks[name] = "timeout"
            except Exception as exc:
                log.warning("readiness: the %s failed its ping: %s", name, exc)
                checks[name] = "error"
        ready = all(v == "ok" for v in checks.values())
        return Response(
            Readiness(status="ready" if ready else "unavailable", checks=checks),
            status_code=HTTP_200_OK if ready else HTTP_503_SERVICE_UNAVAILABLE,
        )

    @get(
        "/metrics",
        summary="Prometheus metrics (any key, or a security.metrics_scrapers address)",
        media_type=CONTENT_TYPE_LATEST,
        opt={"role": ANY_KEY},
        responses=errors(),
    )
    async def metrics(self, services: Services) -> Response[bytes]:
        m = services.metrics
        m.queue_depth.labels("embedding").set(services.embedder.queue_depth())
        m.queue_depth.labels("generation").set(services.generator.queue_depth())
        m.queue_depth.labels("store").set(services.store.queue_depth())
        if isinstance(services.generator, OpenAIGenerator):  # requests in flight to it
            m.slots_active.set(services.generator.active)
            m.slots_total.set(services.generator.slots)
        else:
            m.slots_active.set(services.engine.thread.active_generations)
            m.slots_total.set(services.engine.thread.slots)
        m.audit_dropped.set(services.audit.dropped)
        with contextlib.suppress(Exception):  # a slow store must not break the scrape
            m.store_points.set(await asyncio.wait_for(services.store.count(), PING_TIMEOUT_S))
        body = generate_latest(REGISTRY) + generate_latest(m.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)
