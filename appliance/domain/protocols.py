"""Interfaces of the services; wiring picks the concrete adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from appliance.domain.types import ChunkRecord, Hit


class TokenCounter(Protocol):
    def count_tokens(self, text: str) -> int: ...


class Embedder(Protocol):
    """Turns texts into unit vectors. Query calls take precedence over ingestion calls."""

    @property
    def dim(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    async def embed(self, texts: Sequence[str], *, interactive: bool) -> list[list[float]]: ...

    def queue_depth(self) -> int: ...


class ChatPrompt(Protocol):
    """A prompt rendered with the model's chat template and tokenized."""

    @property
    def tokens(self) -> list[int]: ...


class Generator(Protocol):
    """Streams completions of chat prompts."""

    @property
    def n_ctx(self) -> int: ...

    def render(self, messages: list[dict[str, str]]) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def tokenize(self, text: str) -> list[int]: ...

    def stream(
        self, prompt_tokens: list[int], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[str]: ...

    def queue_depth(self) -> int: ...


class VectorStore(Protocol):
    """Where chunk vectors live: embedded or a Qdrant server, same interface."""

    async def upsert(self, records: Sequence[ChunkRecord]) -> None: ...

    async def delete_by_document(self, document_id: str) -> None: ...

    async def search(
        self, vector: list[float], top_k: int, document_ids: Sequence[str] | None = None
    ) -> list[Hit]: ...

    async def count(self, document_id: str | None = None) -> int: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
