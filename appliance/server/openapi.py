"""The error answers each route may give, for the OpenAPI document (so it tells the truth)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec

from appliance.config.prompts import REQUEST_STRATEGIES
from appliance.config.schema import Settings


class ErrorBody(msgspec.Struct, frozen=True):
    status_code: int
    detail: str
    code: str | None = None  # stable, for programs (overloaded, unsupported_file, ...)
    extra: list[dict[str, Any]] | dict[str, Any] | None = None


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


def _string_variant(schema: Any) -> Any:
    for variant in getattr(schema, "one_of", None) or [schema]:
        if getattr(variant, "type", None) is not None and "string" in str(variant.type):
            return variant
    return schema


class SseEvent(msgspec.Struct, frozen=True):
    """One Server-Sent Event: `event` names it, `data` is its JSON body."""

    event: str
    data: str


def strict_bodies() -> list[str]:
    """The wire structs that refuse unknown fields (`forbid_unknown_fields`): their
    schemas say `additionalProperties: false`, so a client knows before it sends."""
    import importlib
    import pkgutil

    import appliance.wire

    return sorted(
        {
            name
            for info in pkgutil.iter_modules(appliance.wire.__path__, "appliance.wire.")
            for name, obj in vars(importlib.import_module(info.name)).items()
            if isinstance(obj, type)
            and issubclass(obj, msgspec.Struct)
            and obj.__struct_config__.forbid_unknown_fields
        }
    )


def describe_settings(app: Litestar, settings: Settings) -> None:
    """Put what the config decides into the OpenAPI document: the prompt strategies a
    request may name, the largest `top_k`, how many files one upload may carry; and
    that request bodies take no unknown fields."""
    schemas = app.openapi_schema.components.schemas or {}
    for name in strict_bodies():
        if name in schemas:
            schemas[name].additional_properties = False
    ask = schemas.get("AskRequest")
    if ask is not None and ask.properties and "strategy" in ask.properties:
        _string_variant(ask.properties["strategy"]).enum = sorted(
            {*settings.prompts, *REQUEST_STRATEGIES}
        )
        temperature: Any = ask.properties["temperature"]
        temperature.minimum = 0.0  # Litestar drops a bound of 0 (falsy)
    search = schemas.get("SearchRequest")
    if search is not None and search.properties and "top_k" in search.properties:
        top_k: Any = search.properties["top_k"]
        top_k.maximum = settings.retrieval.max_top_k
    upload = schemas.get("UploadForm")
    if upload is not None and upload.properties and "files" in upload.properties:
        files: Any = upload.properties["files"]
        files.max_items = settings.server.max_files_per_upload
