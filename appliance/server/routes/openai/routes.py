"""OpenAI-compatible API: GET /v1/models, POST /v1/chat/completions, POST /v1/embeddings.

Any OpenAI client works unchanged with `base_url` at `/v1` and an API key of the `query`
role (same keys, rate limits and body limit as the rest of the API). Chat completions
answer with RAG over the indexed documents by default, through the query service as
/v1/ask does, with citations and evidence in an extra `rag` field; `"rag": false` is
plain chat with the model (`appliance.query.chat`). Every refusal of these routes has
OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}` (the
controller's exception handlers: the rest of the API keeps its own).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import numpy as np
from litestar import Controller, Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Schema
from litestar.response import Stream

from appliance.config.schema import Settings
from appliance.domain.errors import ApplianceError, FieldError
from appliance.domain.protocols import Embedder
from appliance.domain.types import AnswerEvent, DoneEvent, ErrorEvent, FinishReason, TokenEvent
from appliance.models.sizing import SizingPlan
from appliance.query.chat import (
    ChatDone,
    ChatEvent,
    ChatLimits,
    ChatService,
    Message,
    retrieval_question,
)
from appliance.query.pipeline import AskParams
from appliance.security.keys import Role
from appliance.server.errors import refused
from appliance.server.services import Services
from appliance.wire.openai import (
    MAX_CHAT_CHARS,
    MAX_CONTENT_CHARS,
    MAX_CONTENT_PARTS,
    MAX_EMBEDDING_CHARS,
    MAX_EMBEDDING_INPUTS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    CompletionUsage,
    Delta,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ModelCard,
    ModelList,
    OpenAIError,
    OpenAIErrorDetail,
    OpenAIFinish,
    PromptTokensDetails,
    RagExtra,
)

# A batch of texts is embedded in slices of at most this many texts and characters
# (about one 512-token context): askers' question embeddings, urgent, get in between
# slices, so they wait for one slice at most, not for the batch.
EMBED_SLICE_TEXTS = 16
EMBED_SLICE_CHARS = 2048
_encoder = msgspec.json.Encoder()

# ----------------------------------------------------------------- errors

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
    413: "The body is larger than server.max_upload_mb.",
    429: "Too many requests for this key (security.rate_limit_per_minute).",
    503: "Busy (a queue is full; retry after Retry-After) or a part is not running.",
    504: "The answer took longer than generation.deadline_s.",
}
_IMAGE_PART = re.compile(r"^messages\[\d+\]\.content\[\d+\]\.type$")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")  # msgspec's "<message> - at `$.<path>`"
T = TypeVar("T")


def _error_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def openai_error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[OpenAIError]:
    body = OpenAIError(OpenAIErrorDetail(message, _error_type(status), param, code))
    return Response(body, status_code=status, headers=headers)


def _hint(key: str, message: str) -> str:
    if _IMAGE_PART.match(key):
        return f"{message}: only text content parts are read (no images, audio or files)"
    if key.startswith("input") and ("`int`" in message or "`array`" in message):
        return f"{message}: send texts, not token arrays"
    return message


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[OpenAIError]:
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


def _appliance_error(request: Request[Any, Any, Any], exc: ApplianceError) -> Response[OpenAIError]:
    refused(request.app, exc)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    message = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
    return openai_error(exc.status, message, param=exc.field, code=exc.code, headers=headers)


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[OpenAIError]:
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


# ----------------------------------------------------------------- chat completions


@dataclass(frozen=True)
class _Finished:
    finish_reason: OpenAIFinish
    usage: CompletionUsage
    rag: RagExtra | msgspec.UnsetType


Piece = str | _Finished | ErrorEvent


@dataclass(frozen=True)
class _Run:
    """A queued completion: its pieces of text, then `_Finished` or an `ErrorEvent`."""

    pieces: AsyncGenerator[Piece, None]
    cancel: Callable[[], Awaitable[None]]


def _finish(reason: FinishReason) -> OpenAIFinish:
    # "repetition" (a loop cut short) and "cancelled" end the text as a stop does
    return "length" if reason == "length" else "stop"


def _usage(prompt: int, completion: int, cached: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )  # fmt: skip


async def _pieces(
    events: AsyncGenerator[AnswerEvent, None] | AsyncGenerator[ChatEvent, None], query: str
) -> AsyncGenerator[Piece, None]:
    """Answer or chat events as pieces (`query`: what a RAG answer searched for)."""
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TokenEvent):
                yield event.text
            elif isinstance(event, DoneEvent):
                t = event.timings
                rag = RagExtra(
                    query=query, citations=event.citations, evidence=event.evidence,
                    grounded=event.grounded, unsupported=event.unsupported,
                    strategy=event.strategy, timings=t, finish_reason=event.finish_reason,
                )  # fmt: skip
                usage = _usage(t.prompt_tokens, t.completion_tokens, t.cached_prompt_tokens)
                yield _Finished(_finish(event.finish_reason), usage, rag)
            elif isinstance(event, ChatDone):
                usage = _usage(event.prompt_tokens, event.completion_tokens, event.cached_tokens)
                yield _Finished(_finish(event.finish_reason), usage, msgspec.UNSET)
            else:
                yield event


def _conversation(data: ChatCompletionRequest) -> list[Message]:
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in data.messages
    ]
    if sum(len(m["content"]) for m in messages) > MAX_CHAT_CHARS:
        raise FieldError("messages", f"at most {MAX_CHAT_CHARS} characters in all")
    return messages


async def _start(data: ChatCompletionRequest, services: Services) -> _Run:
    """Queue the completion; refusals (400, 503) raise here, before anything streams."""
    settings = services.settings
    g = settings.generation
    messages = _conversation(data)
    temperature = g.temperature if data.temperature is None else data.temperature
    max_tokens = data.max_completion_tokens or data.max_tokens
    if not data.rag:
        limits = ChatLimits(g.max_tokens, g.max_tokens_ceiling, g.deadline_s)
        chat = ChatService(services.generator, services.metrics, services.query.draining, limits)
        prepared_chat = await chat.prepare(messages, max_tokens=max_tokens, temperature=temperature)
        return _Run(_pieces(prepared_chat.events(), ""), prepared_chat.cancel)
    index, question = retrieval_question(messages)
    params = AskParams(
        question=question, top_k=data.top_k or settings.retrieval.top_k, max_tokens=max_tokens,
        temperature=temperature, document_ids=data.document_ids, strategy=data.strategy,
        filters=data.filters,
    )  # fmt: skip
    try:
        prepared = await services.query.prepare(params)
    except FieldError as exc:
        if exc.field == "query":  # the question: the message it came from
            exc.field = f"messages[{index}].content"
        raise
    return _Run(_pieces(prepared.events(), question), prepared.cancel)


def _failed(event: ErrorEvent) -> ApplianceError:
    return ApplianceError(event.message, status=event.status, code=event.code or "failed")


async def _complete(run: _Run, model: str) -> ChatCompletion:
    texts: list[str] = []
    finished: _Finished | None = None
    try:
        async with contextlib.aclosing(run.pieces) as pieces:
            async for piece in pieces:
                if isinstance(piece, str):
                    texts.append(piece)
                elif isinstance(piece, ErrorEvent):
                    raise _failed(piece)
                else:
                    finished = piece
                    break
    finally:
        await run.cancel()
    if finished is None:
        raise _failed(ErrorEvent("generation ended without an answer", 500))
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model,
        choices=[Choice(0, AssistantMessage("".join(texts).strip()), finished.finish_reason)],
        usage=finished.usage, rag=finished.rag,
    )  # fmt: skip


def _frame(payload: msgspec.Struct) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


async def _sse(run: _Run, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """`data: {chunk}` events as the OpenAI API sends them, then `data: [DONE]`; a
    failure mid-way is a `data: {"error": ...}` event (the SDK raises it)."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    usage: CompletionUsage | msgspec.UnsetType | None = None if include_usage else msgspec.UNSET

    def chunk(choices: list[ChunkChoice], **extra: Any) -> ChatCompletionChunk:
        fields = {"usage": usage, **extra}
        return ChatCompletionChunk(id=cid, created=created, model=model, choices=choices, **fields)

    try:
        yield _frame(chunk([ChunkChoice(0, Delta(role="assistant", content=""))]))
        started = False  # leading whitespace is dropped, as from the whole answer
        async with contextlib.aclosing(run.pieces) as pieces:
            async for piece in pieces:
                if isinstance(piece, str):
                    if not started:
                        piece = piece.lstrip()
                        started = bool(piece)
                    if piece:
                        yield _frame(chunk([ChunkChoice(0, Delta(content=piece))]))
                elif isinstance(piece, ErrorEvent):
                    code = piece.code or "failed"
                    detail = OpenAIErrorDetail(piece.message, _error_type(piece.status), None, code)
                    yield _frame(OpenAIError(detail))
                    return
                else:
                    yield _frame(
                        chunk([ChunkChoice(0, Delta(), piece.finish_reason)], rag=piece.rag)
                    )
                    if include_usage:
                        yield _frame(chunk([], usage=piece.usage))
                    yield b"data: [DONE]\n\n"
                    return
        detail = OpenAIErrorDetail("generation ended without an answer", "server_error")
        yield _frame(OpenAIError(detail))
    finally:
        await run.cancel()


