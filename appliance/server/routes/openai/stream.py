"""A chat completion as Server-Sent Events, framed as the OpenAI API sends them."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from appliance.domain.types import ErrorEvent
from appliance.server.routes.openai.completions import Run
from appliance.server.routes.openai.errors import error_type
from appliance.wire.openai import (
    ChatCompletionChunk,
    ChunkChoice,
    CompletionUsage,
    Delta,
    OpenAIError,
    OpenAIErrorDetail,
    RagEvidence,
)

_encoder = msgspec.json.Encoder()


def frame(payload: msgspec.Struct) -> bytes:
    return b"data: " + _encoder.encode(payload) + b"\n\n"


async def sse(run: Run, model: str, include_usage: bool) -> AsyncIterator[bytes]:
    """`data: {chunk}` events as the OpenAI API sends them, then `data: [DONE]`; a
    failure mid-way is a `data: {"error": ...}` event (the SDK raises it). A RAG answer's
    first chunk (the assistant role) carries its first evidence in `rag`."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    usage: CompletionUsage | msgspec.UnsetType | None = None if include_usage else msgspec.UNSET

    def chunk(choices: list[ChunkChoice], **extra: Any) -> ChatCompletionChunk:
        fields = {"usage": usage, **extra}
        return ChatCompletionChunk(id=cid, created=created, model=model, choices=choices, **fields)

    opening = [ChunkChoice(0, Delta(role="assistant", content=""))]
    try:
        if not run.opens_with_evidence:  # plain chat: the role at once
            yield frame(chunk(opening))
        started = False  # leading whitespace is dropped, as from the whole answer
        async with contextlib.aclosing(run.pieces) as pieces:
            async for piece in pieces:
                if isinstance(piece, RagEvidence):  # a RAG answer's first piece
                    yield frame(chunk(opening, rag=piece))
                elif isinstance(piece, str):
                    if not started:
                        piece = piece.lstrip()
                        started = bool(piece)
                    if piece:
                        yield frame(chunk([ChunkChoice(0, Delta(content=piece))]))
                elif isinstance(piece, ErrorEvent):
                    code = piece.code or "failed"
                    detail = OpenAIErrorDetail(piece.message, error_type(piece.status), None, code)
                    yield frame(OpenAIError(detail))
                    return
                else:
                    yield frame(
                        chunk([ChunkChoice(0, Delta(), piece.finish_reason)], rag=piece.rag)
                    )
                    if include_usage:
                        yield frame(chunk([], usage=piece.usage))
                    yield b"data: [DONE]\n\n"
                    return
        detail = OpenAIErrorDetail("generation ended without an answer", "server_error")
        yield frame(OpenAIError(detail))
    finally:
        await run.cancel()
