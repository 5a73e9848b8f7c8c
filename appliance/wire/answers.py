"""What an answer is made of: its citations, evidence sentences and timings, and the
events of a streamed answer (`POST /v1/ask/stream`, the WebSocket). The query pipeline
builds them, the server sends them, the client reads them."""

from __future__ import annotations

from typing import Literal

import msgspec


class Citation(msgspec.Struct, frozen=True):
    """Where a passage of an answer's context came from; `index` matches [n] in the answer."""

    index: int
    document_id: str
    file_name: str
    chunk_index: int
    score: float
    page: int | None = None
    heading: str | None = None
    snippet: str = ""
    location: str | None = None  # "sheet Prices, rows 2-31", "slide 4", ...
    title: str | None = None  # the document's metadata, where its format has them
    author: str | None = None
    file_type: str | None = None
    source: str | None = None  # the synced folder it came from; None: uploaded


class Evidence(msgspec.Struct, frozen=True):
    """A sentence of a passage that supports the answer.

    `start`/`end` are character offsets into the stored chunk text: the chunk's
    `text[start:end]` is `text` exactly.
    """

    document_id: str
    file_name: str
    chunk_index: int
    start: int
    end: int
    text: str
    score: float
    citation: int  # the [n] of the passage it is from
    page: int | None = None
    heading: str | None = None
    location: str | None = None


class Timings(msgspec.Struct, frozen=True):
    """Stage latencies of one question, in milliseconds."""

    embed_ms: float
    search_ms: float
    prompt_ms: float
    first_token_ms: float
    generate_ms: float
    total_ms: float
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float
    cached_prompt_tokens: int = 0  # prompt tokens reused from the slot's KV cache


class EvidenceEvent(msgspec.Struct, frozen=True, tag="evidence"):
    """The first event of an answer, before any token: the sentences of the retrieved
    passages that best answer the question (the `done` event then carries the evidence
    ranked against the answer too). Same shape and offsets as `done`'s evidence."""

    evidence: list[Evidence]


class TokenEvent(msgspec.Struct, frozen=True, tag="token"):
    """A piece of the answer as it is generated."""

    text: str


# "busy": every slot and the queue were taken, so the answer is the extractive one (the
# evidence quoted), sent with a Retry-After hint instead of a 503.
FinishReason = Literal["stop", "length", "repetition", "cancelled", "busy"]


class DoneEvent(msgspec.Struct, frozen=True, tag="done"):
    """The end of an answer: the full text, its citations, evidence and timings.

    `grounded` is the share of answer sentences supported by what the model read
    (0..1); `unsupported` lists the answer sentences with no support.
    """

    answer: str
    citations: list[Citation]
    timings: Timings
    finish_reason: FinishReason = "stop"
    evidence: list[Evidence] = msgspec.field(default_factory=list)
    grounded: float = 0.0
    unsupported: list[str] = msgspec.field(default_factory=list)
    strategy: str = ""
    conversation_id: str | None = None  # when asked within a conversation
    searched: str | None = None  # then: the question as searched (a follow-up rewritten)


class ErrorEvent(msgspec.Struct, frozen=True, tag="error"):
    """Generation failed mid-stream; the stream ends after this event. `code` names
    the cause for programs (`shutting_down`: the server is stopping, ask again)."""

    message: str
    status: int = 500
    code: str | None = None


AnswerEvent = EvidenceEvent | TokenEvent | DoneEvent | ErrorEvent