# ----------------------------------------------------------------- embeddings


def _slices(texts: Sequence[str]) -> Iterator[list[str]]:
    part: list[str] = []
    chars = 0
    for text in texts:
        if part and (len(part) == EMBED_SLICE_TEXTS or chars + len(text) > EMBED_SLICE_CHARS):
            yield part
            part, chars = [], 0
        part.append(text)
        chars += len(text)
    if part:
        yield part


async def _embed(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    urgent = len(texts) == 1  # a batch yields to askers' question embeddings
    vectors: list[list[float]] = []
    for part in _slices(texts):
        vectors += await embedder.embed(part, interactive=True, urgent=urgent)
    return vectors


def _vectors_out(
    vectors: list[list[float]], dimensions: int | None, encoding: str
) -> list[list[float] | str]:
    """Shortened (first `dimensions` values, re-normalized, as OpenAI does) and encoded:
    `base64` is little-endian float32."""
    array = np.asarray(vectors, dtype=np.float64)
    if dimensions is not None and dimensions < array.shape[1]:
        array = array[:, :dimensions]
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        array = array / np.where(norms > 0, norms, 1.0)
    if encoding == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in array]
    rows: list[list[float]] = array.tolist()
    return list(rows)


def _model_ids(services: Services) -> tuple[str, str]:
    """The chat and the live embedding model, as named by their files."""
    return services.plan.chat.info.path.stem, services.embedding_path.stem


