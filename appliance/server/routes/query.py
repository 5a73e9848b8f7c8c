"""Search and ask: JSON, Server-Sent Events and WebSocket, over one query service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Response, WebSocket, post, websocket
from litestar.di import Provide
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import WS_1001_GOING_AWAY

from appliance.config.schema import Settings
from appliance.domain.types import AnswerEvent, DoneEvent, ErrorEvent, Evidence, EvidenceEvent
from appliance.query.answer import PreparedAnswer
from appliance.query.draining import SHUTTING_DOWN
from appliance.query.params import AskParams
from appliance.query.pipeline import QueryService
from appliance.security.key_store import KeyStore
from appliance.security.keys import Role
from appliance.server.auth import WS_UNAUTHORIZED, SocketBudget
from appliance.server.errors import ApplianceError, error_event, field_error, retry_after
from appliance.server.openapi import SseEvent, errors
from appliance.server.reader import Reader, reader_for
from appliance.wire.ask import AskRequest, AskResponse
from appliance.wire.search import SearchRequest, SearchResponse


def ask_params(data: AskRequest, settings: Settings, reader: Reader) -> AskParams:
    """The request as the query service reads it (the config's defaults filled in, the
    key's collections narrowed by the request's)."""
    g = settings.generation
    return AskParams(
        question=data.query,
        top_k=data.top_k or settings.retrieval.top_k,
        max_tokens=data.max_tokens,
        temperature=g.temperature if data.temperature is None else data.temperature,
        document_ids=data.document_ids,
        strategy=data.strategy,
        filters=data.filters,
        retrieval=data.retrieval,
        conversation_id=data.conversation_id,
        collections=reader.searched(data.filters),
    )


class Asker:
    """`QueryService.ask` and search for one key (within its collections), the request's
    unset fields taken from the config.
    A plain class: Litestar passes a dependency of a plain class through as it is."""

    __slots__ = ("query_service", "reader", "settings")

    def __init__(self, query_service: QueryService, settings: Settings, reader: Reader) -> None:
        self.query_service, self.settings, self.reader = query_service, settings, reader

    async def ask(self, data: AskRequest) -> PreparedAnswer:
        params = ask_params(data, self.settings, self.reader)
        return await self.query_service.ask(params, self.reader.key.id)

    async def search(self, data: SearchRequest) -> SearchResponse:
        limits, searcher = self.settings.retrieval, self.query_service.searcher
        top_k = data.top_k or limits.top_k
        if top_k > limits.max_top_k:
            raise field_error("top_k", f"must be <= {limits.max_top_k} (retrieval.max_top_k)")
        found = await searcher.search(
            data.query, top_k, data.document_ids, data.filters, retrieval=data.retrieval,
            collections=self.reader.searched(data.filters),
        )  # fmt: skip
        return SearchResponse(
            hits=found.hits, embed_ms=round(found.embed_ms, 3),
            search_ms=round(found.search_ms, 3), documents=await searcher.describe(found.hits),
        )  # fmt: skip


def caller_asker(query_service: QueryService, settings: Settings, reader: Reader) -> Asker:
    """What the HTTP routes ask with: the calling key's `Asker`."""
    return Asker(query_service, settings, reader)


class StreamFailed(ApplianceError):
    """A generation failed after it started (deadline, engine error); keeps its status."""

    def __init__(self, event: ErrorEvent) -> None:
        super().__init__(event.message, status=event.status, code=event.code or "failed")


def event_name(event: AnswerEvent) -> str:
    return str(type(event).__struct_config__.tag)


_encoder = msgspec.json.Encoder()


