"""Streaming chat generation with llama.cpp, one request at a time on one owner thread.

The interface (`render`, `tokenize`, `stream`) is what the query pipeline uses, so a
continuous-batching scheduler can replace this class without touching callers.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import EngineConfigError, check_common
from appliance.engine.worker import INTERACTIVE, ThreadWorker

_END = object()


class LlamaGenerator:
    """Implements `domain.protocols.Generator` over `llama_cpp.Llama.create_completion`."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_batch: int,
        n_threads: int,
        queue_size: int,
        extra_buffers: bool = False,
    ) -> None:
        check_common(path, n_ctx, n_batch, n_threads)
        self._path = path
        self._extra_buffers = extra_buffers
        self._n_ctx = n_ctx
        self._n_batch = n_batch
        self._n_threads = n_threads
        self._vocab: Any = None
        self._formatter: Any = None
        self._worker: ThreadWorker[Any] = ThreadWorker("generator", self._load, queue_size)
        self.active = 0

    def _load(self) -> Any:
        return load_llama(
            str(self._path),
            extra_buffers=self._extra_buffers,
            n_ctx=self._n_ctx,
            n_batch=self._n_batch,
            n_threads=self._n_threads,
            n_threads_batch=self._n_threads,
        )

    def start(self) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        vocab = load_llama(str(self._path), vocab_only=True)
        template = vocab.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineConfigError(
                f"{self._path}: the GGUF has no chat template (tokenizer.chat_template); "
                "use an instruct/chat model"
            )
        eos = vocab.detokenize([vocab.token_eos()], special=True).decode("utf-8", "replace")
        bos = vocab.detokenize([vocab.token_bos()], special=True).decode("utf-8", "replace")
        self._vocab = vocab
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def alive(self) -> bool:
        return self._worker.alive

    def queue_depth(self) -> int:
        return self._worker.depth()

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text of `messages` in the model's chat template, ready for an answer."""
        result = self._formatter(messages=messages)
        prompt: str = result.prompt
        return prompt

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._vocab.tokenize(
            text.encode("utf-8"), add_bos=True, special=True
        )
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def stream(
        self, prompt_tokens: list[int], *, max_tokens: int, temperature: float
    ) -> TokenStream:
        """Queue the generation now (raising `Overloaded` at once when the queue is full)
        and return an iterator of text pieces. Closing the iterator cancels generation."""
        if len(prompt_tokens) + max_tokens > self._n_ctx:
            raise EngineConfigError(
                f"prompt ({len(prompt_tokens)}) + max_tokens ({max_tokens}) exceed "
                f"n_ctx={self._n_ctx}"
            )
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(pieces.put_nowait, item)
            except RuntimeError:  # the loop is gone
                cancel.set()

        def job(llm: Any) -> None:
            if cancel.is_set():
                return
            self.active += 1
            try:
                completion = llm.create_completion(
                    prompt_tokens,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=True,
                )
                for part in completion:
                    if cancel.is_set():
                        break
                    text = part["choices"][0]["text"]
                    if text:
                        emit(text)
                emit(_END)
            except BaseException as exc:
                emit(exc)
            finally:
                self.active -= 1

        fut = self._worker.submit(job, INTERACTIVE)

        return TokenStream(pieces, cancel, fut)


class TokenStream:
    """Async iterator over generated text; `aclose()` (or garbage) cancels the generation."""

    def __init__(
        self, pieces: asyncio.Queue[object], cancel: threading.Event, fut: asyncio.Future[Any]
    ) -> None:
        self._pieces = pieces
        self._cancel = cancel
        self._fut = fut
        self._done = False

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        item = await self._pieces.get()
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        assert isinstance(item, str)
        return item

    async def aclose(self) -> None:
        self._done = True
        self._cancel.set()
        if not self._fut.done():
            self._fut.cancel()

    def __del__(self) -> None:
        self._cancel.set()
