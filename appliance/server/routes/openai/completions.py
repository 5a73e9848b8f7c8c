"""Chat completions over the query service: an answer (RAG) or plain chat, as pieces of
text then how it finished (a RAG answer opens with its first evidence); the whole
completion, or pieces for the stream."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import msgspec

from appliance.config.schema import Settings
from appliance.domain.errors import ApplianceError, FieldError
from appliance.domain.types import (
    AnswerEvent,
    DoneEvent,
    ErrorEvent,
    EvidenceEvent,
    FinishReason,
    TokenEvent,
)
from appliance.query.chat import ChatDone, ChatEvent, Message, retrieval_question
from appliance.query.params import AskParams
from appliance.query.pipeline import QueryService
from appliance.server.reader import Reader
from appliance.wire.openai import (
    APPLIANCE_MODEL,
    MAX_CHAT_CHARS,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    CompletionUsage,
    OpenAIFinish,
    PromptTokensDetails,
    RagEvidence,
    RagExtra,
)


@dataclass(frozen=True)
class Finished:
    finish_reason: OpenAIFinish
    usage: CompletionUsage
    rag: RagExtra | msgspec.UnsetType


Piece = str | RagEvidence | Finished | ErrorEvent


@dataclass(frozen=True)
class Run:
    """A queued completion: its pieces of text, then `Finished` or an `ErrorEvent`; a RAG
    answer's first piece is its evidence (`opens_with_evidence`)."""

    pieces: AsyncGenerator[Piece, None]
    cancel: Callable[[], Awaitable[None]]
    opens_with_evidence: bool = False
    retry_after: int | None = None  # a "busy" answer: the generation queue was full


def finish(reason: FinishReason) -> OpenAIFinish:
    # "repetition" (a loop cut short), "cancelled" and "busy" (the extractive answer, the
    # queue being full: `rag.finish_reason` says so) end the text as a stop does
    return "length" if reason == "length" else "stop"


def usage_of(prompt: int, completion: int, cached: int) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
    )  # fmt: skip


async def pieces(
    events: AsyncGenerator[AnswerEvent, None] | AsyncGenerator[ChatEvent, None], query: str
) -> AsyncGenerator[Piece, None]:
    """Answer or chat events as pieces (`query`: what a RAG answer searched for)."""
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, TokenEvent):
                yield event.text
            elif isinstance(event, EvidenceEvent):
                yield RagEvidence(query=query, evidence=event.evidence)
            elif isinstance(event, DoneEvent):
                t = event.timings
                rag = RagExtra(
                    query=query, citations=event.citations, evidence=event.evidence,
                    grounded=event.grounded, unsupported=event.unsupported,
                    strategy=event.strategy, timings=t, finish_reason=event.finish_reason,
                )  # fmt: skip
                usage = usage_of(t.prompt_tokens, t.completion_tokens, t.cached_prompt_tokens)
                yield Finished(finish(event.finish_reason), usage, rag)
            elif isinstance(event, ChatDone):
                usage = usage_of(event.prompt_tokens, event.completion_tokens, event.cached_tokens)
                yield Finished(finish(event.finish_reason), usage, msgspec.UNSET)
            else:
                yield event


def conversation(data: ChatCompletionRequest) -> list[Message]:
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        for m in data.messages
    ]
    if sum(len(m["content"]) for m in messages) > MAX_CHAT_CHARS:
        raise FieldError("messages", f"at most {MAX_CHAT_CHARS} characters in all")
    return messages


def searched(data: ChatCompletionRequest, reader: Reader) -> frozenset[str] | None:
    """The collections a RAG completion searches: `appliance/NAME` names one; any other
    model name, all the key reads; `filters.collections` narrows either."""
    family, slash, name = data.model.partition("/")
    within = reader.searched(data.filters)
    if not (family == APPLIANCE_MODEL and slash):
        return within
    chosen = reader.collection(name, "model").id
    return within & {chosen} if within is not None else frozenset({chosen})


async def start(
    data: ChatCompletionRequest, query_service: QueryService, settings: Settings, reader: Reader
) -> Run:
    """Queue the completion; refusals (400, 503) raise here, before anything streams."""
    g = settings.generation
    messages = conversation(data)
    temperature = g.temperature if data.temperature is None else data.temperature
    max_tokens = data.max_completion_tokens or data.max_tokens
    if not data.rag:
        prepared_chat = await query_service.chat.prepare(
            messages, max_tokens=max_tokens, temperature=temperature
        )
        return Run(pieces(prepared_chat.events(), ""), prepared_chat.cancel)
    index, question = retrieval_question(messages)
    params = AskParams(
        question=question, top_k=data.top_k or settings.retrieval.top_k, max_tokens=max_tokens,
        temperature=temperature, document_ids=data.document_ids, strategy=data.strategy,
        filters=data.filters, collections=searched(data, reader),
    )  # fmt: skip
    try:
        prepared = await query_service.ask(params, reader.key.id)
    except FieldError as exc:
        if exc.field == "query":  # the question: the message it came from
            exc.field = f"messages[{index}].content"
        raise
    return Run(
        pieces(prepared.events(), question), prepared.cancel, opens_with_evidence=True,
        retry_after=prepared.retry_after,
    )  # fmt: skip


def failed(event: ErrorEvent) -> ApplianceError:
    return ApplianceError(event.message, status=event.status, code=event.code or "failed")


async def complete(run: Run, model: str) -> ChatCompletion:
    texts: list[str] = []
    finished: Finished | None = None
    try:
        async with contextlib.aclosing(run.pieces) as pieces:
            async for piece in pieces:
                if isinstance(piece, str):
                    texts.append(piece)
                elif isinstance(piece, RagEvidence):
                    continue  # the whole completion's `rag` carries the final evidence
                elif isinstance(piece, ErrorEvent):
                    raise failed(piece)
                else:
                    finished = piece
                    break
    finally:
        await run.cancel()
    if finished is None:
        raise failed(ErrorEvent("generation ended without an answer", 500))
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model,
        choices=[Choice(0, AssistantMessage("".join(texts).strip()), finished.finish_reason)],
        usage=finished.usage, rag=finished.rag,
    )  # fmt: skip