class QueryController(Controller):
    path = "/v1"
    tags = ("query",)
    opt = {"role": Role.QUERY}  # noqa: RUF012 - Litestar's own attribute
    dependencies = {"asker": Provide(caller_asker, sync_to_thread=False)}  # noqa: RUF012 - Litestar's own attribute

    @post(
        "/search", status_code=200, summary="Semantic search over the documents (query)",
        responses=errors(400, 404, 503),
    )  # fmt: skip
    async def search(self, data: SearchRequest, asker: Asker) -> SearchResponse:
        return await asker.search(data)

    @post(
        "/ask", status_code=200, summary="Answer a question with citations (query)",
        responses=errors(400, 404, 503, 504),
    )  # fmt: skip
    async def ask(self, data: AskRequest, asker: Asker) -> Response[AskResponse]:
        prepared = await asker.ask(data)
        first: list[Evidence] = []
        async with contextlib.aclosing(prepared.events()) as events:
            async for event in events:
                if isinstance(event, EvidenceEvent):
                    first = event.evidence
                elif isinstance(event, DoneEvent):
                    answer = AskResponse(**msgspec.structs.asdict(event), first_evidence=first)
                    return Response(answer, headers=retry_after(prepared.retry_after))
                if isinstance(event, ErrorEvent):
                    raise StreamFailed(event)
        raise StreamFailed(ErrorEvent("generation ended without an answer", 500))

    @post(
        "/ask/stream",
        status_code=200,
        summary="Answer a question as Server-Sent Events (query)",
        description=(
            "Events: first `evidence` (the sentences of the retrieved passages that best answer "
            'the question, before any token), `token` (`{"type":"token","text":...}`) as the '
            "answer is generated, then `done` with the answer, citations, timings and the "
            "evidence weighed against the answer; `error` if generation fails "
            '(`"code": "shutting_down"` when the server stops).'
        ),
        responses={
            200: ResponseSpec(
                data_container=SseEvent,
                media_type="text/event-stream",
                description="one evidence event, token events, then one done or error event",
            ),
            **errors(400, 404, 503),
        },
    )
    async def ask_stream(self, data: AskRequest, asker: Asker) -> ServerSentEvent:
        prepared = await asker.ask(data)

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            async with contextlib.aclosing(prepared.events()) as events:
                async for event in events:
                    yield ServerSentEventMessage(
                        data=_encoder.encode(event).decode(), event=event_name(event)
                    )

        return ServerSentEvent(
            messages(), headers=retry_after(prepared.retry_after, **{"Cache-Control": "no-cache"})
        )


async def _answer_over_socket(
    socket: WebSocket[Any, Any, Any], raw: str | bytes, asker: Asker
) -> None:
    async def send(event: AnswerEvent) -> None:
        await socket.send_data(_encoder.encode(event).decode(), mode="text")

    try:
        prepared = await asker.ask(msgspec.json.decode(raw, type=AskRequest))
    except msgspec.ValidationError as exc:
        await send(ErrorEvent(f"Validation failed: {exc}", 400, "invalid_request"))
        return
    except msgspec.DecodeError as exc:
        await send(
            ErrorEvent(f"Validation failed: body is not JSON ({exc})", 400, "invalid_request")
        )
        return
    except ApplianceError as exc:  # refused before anything streamed
        await send(error_event(socket.app, exc))
        return
    try:
        async with contextlib.aclosing(prepared.events()) as events:
            async for event in events:
                await send(event)
    finally:
        await prepared.cancel()


@websocket(
    "/v1/ask/ws", tags=["query"], summary="Ask questions over a WebSocket (query)",
    opt={"role": Role.QUERY},
)  # fmt: skip
async def ask_websocket(
    socket: WebSocket[Any, Any, Any],
    query_service: QueryService,
    settings: Settings,
    keys: KeyStore,
) -> None:
    """Send an AskRequest as JSON text; receive the same events as the SSE stream as JSON
    messages (`type` is evidence, token, done or error). Several questions may follow one another;
    each counts against the key's rate limit (over it: an error event, status 429, code
    `rate_limit_exceeded`, and the socket stays open)."""
    await socket.accept()
    draining = query_service.draining
    budget = SocketBudget(socket, settings.security.rate_limit_per_minute)
    asker = Asker(query_service, settings, reader_for(socket.app.state, socket.user))
    try:
        while not draining.started:
            receive = asyncio.ensure_future(socket.receive_data(mode="text"))
            stop = asyncio.ensure_future(draining.wait())
            await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not receive.done():  # shutting down while idle
                receive.cancel()
                break
            raw = receive.result()
            key = keys.get(socket.user.id)
            if key is None or not key.active:  # revoked while the socket was open
                await socket.close(code=WS_UNAUTHORIZED, reason="the API key was revoked")
                return
            asker.reader = reader_for(socket.app.state, key)  # its scope as it is now
            if refused := await budget.refusal():
                await socket.send_data(_encoder.encode(refused).decode(), mode="text")
                continue
            await _answer_over_socket(socket, raw, asker)
        await socket.close(code=WS_1001_GOING_AWAY, reason=SHUTTING_DOWN)
    except WebSocketDisconnect:
        return
