"""Interfaces of the services; the composition root (`server/build.py`) picks the
concrete adapters, and nothing above it names one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import Protocol

from appliance.domain.types import ChunkRecord, DocumentFilter, DocumentInfo, Hit


class Embedder(Protocol):
    """Turns texts into unit vectors. Query calls take precedence over ingestion calls;
    `urgent=False` (evidence for an answer already streamed) yields to the next
    asker's query embeddings."""

    @property
    def dim(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    async def embed(
        self, texts: Sequence[str], *, interactive: bool, urgent: bool = True
    ) -> list[list[float]]: ...

    def queue_depth(self) -> int: ...


class TokenStream(Protocol):
    """Text pieces of one answer; `aclose()` cancels the generation.

    After the last piece: why it ended ("stop", "length", "repetition"; None if it
    did not end by itself) and the number of tokens generated and reused from cache.
    """

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def completion_tokens(self) -> int: ...

    @property
    def cached_tokens(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


class Generator(Protocol):
    """Streams completions of chat prompts."""

    @property
    def n_ctx(self) -> int: ...

    def render(self, messages: list[dict[str, str]]) -> str: ...

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """The tokens of `render(messages)`: the chat template's own markers as special
        tokens, message contents (untrusted) as plain text."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """BOS and the tokens of `text` as plain text (special-token strings stay text)."""
        ...

    def stream(
        self,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        temperature: float,
        messages: list[dict[str, str]] | None = None,
        favour: str = "",
        favour_bias: float = 0.0,
    ) -> TokenStream:
        """Queue a generation at once (may raise `Overloaded`); iterate the text pieces.
        `prompt_tokens` are `encode(messages)`: the in-process model reads the
        tokens, an external server the messages. `favour_bias` is added to the log-odds
        of every token of `favour` (the copy bias; an external server ignores it)."""
        ...

    def queue_depth(self) -> int: ...

    @property
    def active(self) -> int:
        """Answers being generated now (slots in use, or requests in flight)."""
        ...

    @property
    def slots(self) -> int:
        """Answers generated at once at most."""
        ...

    @property
    def alive(self) -> bool:
        """Whether the generator ran (or its server answered) last time; no request made."""
        ...

    async def readiness(self) -> str:
        """The readiness check's code: "ok", "not_running" or "unreachable" (why is
        logged)."""
        ...

    async def aclose(self) -> None:
        """Close what the event loop holds (connections), at shutdown."""
        ...


class VectorStore(Protocol):
    """Where chunk vectors live: embedded or a Qdrant server, same interface."""

    async def upsert(self, records: Sequence[ChunkRecord]) -> None: ...

    async def delete_by_document(self, document_id: str) -> None: ...

    @property
    def hybrid(self) -> bool:
        """Whether `search(..., text=...)` also ranks by BM25 (fused by reciprocal rank)."""
        ...

    async def search(
        self,
        vector: list[float],
        top_k: int,
        document_ids: Sequence[str] | None = None,
        *,
        text: str | None = None,
        min_score: float | None = None,
        collections: Collection[str] | None = None,
    ) -> list[Hit]:
        """Nearest chunks; with `text` on a hybrid store, dense and BM25 rankings fused
        (RRF scores). `min_score` drops dense candidates below that cosine.
        `collections` (ids; None: all) is a condition inside the query, so top-k stays
        top-k within them."""
        ...

    async def count(self, document_id: str | None = None) -> int: ...

    async def document_counts(self) -> dict[str, int]:
        """Points per document id: what the reconciler checks against the journal."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class DocumentCatalog(Protocol):
    """The documents' metadata (the journal): which match a filter, what a citation shows."""

    async def matching(self, f: DocumentFilter) -> list[str]: ...

    async def describe(self, document_ids: Sequence[str]) -> dict[str, DocumentInfo]: ...
