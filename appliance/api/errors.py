"""Map service errors to HTTP answers that say what went wrong."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import ValidationException
from litestar.types import ExceptionHandlersMap

from appliance.engine.worker import Overloaded, WorkerStopped
from appliance.query.pipeline import UnknownStrategy
from appliance.query.prompt import PromptTooLong


class ApplianceError(Exception):
    """Base of errors raised by handlers; `status_code` is the HTTP answer."""

    status_code = 500


def appliance_error_handler(
    _: Request[Any, Any, Any], exc: ApplianceError
) -> Response[dict[str, Any]]:
    return Response(
        {"status_code": exc.status_code, "detail": str(exc)}, status_code=exc.status_code
    )


def field_error(key: str, message: str) -> ValidationException:
    """A 400 naming the offending field, in Litestar's validation-error shape."""
    return ValidationException(
        detail=f"Validation failed: {key}: {message}",
        extra=[{"key": key, "message": message, "source": "body"}],
    )


def count_rejection(app: Litestar, exc: Overloaded) -> None:
    """Every refusal for a full queue, whatever the transport, is counted here."""
    services = getattr(app.state, "services", None)
    if services is not None:
        services.metrics.rejections.labels(exc.what).inc()


def overloaded_handler(
    request: Request[Any, Any, Any], exc: Overloaded
) -> Response[dict[str, Any]]:
    count_rejection(request.app, exc)
    return Response(
        {"status_code": 503, "detail": str(exc)},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after)},
    )


def stopped_handler(_: Request[Any, Any, Any], exc: WorkerStopped) -> Response[dict[str, Any]]:
    return Response({"status_code": 503, "detail": str(exc)}, status_code=503)


def prompt_too_long_handler(
    _: Request[Any, Any, Any], exc: PromptTooLong
) -> Response[dict[str, Any]]:
    return Response(
        {
            "status_code": 400,
            "detail": f"Validation failed: query: {exc}",
            "extra": [{"key": "query", "message": str(exc), "source": "body"}],
        },
        status_code=400,
    )


def unknown_strategy_handler(
    _: Request[Any, Any, Any], exc: UnknownStrategy
) -> Response[dict[str, Any]]:
    return Response(
        {
            "status_code": 400,
            "detail": f"Validation failed: strategy: {exc}",
            "extra": [{"key": "strategy", "message": str(exc), "source": "body"}],
        },
        status_code=400,
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    UnknownStrategy: unknown_strategy_handler,
    ApplianceError: appliance_error_handler,
    Overloaded: overloaded_handler,
    WorkerStopped: stopped_handler,
    PromptTooLong: prompt_too_long_handler,
}
