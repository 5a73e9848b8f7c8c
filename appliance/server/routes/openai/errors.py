"""OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, for every
refusal of these routes (the controller's exception handlers: the rest of the API keeps
its own), and bodies read strictly, as the OpenAPI document says."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from appliance.domain.errors import ApplianceError
from appliance.server.errors import refused
from appliance.wire.openai import OpenAIError, OpenAIErrorDetail

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_CODES = {
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    429: "rate_limit_exceeded",
}
_WHY = {
    400: "The body is invalid; `error.param` names the field.",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role may not do this (these routes need `query`), or a foreign Origin.",
    404: "`model` names a collection (`appliance/NAME`) this key does not read or that "
    "does not exist.",
    413: "The body is larger than server.max_upload_mb.",
    429: "Too many requests for this key (security.rate_limit_per_minute).",
    503: "Busy (a queue is full; retry after Retry-After) or a part is not running.",
    504: "The answer took longer than generation.deadline_s.",
}
_IMAGE_PART = re.compile(r"^messages\[\d+\]\.content\[\d+\]\.type$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")  # msgspec's "<message> - at `$.<path>`"
T = TypeVar("T")


def error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[OpenAIError]:
    body = OpenAIError(OpenAIErrorDetail(message, error_type(status), param, code))
    return Response(body, status_code=status, headers=headers)


def _hint(key: str, message: str) -> str:
    if _IMAGE_PART.match(key):
        return f"{message}: only text content parts are read (no images, audio or files)"
    if key.startswith("input") and ("`int`" in message or "`array`" in message):
        return f"{message}: send texts, not token arrays"
    return message


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[OpenAIError]:
    headers = dict(exc.headers or {})
    extra = exc.extra if isinstance(exc, ValidationException) else None
    if isinstance(extra, list) and extra and isinstance(extra[0], dict):
        key, message = str(extra[0].get("key") or ""), str(extra[0].get("message", ""))
        if missing := _MISSING.search(message):  # the field, not the object lacking it
            key = missing[1] if key in ("", "data") else f"{key}.{missing[1]}"
        if key and key != "data":
            message = _hint(key, message)
            return openai_error(
                exc.status_code, f"{key}: {message}", param=key, code="invalid_value",
                headers=headers,
            )  # fmt: skip
    return openai_error(
        exc.status_code, exc.detail, code=_CODES.get(exc.status_code), headers=headers
    )


def appliance_error(request: Request[Any, Any, Any], exc: ApplianceError) -> Response[OpenAIError]:
    refused(request.app, exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    message = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
    return openai_error(exc.status, message, param=exc.field, code=exc.code, headers=headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[OpenAIError]:
    return openai_error(500, "internal server error (see the server log)", code="internal_error")


def _integral(value: Any) -> Any:
    """JSON numbers as JSON Schema reads them: 2.0 is an integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


async def strictly(request: Request[Any, Any, Any], wanted: type[T]) -> T:
    """The body converted strictly, as the route's schema reads it. Litestar converts
    bodies laxly (`"rag": 0` would be false, `"top_k": "5"` 5), which neither OpenAI nor
    the schema admits; msgspec's strict mode refuses 2.0 for an integer, which both do."""
    try:
        return msgspec.convert(_integral(msgspec.json.decode(await request.body())), wanted)
    except msgspec.ValidationError as exc:
        found = _AT.match(str(exc))
        message, key = (found[1], found[2]) if found else (str(exc), "")
        raise ValidationException(
            detail=f"Validation failed: {key}: {message}",
            extra=[{"key": key, "message": message, "source": "body"}],
        ) from exc


def openai_errors(*codes: int) -> dict[int, ResponseSpec]:
    """Response specs in OpenAI's error shape for `codes` and the access errors."""
    return {
        code: ResponseSpec(data_container=OpenAIError, description=_WHY[code])
        for code in sorted({*codes, 401, 403, 429})
    }


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_error,
    ApplianceError: appliance_error,
    Exception: internal_error,
}
