"""`create_app()`: the Litestar application, its lifespan and its plugins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router, get
from litestar.config.allowed_hosts import AllowedHostsConfig
from litestar.config.cors import CORSConfig
from litestar.logging.config import LoggingConfig
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.static_files import create_static_files_router

import appliance
from appliance.config.schema import Settings
from appliance.models.sizing import SizingPlan
from appliance.server.auth import ANY_KEY, ApiKeyMiddleware, rate_limit_config, role_guard
from appliance.server.build import build_services
from appliance.server.dependencies import DEPENDENCIES
from appliance.server.errors import EXCEPTION_HANDLERS
from appliance.server.openapi import describe_settings
from appliance.server.routes.admin import AdminController
from appliance.server.routes.collections import CollectionController
from appliance.server.routes.conversations import ConversationController
from appliance.server.routes.documents import DocumentController
from appliance.server.routes.health import HealthController
from appliance.server.routes.keys import KeyController
from appliance.server.routes.models import ModelController
from appliance.server.routes.openai import OpenAIController, describe_openai
from appliance.server.routes.query import QueryController, ask_websocket
from appliance.server.routes.sources import SourceController
from appliance.server.routes.status import StatusController
from appliance.server.services import Services
from appliance.server.startup import build_in_background

log = logging.getLogger(__name__)
MiB = 1024 * 1024


def _swagger_assets() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:  # pragma: no cover - the dependency is declared
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


@get("/openapi.json", include_in_schema=False, sync_to_thread=False, opt={"role": ANY_KEY})
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, object]:
    """The OpenAPI document at the root, beside Swagger UI at /docs."""
    schema: dict[str, object] = request.app.openapi_schema.to_schema()
    return schema


def create_app(
    settings: Settings, plan: SizingPlan | None = None, *, load_in_background: bool = False
) -> Litestar:
    """Build the app; services are created in the lifespan and injected into handlers.

    `load_in_background` (what `serve` does): the lifespan returns at once and the
    services are built in a task, so /healthz answers while the models load and
    /readyz says `starting` (appliance/server/startup.py). In-process tests leave it off:
    the lifespan returns with the services built."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        describe_settings(app, settings)
        describe_openai(app, settings, plan)
        starting: asyncio.Task[None] | None = None
        if load_in_background:
            on_failure = getattr(app.state, "on_start_failure", None)
            starting = asyncio.create_task(
                build_in_background(app.state, lambda: build_services(settings, plan), on_failure)
            )
        else:
            app.state.services = await build_services(settings, plan)
        try:
            yield
        finally:
            if starting is not None:
                await asyncio.wait({starting})  # a model load cannot be cut short
            services: Services | None = getattr(app.state, "services", None)
            if services is not None:
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
        KeyController,
        CollectionController,
        SourceController,
        ConversationController,
        AdminController,
        ModelController,
        OpenAIController,
        HealthController,
        StatusController,
        ask_websocket,
        openapi_json,
    ]
    if assets:
        route_handlers.append(
            create_static_files_router(
                path="/docs/static",
                directories=[assets],
                include_in_schema=False,
                opt={"role": ANY_KEY},
            )
        )
    prometheus = PrometheusConfig(
        app_name="appliance", prefix="appliance_http", group_path=True, exclude=["/docs"]
    )
    security = settings.security
    middleware: list[Any] = [prometheus.middleware]
    if security.rate_limit_per_minute:
        middleware.append(rate_limit_config(security.rate_limit_per_minute).middleware)
    middleware.append(DefineMiddleware(ApiKeyMiddleware))
    return Litestar(
        route_handlers=route_handlers,  # type: ignore[arg-type]
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        middleware=middleware,
        guards=[role_guard],
        allowed_hosts=AllowedHostsConfig(allowed_hosts=list(settings.server.allowed_hosts)),
        cors_config=(
            CORSConfig(
                allow_origins=list(security.allowed_origins),
                allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                allow_methods=["GET", "POST", "DELETE"],
            )
            if security.allowed_origins
            else None
        ),
        openapi_config=OpenAPIConfig(
            title="RAG appliance",
            version=appliance.__version__,
            description=(
                "Documents in, cited answers streamed out. Every route but /healthz and "
                "/readyz needs an API key: `Authorization: Bearer KEY` or `X-API-Key: KEY` "
                "(Authorize, above)."
            ),
            openapi_router=Router(
                path="/docs", route_handlers=[], opt={"role": ANY_KEY}, include_in_schema=False
            ),
            render_plugins=[swagger],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer"),
                    "apiKey": SecurityScheme(
                        type="apiKey", name="X-API-Key", security_scheme_in="header"
                    ),
                }
            ),
            security=[{"bearer": []}, {"apiKey": []}],
        ),
        request_max_body_size=settings.server.max_upload_mb * MiB,
        logging_config=LoggingConfig(
            log_exceptions="always",
            disable_stack_trace={400, 401, 403, 404, 405, 409, 413, 415, 429, 502, 503, 504},
        ),
        debug=False,
    )
