"""One thread owns every llama.cpp context and interleaves their work.

Why one thread: on this machine, once a second live thread has run llama.cpp
(OpenMP) work, decoding on the first thread runs ~3× slower (87 → 30 tok/s,
measured with SmolLM2 + MiniLM; no OMP/GOMP setting fixed it). So embeddings and
generation share one owner thread, and the scheduler keeps both responsive:

1. query embeddings first (a search never waits for an answer to finish); with
   answers streaming, one decode step runs between two such jobs, so a burst of
   evidence or `/v1/embeddings` batches cannot hold them still;
2. then one continuous-batching decode step (`batching.BatchedChat`): every
   active answer advances by one token, waiting requests join as slots and KV
   cache allow, long prompts are read in chunks;
3. ingestion embeddings run when no answer is active, or one text every
   `background_every` decode steps, so ingestion never stops answers and
   answers never stop ingestion.

Texts are embedded one sequence per `llama_decode`: llama-cpp-python's `embed`
packs several sequences into one batch with attention masked across the whole
batch, which measured 2-4× slower per text than one sequence at a time here.

"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.domain.errors import Overloaded, WorkerStopped
from appliance.engine.batching import BatchedChat
from appliance.engine.cpu_share import ThreadBudget
from appliance.engine.priority import prepare_compute_thread
from appliance.engine.scheduler import Finished, Request
from appliance.runtime.worker import OwnerThread, post_to_loop, resolve_future

log = logging.getLogger(__name__)

__all__ = ["Finished", "GenerateJob", "LlamaEngineThread"]


@dataclass
class EmbedJob:
    texts: list[str]
    loop: asyncio.AbstractEventLoop
    fut: asyncio.Future[list[list[float]]]
    vectors: list[list[float]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.vectors) == len(self.texts)


@dataclass
class GenerateJob:
    loop: asyncio.AbstractEventLoop
    pieces: asyncio.Queue[object]
    wake: Callable[[], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    request: Request = field(init=False)
    cached: int = 0  # prompt tokens reused from the slot's cache, known once admitted

    def admitted(self, cached: int) -> None:
        """On the engine thread, before the first piece is emitted."""
        self.cached = cached

    def stop(self) -> None:
        """Cancel this generation and wake the engine so its slot is freed now."""
        self.cancel.set()
        self.wake()

    def emit(self, item: object) -> None:
        if not post_to_loop(self.loop, self.pieces.put_nowait, item):
            self.cancel.set()


class LlamaEngineThread:
    """Owns the chat and embedding contexts; the event loop talks to it with futures."""

    def __init__(
        self,
        *,
        load_chat: Callable[[], Any],
        load_embedder: Callable[[], Any],
        generation_queue_size: int,
        embed_queue_size: int = 256,
        background_every: int = 8,
        thread_nice: int = 0,
        budget: ThreadBudget | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> None:
        self._load_chat = load_chat
        self._load_embedder = load_embedder
        self._gen_limit = generation_queue_size
        self._embed_limit = embed_queue_size
        self._background_every = background_every
        self._cond = threading.Condition()
        self._interactive: collections.deque[EmbedJob] = collections.deque()
        self._background: collections.deque[EmbedJob] = collections.deque()
        self._waiting: collections.deque[GenerateJob] = collections.deque()
        self._stopping = False
        self._owner = OwnerThread(self._run, "llama-engine")
        self._on_step = on_step
        self._nice = thread_nice
        self._budget = budget
        self._chat_threads = 0
        self._seeds = itertools.count(1)
        self._chat: BatchedChat | None = None
        self.slots = 0

    # ---- lifecycle --------------------------------------------------------
    def start(self, timeout: float = 300.0) -> None:
        self._owner.start(timeout, "llama engine not ready")

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._owner.thread.is_alive():
            self._owner.thread.join(timeout)

    @property
    def active_generations(self) -> int:
        """Sequences holding a slot now (read live: a slot is freed before `Finished` goes)."""
        chat = self._chat
        return chat.active if chat is not None else 0

    @property
    def native_id(self) -> int | None:
        """The OS thread id of the engine thread (None before it starts)."""
        return self._owner.thread.native_id

    @property
    def alive(self) -> bool:
        return self._owner.alive and not self._stopping

    def generation_depth(self) -> int:
        return sum(1 for job in self._waiting if not job.cancel.is_set())

    def _drop_cancelled(self) -> None:
        if any(job.cancel.is_set() for job in self._waiting):
            self._waiting = collections.deque(j for j in self._waiting if not j.cancel.is_set())

    def embed_depth(self) -> int:
        return len(self._interactive) + len(self._background)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # ---- submission (event-loop side) ---------------------------------------
    def submit_embed(
        self, texts: list[str], interactive: bool
    ) -> asyncio.Future[list[list[float]]]:
        if not self.alive:
            raise WorkerStopped("llama engine is not running")
        loop = asyncio.get_running_loop()
        job = EmbedJob(texts, loop, loop.create_future())
        with self._cond:
            if self.embed_depth() >= self._embed_limit:
                raise Overloaded("embedding")
            (self._interactive if interactive else self._background).append(job)
            self._cond.notify()
        return job.fut

    def submit_generate(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        temperature: float,
        logit_bias: tuple[tuple[int, float], ...] = (),
    ) -> GenerateJob:
        if not self.alive:
            raise WorkerStopped("llama engine is not running")
        loop = asyncio.get_running_loop()
        job = GenerateJob(loop, asyncio.Queue(), self._wake)
        job.request = Request(
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            logit_bias=logit_bias,
            admitted=job.admitted,
            emit=job.emit,
            cancelled=job.cancel.is_set,
            seed=next(self._seeds),
        )
        with self._cond:
            self._drop_cancelled()
            if len(self._waiting) >= self._gen_limit:
                raise Overloaded("generation")
            self._waiting.append(job)
            self._cond.notify()
        return job

    # ---- the owner thread ---------------------------------------------------
    def _run(self) -> None:
        prepare_compute_thread(self._nice)
        try:
            embedder = self._load_embedder()
            chat: BatchedChat = self._load_chat()
        except BaseException as exc:
            self._owner.failed(exc)
            return
        self.slots = chat.slots
        self._chat = chat
        self._owner.ready()
        steps_since_background = 0
        decode_owed = False
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._has_work(chat):
                        self._cond.wait()
                    if self._stopping:
                        break
                    # admit waiting requests while a slot and KV cells are free
                    while self._waiting and (
                        self._waiting[0].cancel.is_set() or chat.can_admit(self._waiting[0].request)
                    ):
                        job = self._waiting.popleft()
                        if not job.cancel.is_set():
                            chat.admit(job.request)
                    embed_job: EmbedJob | None = None
                    whole = True
                    busy = chat.active > 0 or bool(self._waiting)
                    # interactive texts go first, but with answers streaming, a decode step
                    # runs between two jobs: a stream of /v1/embeddings batches or of
                    # evidence cannot hold every answer still
                    if self._interactive and not (decode_owed and chat.active):
                        embed_job = self._interactive.popleft()
                        decode_owed = True
                    elif self._background and (
                        not busy or steps_since_background >= self._background_every
                    ):
                        # one text per turn, so a query can cut in between texts
                        embed_job = self._background[0]
                        whole = False
                        steps_since_background = 0
                if embed_job is not None:
                    self._embed(embedder, embed_job, whole)
                    if embed_job.complete:
                        with self._cond:
                            if self._background and self._background[0] is embed_job:
                                self._background.popleft()
                    continue
                if chat.active:
                    steps_since_background += 1
                    decode_owed = False
                    self._fit_threads(chat)
                    try:
                        chat.step()
                    except Exception as exc:  # a Python-side bug: fail the streams, go on
                        log.exception("decode step failed")
                        chat.cancel_all(exc)
                    if self._on_step is not None:
                        self._on_step(chat.last_batch_tokens, chat.last_batch_sequences)
        finally:
            stopped = WorkerStopped("llama engine stopped")
            chat.cancel_all(stopped)
            self._chat = None
            for pending in (*self._interactive, *self._background):
                post_to_loop(pending.loop, resolve_future, pending.fut, None, stopped)
            for gen in self._waiting:
                gen.emit(stopped)
            chat.close()

    def _fit_threads(self, chat: BatchedChat) -> None:
        """Give the next decode the threads the machine has free now (cpu_share.py)."""
        if self._budget is None:
            return
        threads = self._budget.threads()
        if threads != self._chat_threads:
            chat.set_threads(threads)
            self._chat_threads = threads

    @property
    def chat_threads(self) -> int:
        """Compute threads of the last decode step (0 before the first)."""
        return self._chat_threads

    def _has_work(self, chat: BatchedChat) -> bool:
        if self._interactive or self._background or chat.active:
            return True
        return any(job.cancel.is_set() or chat.can_admit(job.request) for job in self._waiting)

    def _embed(self, embedder: Any, job: EmbedJob, whole: bool) -> None:
        """Embed the rest of `job` (whole) or its next text; resolve it when complete."""
        if job.fut.cancelled():
            job.vectors = [[] for _ in job.texts]  # mark complete so it is dropped
            return
        try:
            while not job.complete:
                text = job.texts[len(job.vectors)]
                job.vectors.append(embedder.embed_one(text))
                if not whole:
                    break
            if job.complete:
                post_to_loop(job.loop, resolve_future, job.fut, job.vectors, None)
        except BaseException as exc:
            job.vectors = [[] for _ in job.texts]
            post_to_loop(job.loop, resolve_future, job.fut, None, exc)
