"""`create_app()`: the Litestar application, its lifespan and its plugins."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, get
from litestar.logging.config import LoggingConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router

import appliance
from appliance.api.controllers.documents import DocumentController
from appliance.api.controllers.health import HealthController
from appliance.api.controllers.query import QueryController, ask_websocket
from appliance.api.dependencies import DEPENDENCIES
from appliance.api.errors import EXCEPTION_HANDLERS
from appliance.config.schema import Settings
from appliance.models.sizing import SizingPlan
from appliance.wiring import build_services

log = logging.getLogger(__name__)
MiB = 1024 * 1024


def _swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - the dependency is declared
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, object]:
    """The OpenAPI document at the root, beside Swagger UI at /docs."""
    schema: dict[str, object] = request.app.openapi_schema.to_schema()
    return schema


def create_app(settings: Settings, plan: SizingPlan | None = None) -> Litestar:
    """Build the app; services are created in the lifespan and injected into handlers."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await build_services(settings, plan)
        app.state.services = services
        log.info("appliance ready: %s", services.plan.explain())
        try:
            yield
        finally:
            await services.close()

    assets = _swagger_assets()
    swagger = (
        SwaggerRenderPlugin(
            path="/",
            js_url="/docs/static/swagger-ui-bundle.js",
            css_url="/docs/static/swagger-ui.css",
            standalone_preset_js_url="/docs/static/swagger-ui-standalone-preset.js",
        )
        if assets
        else SwaggerRenderPlugin(path="/")
    )
    route_handlers: list[object] = [
        DocumentController,
        QueryController,
        HealthController,
        ask_websocket,
        openapi_json,
    ]
    if assets:
        route_handlers.append(
            create_static_files_router(
                path="/docs/static", directories=[assets], include_in_schema=False
            )
        )
    prometheus = PrometheusConfig(
        app_name="appliance", prefix="appliance_http", group_path=True, exclude=["/docs"]
    )
    return Litestar(
        route_handlers=route_handlers,  # type: ignore[arg-type]
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=[prometheus.middleware],
        openapi_config=OpenAPIConfig(
            title="RAG appliance",
            version=appliance.__version__,
            description="Documents in, cited answers streamed out.",
            path="/docs",
            render_plugins=[swagger],
        ),
        request_max_body_size=settings.server.max_upload_mb * MiB,
        logging_config=LoggingConfig(
            log_exceptions="always", disable_stack_trace={404, 400, 405, 413, 503}
        ),
        debug=False,
    )
