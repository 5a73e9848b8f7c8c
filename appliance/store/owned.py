"""The lifecycle every store adapter shares: one owner thread, started once."""

from __future__ import annotations

from typing import Any

from appliance.runtime.worker import ThreadWorker


class ThreadOwned:
    """Base for adapters whose client lives on one `ThreadWorker` (`self._worker`)."""

    _worker: ThreadWorker[Any]

    def start(self) -> None:
        self._worker.start()

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def queue_depth(self) -> int:
        return self._worker.depth()
