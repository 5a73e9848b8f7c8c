"""What Litestar's generated OpenAPI document leaves out of the OpenAI routes."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Schema

from appliance.config.prompts import REQUEST_STRATEGIES
from appliance.config.schema import Settings
from appliance.models.sizing import SizingPlan
from appliance.wire.openai import (
    MAX_CONTENT_CHARS,
    MAX_CONTENT_PARTS,
    MAX_EMBEDDING_CHARS,
    MAX_EMBEDDING_INPUTS,
)


def _variant(prop: Any, kind: OpenAPIType) -> Any:
    """The member of a `oneOf` property of this type."""
    return next(v for v in prop.one_of or [] if getattr(v, "type", None) == kind)


def _bound(prop: Any, chars: int, items: int) -> None:
    """`str | list[str]` bounds, which Litestar leaves off a union's members."""
    text, array = _variant(prop, OpenAPIType.STRING), _variant(prop, OpenAPIType.ARRAY)
    text.min_length, text.max_length = 1, chars
    array.min_items, array.max_items = 1, items
    if isinstance(array.items, Schema) and array.items.type == OpenAPIType.STRING:
        array.items.min_length, array.items.max_length = 1, chars


def describe_openai(app: Litestar, settings: Settings, plan: SizingPlan | None) -> None:
    """What Litestar's generated schema leaves out: bounds of 0 (it drops falsy ones) and
    of a union's members, the prompt strategies, the embedding size, and that a
    completion may stream. (Each request a schema admits, the server admits.)"""
    schema = app.openapi_schema
    schemas = schema.components.schemas or {}
    chat = schemas.get("ChatCompletionRequest")
    if chat is not None and chat.properties:
        props: dict[str, Any] = dict(chat.properties)
        props["temperature"].minimum = 0.0
        props["top_p"].minimum = 0.0
        props["tools"].max_items = 0
        _variant(props["strategy"], OpenAPIType.STRING).enum = sorted(
            {*settings.prompts, *REQUEST_STRATEGIES}
        )
    message = schemas.get("ChatMessage")
    if message is not None and message.properties:
        _bound(message.properties["content"], MAX_CONTENT_CHARS, MAX_CONTENT_PARTS)
    embeddings = schemas.get("EmbeddingRequest")
    if embeddings is not None and embeddings.properties:
        _bound(embeddings.properties["input"], MAX_EMBEDDING_CHARS, MAX_EMBEDDING_INPUTS)
        if plan is not None:
            dimensions: Any = embeddings.properties["dimensions"]
            dimensions.maximum = plan.embedding.info.n_embd
    path = (schema.paths or {}).get("/v1/chat/completions")
    ok = path.post.responses.get("200") if path and path.post and path.post.responses else None
    content = getattr(ok, "content", None)
    if content is not None:
        data = Schema(
            type=OpenAPIType.STRING,
            description="A chat.completion.chunk as JSON; the last event's is `[DONE]`.",
        )
        content["text/event-stream"] = OpenAPIMediaType(
            schema=Schema(
                type=OpenAPIType.OBJECT,
                properties={"data": data},
                required=["data"],
                description="One Server-Sent Event: `data:` only, no `event:` name",
            )
        )
