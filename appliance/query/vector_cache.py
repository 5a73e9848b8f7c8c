"""Embeddings on the query path, remembered: the question's and its candidate sentences'.

Many askers ask the same questions of the same passages, and every sentence embedding
waits in the one query-embedding queue (one text per llama.cpp decode). A text embedded
once is not embedded again while it is among the `max_entries` used last, and askers
wanting a text whose embedding is under way await that one embedding.

The key is the embedder object (an embedding switch hands a new one, so its vectors never
meet the old model's) and a SHA-256 digest of the exact text (untrusted and of any length:
the key is its digest, nothing else). The embedder is held weakly: a switched-out model is
not kept alive by its vectors, which age out of the cache. Vectors are kept as float32
(384 dimensions: 1.5 KiB each, ~31 MiB for 20,000) and every caller, the first included,
gets the same float32 values.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.domain.protocols import Embedder

# Vectors kept (least recently used dropped first): ~31 MiB of float32 at 384 dimensions.
MAX_ENTRIES = 20_000

_Key = tuple[int, bytes]  # the embedder's serial number, the text's SHA-256 digest


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class _Pending:
    """An embedding under way: the task that embeds `keys` (in its order) and whether it
    goes ahead of other work (`urgent`)."""

    task: asyncio.Task[np.ndarray]
    index: dict[_Key, int]
    urgent: bool


class VectorCache:
    """`embed` as `Embedder.embed(texts, interactive=True)` would, remembering vectors."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._max = max_entries
        self._vectors: OrderedDict[_Key, np.ndarray] = OrderedDict()
        self._pending: dict[_Key, _Pending] = {}
        self._serials: weakref.WeakKeyDictionary[Embedder, int] = weakref.WeakKeyDictionary()
        self._counter = itertools.count()
        self.hits = 0  # texts served from the cache or from an embedding under way
        self.misses = 0  # texts embedded
        self._queued = 0  # texts of urgent embeddings under way

    def queued(self) -> int:
        """Texts of the urgent embeddings under way: what a new one waits behind."""
        return self._queued

    def __len__(self) -> int:
        return len(self._vectors)

    def _serial(self, embedder: Embedder) -> int | None:
        """A number of `embedder` never given to another (None: it cannot be held weakly)."""
        try:
            serial = self._serials.get(embedder)
            if serial is None:
                serial = self._serials[embedder] = next(self._counter)
        except TypeError:
            return None
        return serial

    async def embed(
        self, embedder: Embedder, texts: Sequence[str], *, urgent: bool = True, shared: str = ""
    ) -> list[list[float]]:
        """The embeddings of `texts` by `embedder` (the query path: `interactive=True`).
        `urgent=False` (evidence after the answer) never holds up an urgent caller: those
        do not wait for a non-urgent embedding under way. `shared`: who may share these
        entries (a question is shared only within the same collections: a cached
        question answers sooner, and that must not tell one team what another asked)."""
        serial = self._serial(embedder) if self._max > 0 else None
        if serial is None:
            return await embedder.embed(texts, interactive=True, urgent=urgent)
        keys = [(serial, _digest(f"{shared}\0{t}" if shared else t)) for t in texts]
        found: dict[_Key, np.ndarray] = {}
        waits: dict[_Key, _Pending] = {}
        missing: dict[_Key, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key in found or key in waits or key in missing:
                continue
            vector = self._vectors.get(key)
            pending = self._pending.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
                found[key] = vector
            elif pending is not None and (pending.urgent or not urgent):
                waits[key] = pending
            else:
                missing[key] = text
        self.hits += len(found) + len(waits)
        self.misses += len(missing)
        if missing:
            waits.update(self._start(embedder, missing, urgent))
        for key, pending in waits.items():
            # shielded: an asker who leaves does not cancel the embedding the others await
            found[key] = (await asyncio.shield(pending.task))[pending.index[key]]
        return [found[key].tolist() for key in keys]

    def _start(
        self, embedder: Embedder, missing: dict[_Key, str], urgent: bool
    ) -> dict[_Key, _Pending]:
        async def embed() -> np.ndarray:
            vectors = await embedder.embed(list(missing.values()), interactive=True, urgent=urgent)
            return np.asarray(vectors, dtype=np.float32).reshape(len(missing), -1)

        task = asyncio.ensure_future(embed())
        pending = _Pending(task, {key: i for i, key in enumerate(missing)}, urgent)
        if urgent:
            self._queued += len(missing)
        for key in missing:
            self._pending[key] = pending
        task.add_done_callback(lambda done: self._finished(pending, done))
        return dict.fromkeys(missing, pending)

    def _finished(self, pending: _Pending, task: asyncio.Task[np.ndarray]) -> None:
        """Keep the vectors of a finished embedding (an error goes to its askers only)."""
        for key in pending.index:
            if self._pending.get(key) is pending:
                del self._pending[key]
        if pending.urgent:
            self._queued -= len(pending.index)
        if task.cancelled() or task.exception() is not None:
            return
        vectors = task.result()
        for key, i in pending.index.items():
            self._vectors[key] = vectors[i].copy()  # not a view: the batch is not kept whole
            self._vectors.move_to_end(key)
        while len(self._vectors) > self._max:
            self._vectors.popitem(last=False)
