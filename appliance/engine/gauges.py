"""What both generators tell the same way: their context and how busy they are, read
from whoever admits their requests (the engine thread, or the admission to an external
server)."""

from __future__ import annotations

from typing import Protocol


class GenerationQueue(Protocol):
    """Admits generations: at most `slots` at once, the others wait their turn."""

    @property
    def slots(self) -> int: ...

    @property
    def active_generations(self) -> int: ...

    def generation_depth(self) -> int: ...


class GeneratorGauges:
    """The `domain.protocols.Generator` members read from `queue`, and its `n_ctx`."""

    def __init__(self, queue: GenerationQueue, n_ctx: int) -> None:
        self._queue = queue
        self.n_ctx = n_ctx  # tokens a prompt and its answer may take

    @property
    def active(self) -> int:
        """Answers being generated now (slots in use, or requests in flight)."""
        return self._queue.active_generations

    def queue_depth(self) -> int:
        """Generations waiting for a slot."""
        return self._queue.generation_depth()

    @property
    def slots(self) -> int:
        """Answers generated at once at most."""
        return self._queue.slots
