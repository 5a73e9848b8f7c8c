"""One thread owns every llama.cpp context and interleaves their work.

Why one thread: on this machine, once a second live thread has run llama.cpp
(OpenMP) work, decoding on the first thread runs ~3× slower (87 → 30 tok/s,
measured with SmolLM2 + MiniLM; no OMP/GOMP setting fixed it). So embeddings and
generation share one owner thread, and the scheduler keeps both responsive:

1. query embeddings first (a search never waits for an answer to finish);
2. then one decode step of the active generation;
3. ingestion embeddings run when no generation is active, or one text every
   `background_every` decode steps, so ingestion never stops answers and
   answers never stop ingestion.

Texts are embedded one sequence per `llama_decode`: llama-cpp-python's `embed`
packs several sequences into one batch with attention masked across the whole
batch, which measured 2-4× slower per text than one sequence at a time here.

The generation part is a sequential stepper over `Llama.generate`; a
continuous-batching stepper can replace `_GenerationStepper` without touching
the event-loop side.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from appliance.engine.worker import Overloaded, WorkerStopped

log = logging.getLogger(__name__)

END = object()


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(fn, *args)
        return True
    except RuntimeError:  # loop closed
        return False


def _resolve(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


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
    prompt_tokens: list[int]
    max_tokens: int
    temperature: float
    loop: asyncio.AbstractEventLoop
    pieces: asyncio.Queue[object]
    cancel: threading.Event = field(default_factory=threading.Event)

    def emit(self, item: object) -> None:
        if not _post(self.loop, self.pieces.put_nowait, item):
            self.cancel.set()


class _GenerationStepper:
    """Advances one generation by one token per `step()`."""

    def __init__(self, llm: Any, job: GenerateJob) -> None:
        import llama_cpp

        self.job = job
        self._llm = llm
        self._vocab = llm._model.vocab
        self._is_eog = llama_cpp.llama_vocab_is_eog
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        greedy = job.temperature <= 0.0
        self._tokens = llm.generate(
            job.prompt_tokens,
            temp=job.temperature,
            top_k=1 if greedy else 40,
            top_p=1.0 if greedy else 0.95,
            min_p=0.0 if greedy else 0.05,
            repeat_penalty=1.0,
            reset=True,
        )
        self.produced = 0

    def step(self) -> bool:
        """Decode one token and emit its text; False when the generation is over."""
        if self.job.cancel.is_set():
            self.close()
            return False
        token = next(self._tokens)
        if self._is_eog(self._vocab, token):
            self._finish()
            return False
        self.produced += 1
        text = self._decoder.decode(self._llm._model.token_to_piece(token).rstrip(b"\0"))
        if text:
            self.job.emit(text)
        if self.produced >= self.job.max_tokens:
            self._finish()
            return False
        return True

    def _finish(self) -> None:
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self.job.emit(tail)
        self.job.emit(END)
        self.close()

    def close(self) -> None:
        self._tokens.close()


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
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="llama-engine", daemon=True)
        self.active_generations = 0
        self.embed_batches = 0

    # ---- lifecycle --------------------------------------------------------
    def start(self, timeout: float = 300.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise WorkerStopped(f"llama engine not ready after {timeout:.0f}s")
        if self._start_error is not None:
            raise self._start_error

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._start_error is None and not self._stopping

    def generation_depth(self) -> int:
        return len(self._waiting)

    def embed_depth(self) -> int:
        return len(self._interactive) + len(self._background)

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
        self, prompt_tokens: list[int], max_tokens: int, temperature: float
    ) -> GenerateJob:
        if not self.alive:
            raise WorkerStopped("llama engine is not running")
        loop = asyncio.get_running_loop()
        job = GenerateJob(prompt_tokens, max_tokens, temperature, loop, asyncio.Queue())
        with self._cond:
            if len(self._waiting) >= self._gen_limit:
                raise Overloaded("generation")
            self._waiting.append(job)
            self._cond.notify()
        return job

    # ---- the owner thread ---------------------------------------------------
    def _run(self) -> None:
        try:
            embedder = self._load_embedder()
            chat = self._load_chat()
        except BaseException as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._ready.set()
        active: _GenerationStepper | None = None
        steps_since_background = 0
        while True:
            with self._cond:
                while (
                    not self._stopping
                    and active is None
                    and not (self._interactive or self._background or self._waiting)
                ):
                    self._cond.wait()
                if self._stopping:
                    break
                embed_job: EmbedJob | None = None
                whole = True
                if self._interactive:
                    embed_job = self._interactive.popleft()
                elif self._background and (
                    (active is None and not self._waiting)
                    or steps_since_background >= self._background_every
                ):
                    embed_job = self._background[0]  # one text now, the rest later
                    whole = active is None and not self._waiting
                    steps_since_background = 0
                new_job = None
                if embed_job is None and active is None and self._waiting:
                    new_job = self._waiting.popleft()
            if embed_job is not None:
                self._embed(embedder, embed_job, whole)
                if embed_job.complete:
                    with self._cond:
                        if self._background and self._background[0] is embed_job:
                            self._background.popleft()
                continue
            if new_job is not None:
                if new_job.cancel.is_set():
                    continue
                try:
                    active = _GenerationStepper(chat, new_job)
                    self.active_generations = 1
                except Exception as exc:
                    new_job.emit(exc)
                    continue
            if active is not None:
                steps_since_background += 1
                try:
                    more = active.step()
                except BaseException as exc:
                    log.exception("generation failed")
                    active.job.emit(exc)
                    active.close()
                    more = False
                if not more:
                    active = None
                    self.active_generations = 0
        if active is not None:
            active.job.emit(WorkerStopped("llama engine stopped"))
            active.close()
        for job in (*self._interactive, *self._background):
            _post(job.loop, _resolve, job.fut, None, WorkerStopped("llama engine stopped"))
        for gen in self._waiting:
            gen.emit(WorkerStopped("llama engine stopped"))

    def _embed(self, embedder: Any, job: EmbedJob, whole: bool) -> None:
        """Embed the rest of `job` (whole) or its next text; resolve it when complete."""
        if job.fut.cancelled():
            job.vectors = [[] for _ in job.texts]  # mark complete so it is dropped
            return
        try:
            while not job.complete:
                text = job.texts[len(job.vectors)]
                job.vectors.append(embedder.embed([text], normalize=True, truncate=True)[0])
                if not whole:
                    break
            if job.complete:
                self.embed_batches += 1
                _post(job.loop, _resolve, job.fut, job.vectors, None)
        except BaseException as exc:
            job.vectors = [[] for _ in job.texts]
            _post(job.loop, _resolve, job.fut, None, exc)
