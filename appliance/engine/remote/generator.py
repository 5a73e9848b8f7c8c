"""Answers from an external OpenAI-compatible server (llama-server, vLLM, Ollama).

`OpenAIGenerator` implements `domain.protocols.Generator` over HTTP: it streams
`POST {url}/chat/completions` (`stream: true`) and reads the server-sent `data:`
lines until `[DONE]`. What the in-process engine gives, it gives the same way:

- admission: at most `parallel` requests in flight, at most `queue_size` waiting
  for one of them (first come, first served); one more raises `Overloaded` at once;
- cancellation: `aclose()` (the deadline, a client gone) closes the HTTP stream,
  which a server takes as the end of that generation;
- failures: an unreachable server, an HTTP error or a broken stream end the stream
  with a `GenerationServerError` naming the URL; while the server is known down
  (a failed connection or readiness check, retried after `RECHECK_S`), `stream()`
  refuses at once with a 503 instead of queueing.

Message contents go with the chat-template markers of known model families
neutralized (`engine/remote_markers.py`): the server parses special tokens in the text
its template renders, so a document must not carry them.

Token counts are estimates: the server's tokenizer is not known here, and asking it
(`/tokenize` of llama-server and vLLM; Ollama has none) would put a round trip per
sentence into every prompt. `estimate_tokens` counts words, digits, punctuation and
CJK characters; on English text it is ~8% above SmolLM2's tokenizer (itself above
the larger vocabularies of Llama 3 or Qwen), so document text is budgeted slightly
short, and prompts are fitted to `NCTX_SHARE` of the server's context as headroom.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from appliance.domain.errors import ApplianceError, Overloaded
from appliance.engine.remote.markers import outgoing_messages

log = logging.getLogger(__name__)

DEFAULT_PARALLEL = 4  # requests in flight when generation.parallel is 0
NCTX_SHARE = 0.9  # prompts are fitted to this share of the server's context
RECHECK_S = 5.0  # a readiness answer (up or down) is reused this long
_END = object()

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(
    rf"<\|[A-Za-z_]+\|>|[{_CJK}]+|[^\W\d_{_CJK}]+|\d+|\n+|[ \t]+|[^\w\s]|_", re.UNICODE
)
_CJK_CHAR = re.compile(f"[{_CJK}]")


def estimate_tokens(text: str) -> int:
    """Tokens of `text` for an unknown tokenizer, erring high.

    A short ASCII word is one token and a long one one per 4 letters; a word with
    other letters one per 2.5; each digit, punctuation mark and newline run one; a CJK
    character 1.5; a `<|marker|>` of a chat template one.
    """
    n = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        first = piece[0]
        if first.isdigit():
            n += len(piece)
        elif first == "\n":
            n += 1
        elif first in " \t":
            n += 1 if len(piece) > 1 else 0  # a single space belongs to the next word
        elif first == "<" and len(piece) > 1:
            n += 1
        elif _CJK_CHAR.match(first):
            n += math.ceil(1.5 * len(piece))
        elif first.isalpha():
            if piece.isascii():
                n += 1 if len(piece) <= 6 else math.ceil(len(piece) / 4)
            else:
                n += math.ceil(len(piece) / 2.5)
        else:
            n += 1
    return n


def render_chatml(messages: list[dict[str, str]]) -> str:
    """The messages as ChatML text, for token budgeting only: the server applies its
    own chat template to the messages themselves."""
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return f"{turns}<|im_start|>assistant\n"


def public_url(url: str) -> str:
    """`url` without user:password@ (what errors and the status may show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class GenerationServerError(ApplianceError):
    """The external generation server failed a request (refused, HTTP error, broken
    stream); the message names its URL."""

    status = 502
    code = "generation_server_error"


class GenerationServerDown(ApplianceError):
    """The external generation server is known not to answer: refused at once."""

    status = 503
    code = "generation_unavailable"


class Admission:
    """At most `slots` holders; at most `queue_size` waiting, served in order."""

    def __init__(self, slots: int, queue_size: int) -> None:
        self.slots = slots
        self.queue_size = queue_size
        self.active = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()

    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    def reserve(self) -> asyncio.Future[None] | None:
        """A slot now (None), or a place in the queue (a future resolved when the slot is
        handed over). Raises `Overloaded` when the queue is full."""
        if self.active < self.slots and not self.waiting():
            self.active += 1
            return None
        if any(f.done() for f in self._waiting):  # places given up
            self._waiting = collections.deque(f for f in self._waiting if not f.done())
        if len(self._waiting) >= self.queue_size:
            raise Overloaded("generation")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        return fut

    async def acquire(self, place: asyncio.Future[None] | None) -> None:
        """Wait for the slot `reserve` queued for; a cancelled waiter leaves the queue (and
        passes on a slot handed over in the meantime)."""
        if place is None:
            return
        try:
            await place
        except asyncio.CancelledError:
            if place.done() and not place.cancelled():
                self.release()
            raise

    def forfeit(self, place: asyncio.Future[None] | None) -> None:
        """Give back a reservation never waited for."""
        if place is None:
            self.release()
        elif not place.done():
            place.cancel()
        elif not place.cancelled():
            self.release()

    def release(self) -> None:
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes on: `active` stays
                return
        self.active -= 1


class OpenAIGenerator:
    """Implements `domain.protocols.Generator` with an OpenAI-compatible server."""

    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str = "",
        n_ctx: int = 4096,
        timeout_s: float = 3.0,
        parallel: int = 0,
        queue_size: int = 64,
    ) -> None:
        self.url = url.rstrip("/")
        self.public_url = public_url(self.url)
        self.model = model
        self.server_ctx = n_ctx
        self._n_ctx = int(n_ctx * NCTX_SHARE)
        self._timeout_s = timeout_s
        self.admission = Admission(parallel or DEFAULT_PARALLEL, queue_size)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(None, connect=timeout_s, write=timeout_s),
            # HTTP(S)_PROXY / NO_PROXY and SSL_CERT_FILE (an in-house CA) apply, as to curl
            limits=httpx.Limits(max_connections=self.admission.slots + 2),
        )
        self._checked_at = -math.inf
        self._problem: str | None = None  # why the server is down; None: up (or unknown)
        self._check_lock = asyncio.Lock()
        self._warned_estimate = False

    # ---- the Generator protocol --------------------------------------------
    @property
    def n_ctx(self) -> int:
        """Tokens a prompt and its answer may take (the server's, less headroom)."""
        return self._n_ctx

    def render(self, messages: list[dict[str, str]]) -> str:
        return render_chatml(outgoing_messages(messages))

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """Stand-in tokens of the prompt, as `tokenize` gives them."""
        return self.tokenize(self.render(messages))

    def tokenize(self, text: str) -> list[int]:
        """Stand-in tokens (their count is all that is read): one per estimated token,
        plus one for a BOS, as a local tokenizer gives."""
        return [0] * (1 + estimate_tokens(text))

    def queue_depth(self) -> int:
        return self.admission.waiting()

    @property
    def active(self) -> int:
        """Requests in flight to the server now."""
        return self.admission.active

    @property
    def slots(self) -> int:
        return self.admission.slots

    def stream(
        self,
        prompt_tokens: list[int],
        *,
        max_tokens: int,
        temperature: float,
        messages: list[dict[str, str]] | None = None,
    ) -> RemoteTokenStream:
        """Queue the request now (raising `Overloaded` when the queue is full, or
        `GenerationServerDown` while the server is known not to answer)."""
        if not messages:
            raise ValueError("an external server is sent the messages: none given")
        if self._known_down():
            raise GenerationServerDown(
                f"the generation server {self.public_url} does not answer ({self._problem}); "
                "retry later",
                retry_after=int(RECHECK_S),
            )
        place = self.admission.reserve()
        body = self.request_body(messages, max_tokens=max_tokens, temperature=temperature)
        return RemoteTokenStream(self, body, len(prompt_tokens), place)

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
        return self._problem is None

    def _known_down(self) -> bool:
        return self._problem is not None and time.monotonic() - self._checked_at < RECHECK_S

    def _mark(self, problem: str | None) -> None:
        if problem is not None and self._problem is None:
            log.warning("generation server %s: %s", self.public_url, problem)
        elif problem is None and self._problem is not None:
            log.info("generation server %s answers again", self.public_url)
        self._problem = problem
        self._checked_at = time.monotonic()

    async def check(self) -> str:
        """The readiness check: "ok", or why the server is not usable. GET {url}/models,
        answered from a cache for `RECHECK_S` (readiness probes may come often)."""
        async with self._check_lock:
            if time.monotonic() - self._checked_at >= RECHECK_S:
                self._mark(await self._probe())
        if self._problem is None:
            return "ok"
        return f"{self.public_url}: {self._problem}"

    async def _probe(self) -> str | None:
        try:
            resp = await self._client.get(f"{self.url}/models", timeout=self._timeout_s)
        except httpx.TimeoutException:
            return f"no answer within {self._timeout_s:g}s"
        except httpx.HTTPError as exc:
            return _transport_problem(exc)
        if resp.status_code != 200:
            return _status_problem(resp.status_code, resp.text)
        try:
            listed = [str(m.get("id")) for m in resp.json().get("data", [])]
        except (ValueError, AttributeError, TypeError):
            return "GET /models did not answer an OpenAI model list (is the URL's /v1 right?)"
        if listed and self.model not in listed:
            log.debug("generation server %s lists %s, not %r", self.public_url, listed, self.model)
        return None

    async def aclose(self) -> None:
        """Close the connections (at shutdown)."""
        await self._client.aclose()

    # ---- one request ------------------------------------------------------------
    async def _generate(
        self, answer: _Answer, body: dict[str, Any], place: asyncio.Future[None] | None
    ) -> None:
        """Wait for a slot, run the request, put text pieces (then `_END` or an error):
        whatever happens, the reader gets an end."""
        answer.started = True
        await self.admission.acquire(place)
        try:
            await self._request(answer, body)
            answer.put(_END)
        except httpx.TimeoutException:
            problem = f"no connection within {self._timeout_s:g}s"
            self._mark(problem)
            answer.put(self._error(problem))
        except httpx.ConnectError as exc:
            self._mark(_transport_problem(exc))
            answer.put(self._error(_transport_problem(exc)))
        except httpx.HTTPError as exc:
            answer.put(self._error(_transport_problem(exc)))
        except ApplianceError as exc:
            answer.put(exc)
        except Exception as exc:  # an answer of a shape not foreseen here
            log.exception("generation server %s: unreadable answer", self.public_url)
            answer.put(self._error(f"unreadable answer ({exc!r})"))
        finally:
            self.admission.release()

    async def _request(self, answer: _Answer, body: dict[str, Any]) -> None:
        async with self._client.stream("POST", f"{self.url}/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                if resp.status_code == 429:
                    raise Overloaded(f"the generation server {self.public_url}")
                raise self._error(_status_problem(resp.status_code, text))
            self._mark(None)
            pieces = 0
            ended = False
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank lines, `: ping` comments, `event:` names
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise self._error(f"unreadable stream data: {data[:200]!r}") from None
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):
                    raise self._error(f"the server ended the answer: {_message(chunk)}")
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    answer.read_usage(usage)
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text_piece = delta.get("content")
                    if text_piece:
                        pieces += 1
                        answer.put(text_piece)
                    if choice.get("finish_reason"):
                        answer.finish_reason = _finish_reason(choice["finish_reason"])
            if answer.finish_reason is None:
                if not ended:
                    raise self._error("the answer stream broke off (no finish_reason, no [DONE])")
                answer.finish_reason = "stop"
            if not answer.completion_tokens:  # a server without `include_usage`
                answer.completion_tokens = pieces
        self._check_estimate(answer)

    def _check_estimate(self, answer: _Answer) -> None:
        counted = answer.server_prompt_tokens
        if counted and counted > answer.prompt_estimate and not self._warned_estimate:
            self._warned_estimate = True
            log.warning(
                "generation server %s counted %d prompt tokens where %d were estimated: "
                "prompts may not fit; lower generation.n_ctx below the server's context",
                self.public_url, counted, answer.prompt_estimate,
            )  # fmt: skip

    def _error(self, problem: str) -> GenerationServerError:
        return GenerationServerError(f"the generation server {self.public_url}: {problem}")


