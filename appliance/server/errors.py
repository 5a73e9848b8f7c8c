"""Every `ApplianceError` becomes an HTTP answer or a stream's final event here, and
only here: the same status, `code`, `detail`, field and Retry-After either way."""

from __future__ import annotations

from typing import Any, TypeVar

from litestar import Litestar, Request, Response
from litestar.exceptions import NotFoundException, ValidationException
from litestar.types import ExceptionHandlersMap

from appliance.domain.errors import ApplianceError, Overloaded
from appliance.domain.types import ErrorEvent

__all__ = [
    "EXCEPTION_HANDLERS", "ApplianceError", "error_event", "field_error", "found", "refused",
]  # fmt: skip
T = TypeVar("T")


def found(value: T | None, what: str) -> T:
    """`value`, or a 404 saying `what` is not found."""
    if value is None:
        raise NotFoundException(f"{what} not found")
    return value


def field_error(key: str, message: str) -> ValidationException:
    """A 400 naming the offending field, in Litestar's validation-error shape."""
    return ValidationException(
        detail=f"Validation failed: {key}: {message}",
        extra=[{"key": key, "message": message, "source": "body"}],
    )


def _detail(exc: ApplianceError) -> str:
    return f"Validation failed: {exc.field}: {exc.detail}" if exc.field else exc.detail


def refused(app: Litestar, exc: ApplianceError) -> None:
    """Count a refusal for a full queue, whatever the transport (once per refusal)."""
    services = getattr(app.state, "services", None)
    if isinstance(exc, Overloaded) and services is not None:
        services.metrics.rejections.labels(exc.what).inc()


def error_event(app: Litestar, exc: ApplianceError) -> ErrorEvent:
    """The final event of an SSE or WebSocket stream refused by `exc`."""
    refused(app, exc)
    return ErrorEvent(_detail(exc), exc.status, exc.code)


def appliance_error_handler(
    request: Request[Any, Any, Any], exc: ApplianceError
) -> Response[dict[str, Any]]:
    refused(request.app, exc)
    body: dict[str, Any] = {"status_code": exc.status, "detail": _detail(exc), "code": exc.code}
    if exc.field:
        body["extra"] = [{"key": exc.field, "message": exc.detail, "source": "body"}]
    return Response(body, status_code=exc.status, headers=retry_after(exc.retry_after))


def retry_after(seconds: int | None, **headers: str) -> dict[str, str]:
    """`headers`, and Retry-After when `seconds` is set (a refusal, or a "busy" answer: the
    extractive one, sent because the generation queue was full)."""
    if seconds:
        headers["Retry-After"] = str(seconds)
    return headers


EXCEPTION_HANDLERS: ExceptionHandlersMap = {ApplianceError: appliance_error_handler}
