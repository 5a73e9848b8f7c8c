"""Answers from an external OpenAI-compatible server (llama-server, vLLM, Ollama).

`OpenAIGenerator` implements `domain.protocols.Generator` over HTTP. What the
in-process engine gives, it gives the same way:

- admission (`admission.py`): at most `parallel` requests in flight, at most
  `queue_size` waiting for one of them; one more raises `Overloaded` at once;
- cancellation: `aclose()` of the stream (the deadline, a client gone) closes the HTTP
  stream, which a server takes as the end of that generation (`stream.py`);
- failures: an unreachable server, an HTTP error or a broken stream end the stream
  with a `GenerationServerError` naming the URL (`client.py`); while the server is
  known down (`readiness.py`), `stream()` refuses at once with a 503 instead of
  queueing.

Message contents go with the chat-template markers of known model families
neutralized (`markers.py`): the server parses special tokens in the text its template
renders, so a document must not carry them. Token counts are estimates (`tokens.py`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from appliance.engine.gauges import GeneratorGauges
from appliance.engine.remote.admission import Admission
from appliance.engine.remote.client import ServerClient
from appliance.engine.remote.errors import GenerationServerDown
from appliance.engine.remote.markers import outgoing_messages
from appliance.engine.remote.readiness import RECHECK_S, ReadinessCache
from appliance.engine.remote.stream import Answer, RemoteTokenStream
from appliance.engine.remote.tokens import NCTX_SHARE, estimate_tokens, render_chatml


class OpenAIGenerator(GeneratorGauges):
    """Implements `domain.protocols.Generator` with an OpenAI-compatible server; its
    `n_ctx` is the server's, less headroom."""

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str = "",
        n_ctx: int = 4096,
        timeout_s: float = 3.0,
        parallel: int = 4,
        queue_size: int = 64,
    ) -> None:
        if parallel < 1:
            raise ValueError(f"parallel={parallel}: at least one request must be let through")
        self.admission = Admission(parallel, queue_size)
        super().__init__(self.admission, int(n_ctx * NCTX_SHARE))
        self.model = model
        self.server_ctx = n_ctx
        self._client = ServerClient(
            url, api_key=api_key, timeout_s=timeout_s, connections=parallel + 2
        )
        self.url = self._client.url
        self.public_url = self._client.public_url
        self._readiness = ReadinessCache(self.public_url, self._probe)

    # ---- the Generator protocol --------------------------------------------
    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chatml(outgoing_messages(messages))

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """Stand-in tokens of the prompt, as `tokenize` gives them."""
        return self.tokenize(self.render(messages))

    def tokenize(self, text: str) -> list[int]:
        """Stand-in tokens (their count is all that is read): one per estimated token,
        plus one for a BOS, as a local tokenizer gives."""
        return [0] * (1 + estimate_tokens(text))

    def stream(
        self,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        temperature: float,
        messages: list[dict[str, str]] | None = None,
        favour: str = "",  # not sent: the server's token ids are not known here
        favour_bias: float = 0.0,
    ) -> RemoteTokenStream:
        """Queue the request now (raising `Overloaded` when the queue is full, or
        `GenerationServerDown` while the server is known not to answer). The copy bias
        (`favour`) is the in-process model's only: an OpenAI server's `logit_bias` takes its
        own token ids, which the appliance cannot know."""
        if not messages:
            raise ValueError("an external server is sent the messages: none given")
        if self._readiness.known_down():
            raise GenerationServerDown(
                f"the generation server {self.public_url} does not answer "
                f"({self._readiness.problem}); retry later",
                retry_after=int(RECHECK_S),
            )
        place = self.admission.reserve()
        body = self.request_body(messages, max_tokens=max_tokens, temperature=temperature)
        answer = Answer(len(prompt_tokens))
        return RemoteTokenStream(answer, self._generate(answer, body, place), self.admission, place)

    def request_body(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> dict[str, Any]:
        """The JSON body of `POST /chat/completions` (contents' markers neutralized)."""
        return {
            "model": self.model,
            "messages": outgoing_messages(messages),
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    # ---- readiness ------------------------------------------------------------
    @property
    def alive(self) -> bool:
        """Whether the server answered last time (no request made here)."""
        return self._readiness.alive

    async def check(self) -> str:
        """The readiness check: "ok", or why the server is not usable. GET {url}/models,
        answered from a cache for `RECHECK_S` (readiness probes may come often)."""
        return await self._readiness.check()

    async def readiness(self) -> str:
        """/readyz's code: "ok", or "unreachable" (the reason is logged)."""
        return "ok" if await self.check() == "ok" else "unreachable"

    async def _probe(self) -> str | None:
        return await self._client.probe(self.model)

    async def aclose(self) -> None:
        """Close the connections (at shutdown)."""
        await self._client.aclose()

    # ---- one request ------------------------------------------------------------
    async def _generate(
        self, answer: Answer, body: dict[str, Any], place: asyncio.Future[None] | None
    ) -> None:
        """Wait for a slot, then run the request (it puts the answer's end, whatever
        happens)."""
        answer.started = True
        await self.admission.acquire(place)
        try:
            await self._client.answer(answer, body, self._readiness.mark)
        finally:
            self.admission.release()