# ----------------------------------------------------------------- the routes


class OpenAIController(Controller):
    path = "/v1"
    tags = ("openai",)
    opt = {"role": Role.QUERY}  # noqa: RUF012 - Litestar's own attribute
    exception_handlers = {  # noqa: RUF012 - OpenAI's error shape, on these routes only
        HTTPException: _http_error,
        ApplianceError: _appliance_error,
        Exception: _internal_error,
    }

    @get(
        "/models", summary="The chat and embedding models, OpenAI-style (query)",
        responses=openai_errors(),
    )  # fmt: skip
    async def models(self, services: Services) -> ModelList:
        created = int(services.started_at)
        return ModelList(data=[ModelCard(id=m, created=created) for m in _model_ids(services)])

    @post(
        "/chat/completions",
        status_code=200,
        summary="Chat completions, OpenAI-compatible; RAG over the documents (query)",
        description=(
            "The last user message is the question; the answer streams as `data:` chunks "
            "when `stream` is true, ending with `data: [DONE]`. The response (the final "
            "chunk when streaming) carries `rag`: citations, evidence, timings. "
            '`"rag": false`: plain chat over the messages, no retrieval.'
        ),
        responses={
            200: ResponseSpec(
                data_container=ChatCompletion,
                description="A chat.completion; with `stream`, text/event-stream of chunks",
            ),
            **openai_errors(400, 413, 503, 504),
        },
    )
    async def chat_completions(
        self, data: ChatCompletionRequest, services: Services, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        data = await strictly(request, ChatCompletionRequest)
        run = await _start(data, services)
        model = _model_ids(services)[0]
        if data.stream:
            include_usage = data.stream_options is not None and data.stream_options.include_usage
            return Stream(
                _sse(run, model, include_usage), media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )  # fmt: skip
        return Response(await _complete(run, model))

    @post(
        "/embeddings", status_code=200,
        summary="Embeddings with the live embedding model, OpenAI-compatible (query)",
        responses=openai_errors(400, 413, 503),
    )  # fmt: skip
    async def embeddings(
        self, data: EmbeddingRequest, services: Services, request: Request[Any, Any, Any]
    ) -> EmbeddingList:
        data = await strictly(request, EmbeddingRequest)
        texts = [data.input] if isinstance(data.input, str) else data.input
        embedder, model = services.embedder, _model_ids(services)[1]
        if data.dimensions is not None and data.dimensions > embedder.dim:
            raise FieldError(
                "dimensions", f"the embedding model {model} gives {embedder.dim} values"
            )
        vectors = await _embed(embedder, texts)
        encoded, tokens = await asyncio.gather(
            asyncio.to_thread(_vectors_out, vectors, data.dimensions, data.encoding_format),
            asyncio.to_thread(lambda: sum(embedder.count_tokens(t) for t in texts)),
        )
        return EmbeddingList(
            data=[Embedding(index=i, embedding=e) for i, e in enumerate(encoded)],
            model=model, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )  # fmt: skip


# ----------------------------------------------------------------- OpenAPI


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
        _variant(props["strategy"], OpenAPIType.STRING).enum = sorted(settings.prompts)
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
