"""Streaming chat generation with llama.cpp on the engine thread.

This facade renders prompts with the model's own chat template, tokenizes them
with a vocab-only model (thread-safe, no context) and streams pieces of text
from the engine thread. Callers see only `render`, `encode`, `tokenize`, `stream`.
Message contents are tokenized as plain text (`engine/chat_prompt.py`): a document
cannot write the template's control tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.engine.chat_prompt import ChatPromptEncoder
from appliance.engine.engine_thread import GenerateJob, LlamaEngineThread
from appliance.engine.gauges import GeneratorGauges
from appliance.engine.llama_loader import load_llama
from appliance.engine.llama_params import EngineConfigError
from appliance.engine.piece_stream import Ending, PieceStream
from appliance.engine.scheduler import Finished


class LlamaGenerator(GeneratorGauges):
    """Implements `domain.protocols.Generator`."""

    def __init__(self, path: Path, engine: LlamaEngineThread, *, n_ctx: int) -> None:
        super().__init__(engine, n_ctx)
        self._engine = engine
        vocab = load_llama(str(path), vocab_only=True)
        template = vocab.metadata.get("tokenizer.chat_template")
        self._path = path
        self._vocab: Any = vocab
        # A base model (no template) still serves raw completions (the engine benchmark);
        # the appliance refuses it at start (`check_chat_template`).
        self._prompts = ChatPromptEncoder(vocab, template) if template else None

    def check_chat_template(self) -> None:
        if self._prompts is None:
            raise EngineConfigError(
                f"{self._path}: the GGUF has no chat template (tokenizer.chat_template); "
                "use an instruct/chat model"
            )

    def close(self) -> None:
        """Free the vocabulary model now rather than in `Llama.__del__` at exit."""
        if self._vocab is not None:
            self._vocab.close()
            self._vocab = None

    @property
    def alive(self) -> bool:
        return self._engine.alive

    async def readiness(self) -> str:
        return "ok" if self._engine.alive else "not_running"

    async def aclose(self) -> None:
        """Nothing held by the event loop (`close()` frees the model, from `Engine.stop`)."""

    def render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text of `messages` in the model's chat template, ready for an answer."""
        self.check_chat_template()
        assert self._prompts is not None
        return self._prompts.render(messages)

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """The prompt tokens of `messages` (what `render` writes): the template's markers
        as special tokens, the message contents as plain text."""
        self.check_chat_template()
        assert self._prompts is not None
        return self._prompts.encode(messages)

    def tokenize(self, text: str) -> list[int]:
        """BOS and the tokens of `text` read as plain text (a special-token string in it
        stays text)."""
        tokens: list[int] = self._vocab.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        return tokens

    def stream(
        self,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        temperature: float,
        messages: list[dict[str, str]] | None = None,  # read as `prompt_tokens` already
        favour: str = "",
        favour_bias: float = 0.0,
    ) -> TokenStream:
        """Queue the generation now (raising `Overloaded` at once when the queue is full)
        and return an iterator of text pieces. Closing the iterator cancels generation."""
        if not prompt_tokens:
            raise EngineConfigError("empty prompt")
        if len(prompt_tokens) + max_tokens > self.n_ctx:
            raise EngineConfigError(
                f"prompt ({len(prompt_tokens)}) + max_tokens ({max_tokens}) exceed "
                f"n_ctx={self.n_ctx}"
            )
        bias = self.copy_bias(favour, favour_bias)
        job = self._engine.submit_generate(prompt_tokens, max_tokens, temperature, bias)
        return TokenStream(job)

    def copy_bias(self, favour: str, bias: float) -> tuple[tuple[int, float], ...]:
        """`bias` for each token of `favour`, once. The text is tokenized as plain text,
        as the prompt reads it: a document's "<|im_end|>" favours its characters, never the
        template's control token that would end the answer."""
        if not favour or not bias:
            return ()
        tokens = self._vocab.tokenize(favour.encode("utf-8"), add_bos=False, special=False)
        return tuple((t, bias) for t in dict.fromkeys(tokens))


class TokenStream(PieceStream):
    """Async iterator over generated text; `aclose()` cancels the generation.

    Once iteration ends, `finish_reason` and `completion_tokens` tell why and how
    many tokens (not text pieces) were generated; from admission on, `cached_tokens`
    tells how many prompt tokens came from the slot's prefix cache.
    """

    def __init__(self, job: GenerateJob) -> None:
        super().__init__(job.pieces, Ending())
        self._job = job

    @property
    def cached_tokens(self) -> int:
        """Known once the engine admitted the request: also for a stream closed before
        its end (the sentence stop), which gets no `Finished`."""
        return self._job.cached

    def ended(self, item: object) -> None:
        assert isinstance(item, Finished)
        self._ending.finish_reason = item.reason
        self._ending.completion_tokens = item.completion_tokens

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            self._job.stop()

    def __del__(self) -> None:
        if not self._done:
            self._job.stop()
