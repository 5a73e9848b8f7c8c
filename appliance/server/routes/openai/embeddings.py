"""Embeddings for `POST /v1/embeddings`: the live embedding model in small slices,
shortened and encoded as OpenAI does (`base64`: little-endian float32)."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import numpy as np

from appliance.domain.protocols import Embedder

# A batch of texts is embedded in slices of at most this many texts and characters
# (about one 512-token context): askers' question embeddings, urgent, get in between
# slices, so they wait for one slice at most, not for the batch.
EMBED_SLICE_TEXTS = 16
EMBED_SLICE_CHARS = 2048


def slices(texts: Sequence[str]) -> Iterator[list[str]]:
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


async def embed(embedder: Embedder, texts: Sequence[str]) -> list[list[float]]:
    urgent = len(texts) == 1  # a batch yields to askers' question embeddings
    vectors: list[list[float]] = []
    for part in slices(texts):
        vectors += await embedder.embed(part, interactive=True, urgent=urgent)
    return vectors


def vectors_out(
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
