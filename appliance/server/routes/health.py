"""Liveness, readiness (really pings every dependency) and Prometheus metrics."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from prometheus_client import CONTENT_TYPE_LATEST

from appliance.server.auth import ANY_KEY
from appliance.server.health_checks import HealthChecks
from appliance.server.openapi import errors
from appliance.server.services import Services
from appliance.server.startup import start_error
from appliance.wire.status import Health, Readiness


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
        checks = await HealthChecks(services).parts()
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
    async def metrics(self, health_checks: HealthChecks) -> Response[bytes]:
        return Response(await health_checks.exposition(), media_type=CONTENT_TYPE_LATEST)
