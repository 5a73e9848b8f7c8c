"""Search and ask: JSON, Server-Sent Events and WebSocket, over one query service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, WebSocket, post, websocket
from litestar.exceptions import ValidationException, WebSocketDisconnect
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import WS_1001_GOING_AWAY

from appliance.config.schema import Settings
from appliance.domain.types import AnswerEvent, DoneEvent, ErrorEvent
from appliance.query.conversations import ConversationService, Turn
from appliance.query.draining import SHUTTING_DOWN
from appliance.query.pipeline import AskParams, QueryService, UnknownStrategy
from appliance.security.keys import KeyRecord, Role
from appliance.server.auth import WS_UNAUTHORIZED, SocketBudget
from appliance.server.errors import ApplianceError, error_event, field_error
from appliance.server.openapi import SseEvent, errors
from appliance.server.services import Services
from appliance.wire.api import AskRequest, AskResponse, SearchRequest, SearchResponse


def ask_params(data: AskRequest, settings: Settings, question: str | None = None) -> AskParams:
    """The query service's parameters; `question`: the text to search and answer, if not
    the request's own (a conversation's follow-up, rewritten)."""
    g = settings.generation
    if data.strategy is not None and data.strategy not in settings.prompts:
        known = ", ".join(sorted(settings.prompts))
        raise UnknownStrategy(f"unknown prompt strategy {data.strategy!r} (known: {known})")
    return AskParams(
        question=question or data.query,
        top_k=data.top_k or settings.retrieval.top_k,
        max_tokens=data.max_tokens,
        temperature=g.temperature if data.temperature is None else data.temperature,
        document_ids=data.document_ids,
        strategy=data.strategy,
        filters=data.filters,
        retrieval=data.retrieval,
    )


def conversations(services: Services) -> ConversationService:
    return ConversationService(services.journal)


async def begin_turn(data: AskRequest, services: Services, key_id: str) -> Turn | None:
    if data.conversation_id is None:
        return None
    return await conversations(services).begin(key_id, data.conversation_id, data.query)


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

    @post(
        "/search", status_code=200, summary="Semantic search over the documents (query)",
        responses=errors(400, 503),
    )  # fmt: skip
    async def search(
        self, data: SearchRequest, query_service: QueryService, settings: Settings
    ) -> SearchResponse:
        top_k = data.top_k or settings.retrieval.top_k
        if top_k > settings.retrieval.max_top_k:
            raise field_error(
                "top_k", f"must be <= {settings.retrieval.max_top_k} (retrieval.max_top_k)"
            )
        found = await query_service.search(
            data.query, top_k, data.document_ids, data.filters, retrieval=data.retrieval
        )
        return SearchResponse(
            hits=found.hits,
            embed_ms=round(found.embed_ms, 3),
            search_ms=round(found.search_ms, 3),
            documents=await query_service.describe(found.hits),
        )

    @post(
        "/ask", status_code=200, summary="Answer a question with citations (query)",
        responses=errors(400, 503, 504),
    )  # fmt: skip
    async def ask(
        self,
        data: AskRequest,
        query_service: QueryService,
        settings: Settings,
        services: Services,
        request: Request[KeyRecord, Any, Any],
    ) -> AskResponse:
        turn = await begin_turn(data, services, request.user.id)
        prepared = await query_service.prepare(
            ask_params(data, settings, turn.searched if turn else None)
        )
        stream = conversations(services).recorded(turn, prepared.events())
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, DoneEvent):
                    return AskResponse(
                        answer=event.answer,
                        citations=event.citations,
                        timings=event.timings,
                        finish_reason=event.finish_reason,
                        evidence=event.evidence,
                        grounded=event.grounded,
                        unsupported=event.unsupported,
                        strategy=event.strategy,
                        conversation_id=event.conversation_id,
                        searched=event.searched,
                    )
                if isinstance(event, ErrorEvent):
                    raise StreamFailed(event)
        raise StreamFailed(ErrorEvent("generation ended without an answer", 500))

    @post(
        "/ask/stream",
        status_code=200,
        summary="Answer a question as Server-Sent Events (query)",
        description=(
            'Events: `token` (`{"type":"token","text":...}`) as the answer is generated, '
            "then `done` with the answer, citations and timings; `error` if generation fails "
            '(`"code": "shutting_down"` when the server stops).'
        ),
        responses={
            200: ResponseSpec(
                data_container=SseEvent,
                media_type="text/event-stream",
                description="token events, then one done or error event",
            ),
            **errors(400, 503),
        },
    )
    async def ask_stream(
        self,
        data: AskRequest,
        query_service: QueryService,
        settings: Settings,
        services: Services,
        request: Request[KeyRecord, Any, Any],
    ) -> ServerSentEvent:
        turn = await begin_turn(data, services, request.user.id)
        prepared = await query_service.prepare(
            ask_params(data, settings, turn.searched if turn else None)
        )

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            stream = conversations(services).recorded(turn, prepared.events())
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    yield ServerSentEventMessage(
                        data=_encoder.encode(event).decode(), event=event_name(event)
                    )

        return ServerSentEvent(messages(), headers={"Cache-Control": "no-cache"})


async def _answer_over_socket(
    socket: WebSocket[Any, Any, Any],
    raw: str | bytes,
    query_service: QueryService,
    settings: Settings,
    services: Services,
) -> None:
    async def send(event: AnswerEvent) -> None:
        await socket.send_data(_encoder.encode(event).decode(), mode="text")

    try:
        request = msgspec.json.decode(raw, type=AskRequest)
        turn = await begin_turn(request, services, socket.user.id)
        params = ask_params(request, settings, turn.searched if turn else None)
    except msgspec.ValidationError as exc:
        await send(ErrorEvent(f"Validation failed: {exc}", 400, "invalid_request"))
        return
    except msgspec.DecodeError as exc:
        await send(
            ErrorEvent(f"Validation failed: body is not JSON ({exc})", 400, "invalid_request")
        )
        return
    except ValidationException as exc:
        await send(ErrorEvent(str(exc.detail), 400, "invalid_request"))
        return
    except ApplianceError as exc:
        await send(error_event(socket.app, exc))
        return
    try:
        prepared = await query_service.prepare(params)
    except ApplianceError as exc:
        await send(error_event(socket.app, exc))
        return
    try:
        stream = conversations(services).recorded(turn, prepared.events())
        async with contextlib.aclosing(stream) as events:
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
    services: Services,
) -> None:
    """Send an AskRequest as JSON text; receive the same events as the SSE stream as JSON
    messages (`type` is token, done or error). Several questions may follow one another;
    each counts against the key's rate limit (over it: an error event, status 429, code
    `rate_limit_exceeded`, and the socket stays open)."""
    await socket.accept()
    draining = query_service.draining
    budget = SocketBudget(socket, settings.security.rate_limit_per_minute)
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
            key = services.keys.get(socket.user.id)
            if key is None or not key.active:  # revoked while the socket was open
                await socket.close(code=WS_UNAUTHORIZED, reason="the API key was revoked")
                return
            if refused := await budget.refusal():
                await socket.send_data(_encoder.encode(refused).decode(), mode="text")
                continue
            await _answer_over_socket(socket, raw, query_service, settings, services)
        await socket.close(code=WS_1001_GOING_AWAY, reason=SHUTTING_DOWN)
    except WebSocketDisconnect:
        return
