"""BM25 sparse vectors: the lexical half of hybrid retrieval, shared by both stores.

Dense MiniLM vectors miss exact tokens (error codes, part numbers, command names);
BM25 finds them. The encoder is Qdrant's own (`qdrant_edge.Bm25`, token ids compatible
with a Qdrant server's `qdrant/bm25`): documents get term-frequency weights from
`(k, b, avg_len)`, queries weight 1 per unique token, and the store applies IDF
(`Modifier.Idf`) over what it holds. `k`, `b` and `avg_len` are baked into the stored
vectors: the store records them and re-encodes its chunks when they change.

Every vector is checked here before it reaches a store: qdrant-edge panics (a Rust
panic, a `BaseException`) on indices and values of different lengths and then fails
every later write and even `load()`, since the bad write is replayed from its log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SPARSE_NAME = "bm25"  # the named sparse vector in both stores
RRF_K = 60  # reciprocal-rank fusion constant (qdrant-edge has no default; the client's is 2)
_MAX_INDEX = 2**32 - 1


@dataclass(frozen=True)
class Bm25Params:
    avg_len: float = 100.0  # average chunk length in words (chunks are ~200 model tokens)
    k: float = 1.2
    b: float = 0.75

    def as_dict(self) -> dict[str, float]:
        return {"avg_len": self.avg_len, "k": self.k, "b": self.b}


@dataclass(frozen=True)
class Sparse:
    indices: list[int]
    values: list[float]

    def __bool__(self) -> bool:
        return bool(self.indices)


def checked(indices: list[int], values: list[float]) -> Sparse:
    """A sparse vector safe to store: same lengths, indices unique (weights of a repeated
    index summed) and within u32, values finite. Raises ValueError otherwise."""
    if len(indices) != len(values):
        raise ValueError(f"sparse vector: {len(indices)} indices but {len(values)} values")
    merged: dict[int, float] = {}
    for index, value in zip(indices, values, strict=True):
        if not isinstance(index, int) or not 0 <= index <= _MAX_INDEX:
            raise ValueError(f"sparse vector: index {index!r} is not a u32")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"sparse vector: value {value!r} at index {index} is not finite")
        merged[index] = merged.get(index, 0.0) + value
    ordered = sorted(merged)
    return Sparse(ordered, [merged[i] for i in ordered])


class LexicalEncoder:
    """BM25 encoding of chunk texts and queries (thread-safe, pure Rust underneath)."""

    def __init__(self, params: Bm25Params = Bm25Params()) -> None:
        import qdrant_edge as qe

        self.params = params
        self._model: Any = qe.Bm25(qe.Bm25Config(k=params.k, b=params.b, avg_len=params.avg_len))

    def document(self, text: str) -> Sparse:
        vector = self._model.embed_document(text)
        return checked(list(vector.indices), list(vector.values))

    def query(self, text: str) -> Sparse:
        vector = self._model.embed_query(text)
        return checked(list(vector.indices), list(vector.values))


def prefetch_limit(top_k: int) -> int:
    """Candidates each ranking gives the fusion: enough that a passage ranked low by one
    and high by the other still reaches the top."""
    return max(4 * top_k, 20)


def indexed_text(text: str, heading: str | None, file_name: str) -> str:
    """What BM25 indexes for a chunk: its text, its heading and its file's name."""
    return "\n".join(part for part in (file_name, heading, text) if part)
