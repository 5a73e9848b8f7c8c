"""The error answers each route may give, for the OpenAPI document (so it tells the truth)."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec


class ErrorBody(msgspec.Struct, frozen=True):
    status_code: int
    detail: str
    extra: list[dict[str, object]] | dict[str, object] | None = None


_WHY = {
    400: "Bad request: the body or a parameter is invalid (the field is named).",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role may not do this, or a foreign Origin.",
    404: "Not found.",
    409: "Conflict with the current state.",
    413: "The body is larger than server.max_upload_mb.",
    415: "No file of the upload is of a type the appliance reads.",
    429: "Too many requests for this key (security.rate_limit_per_minute).",
    503: "Busy (a queue is full; retry after Retry-After) or a part is not running.",
    504: "The answer took longer than generation.deadline_s.",
}
AUTH = (401, 403, 429)


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """Response specs for `codes`, plus the access errors every keyed route can give."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_WHY[code])
        for code in sorted({*codes, *AUTH})
    }
