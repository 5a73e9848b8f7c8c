"""One answer from the external server: what its request fills in, what the reader reads.

The request runs in a task from `stream()` on (as the in-process engine starts at once)
and puts the answer's text pieces in a queue, then `END` or an error; the reader
iterates `RemoteTokenStream`, whose `aclose()` cancels the request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from appliance.engine.piece_stream import Ending, PieceStream
from appliance.engine.remote.admission import Admission

END = object()  # the last item of a request that ended by itself


class Answer(Ending):
    """What the task of one request fills in: text pieces (then `END` or an error),
    why it ended and how many tokens. The task holds this, not the `RemoteTokenStream`,
    so a stream dropped unread is collected and its `__del__` cancels the request."""

    def __init__(self, prompt_estimate: int) -> None:
        super().__init__()
        self.pieces: asyncio.Queue[object] = asyncio.Queue()
        self.started = False  # the task ran: it releases its admission itself
        self.prompt_estimate = prompt_estimate
        self.server_prompt_tokens = 0

    def put(self, item: object) -> None:
        self.pieces.put_nowait(item)

    def read_usage(self, usage: dict[str, Any]) -> None:
        completion = usage.get("completion_tokens")
        if isinstance(completion, int) and completion > 0:
            self.completion_tokens = completion
        prompt = usage.get("prompt_tokens")
        if isinstance(prompt, int):
            self.server_prompt_tokens = prompt
        details = usage.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        if isinstance(cached, int) and cached > 0:
            # in the estimate's units: the metrics subtract it from the prompt's length
            share = cached / max(prompt or cached, 1)
            self.cached_tokens = min(self.prompt_estimate, round(share * self.prompt_estimate))


class RemoteTokenStream(PieceStream):
    """Text pieces of one answer from the server; `aclose()` cancels the request.

    `request` is the task's work: it waits for the admission `place` and fills
    `answer`; a request cancelled before it started gives its place back here.
    """

    def __init__(
        self,
        answer: Answer,
        request: Coroutine[Any, Any, None],
        admission: Admission,
        place: asyncio.Future[None] | None,
    ) -> None:
        super().__init__(answer.pieces, answer)
        self._answer = answer
        try:
            self._task = asyncio.get_running_loop().create_task(request)
        except BaseException:
            request.close()
            admission.forfeit(place)
            raise

        def cancelled_before_start(task: asyncio.Task[None]) -> None:
            if not answer.started:
                admission.forfeit(place)

        self._task.add_done_callback(cancelled_before_start)

    @property
    def server_prompt_tokens(self) -> int:
        """The prompt's tokens as the server counted them (0: it did not say)."""
        return self._answer.server_prompt_tokens

    def ended(self, item: object) -> None:
        assert item is END

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({self._task})

    def __del__(self) -> None:
        task = getattr(self, "_task", None)
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # the loop is closed
                task.cancel()