class _Answer:
    """What the task of one request fills in: text pieces (then `_END` or an error),
    why it ended and how many tokens. The task holds this, not the `RemoteTokenStream`,
    so a stream dropped unread is collected and its `__del__` cancels the request."""

    def __init__(self, prompt_estimate: int) -> None:
        self.pieces: asyncio.Queue[object] = asyncio.Queue()
        self.started = False  # the task ran: it releases its admission itself
        self.prompt_estimate = prompt_estimate
        self.server_prompt_tokens = 0
        self.finish_reason: str | None = None
        self.completion_tokens = 0
        self.cached_tokens = 0

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


class RemoteTokenStream:
    """Text pieces of one answer from the server; `aclose()` cancels the request.

    The request runs in a task from `stream()` on (as the in-process engine starts
    at once), and its pieces wait in a queue for the reader.
    """

    def __init__(
        self,
        generator: OpenAIGenerator,
        body: dict[str, Any],
        prompt_estimate: int,
        place: asyncio.Future[None] | None,
    ) -> None:
        self._done = False
        answer = self._answer = _Answer(prompt_estimate)
        admission = generator.admission
        try:
            self._task = asyncio.get_running_loop().create_task(
                generator._generate(answer, body, place)
            )
        except BaseException:
            admission.forfeit(place)
            raise

        def cancelled_before_start(task: asyncio.Task[None]) -> None:
            if not answer.started:
                admission.forfeit(place)

        self._task.add_done_callback(cancelled_before_start)

    @property
    def finish_reason(self) -> str | None:
        return self._answer.finish_reason

    @property
    def completion_tokens(self) -> int:
        return self._answer.completion_tokens

    @property
    def cached_tokens(self) -> int:
        return self._answer.cached_tokens

    @property
    def server_prompt_tokens(self) -> int:
        """The prompt's tokens as the server counted them (0: it did not say)."""
        return self._answer.server_prompt_tokens

    def __aiter__(self) -> RemoteTokenStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._answer.pieces.get()
        except asyncio.CancelledError:
            await self.aclose()
            raise
        if item is _END:
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        assert isinstance(item, str)
        return item

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


def _finish_reason(reason: str) -> str:
    """OpenAI's reasons as the appliance's ("content_filter", "tool_calls"... end it)."""
    return "length" if reason == "length" else "stop"


def _message(body: Any) -> str:
    """The error message of an OpenAI-style (or FastAPI-style) error body."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("detail"):
            return str(body["detail"])
        if body.get("message"):
            return str(body["message"])
    return str(body)[:300]


def _status_problem(status: int, text: str) -> str:
    try:
        detail = _message(json.loads(text))
    except ValueError:
        detail = text.strip()[:300]
    hint = ""
    if status in (401, 403):
        hint = " (check generation.api_key)"
    elif status == 404:
        hint = " (check generation.url, with its /v1, and generation.model)"
    return f"HTTP {status}: {detail}{hint}" if detail else f"HTTP {status}{hint}"


def _transport_problem(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    reason = str(exc) or (str(cause) if cause else "") or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({reason})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the connection broke off ({reason})"
    return reason
