"""HTTP to one OpenAI-compatible server: its model list, and one streamed chat completion
(`POST {url}/chat/completions` with `stream: true`, the server-sent `data:` lines read
until `[DONE]`).

An unreachable server, an HTTP error or a broken stream end the answer with a
`GenerationServerError` naming the URL (without its user:password@); the server's 429
is `Overloaded`. HTTP(S)_PROXY / NO_PROXY and SSL_CERT_FILE (an in-house CA) apply, as
to curl.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from appliance.domain.errors import ApplianceError, Overloaded
from appliance.engine.remote.errors import GenerationServerError
from appliance.engine.remote.stream import END, Answer

log = logging.getLogger(__name__)


def public_url(url: str) -> str:
    """`url` without user:password@ (what errors and the status may show)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class ServerClient:
    """The connections to the server at `url` (at most `connections`)."""

    def __init__(self, url: str, *, api_key: str, timeout_s: float, connections: int) -> None:
        self.url = url.rstrip("/")
        self.public_url = public_url(self.url)
        self.timeout_s = timeout_s
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(None, connect=timeout_s, write=timeout_s),
            limits=httpx.Limits(max_connections=connections),
        )
        self._warned_estimate = False

    async def aclose(self) -> None:
        await self._http.aclose()

    def error(self, problem: str) -> GenerationServerError:
        return GenerationServerError(f"the generation server {self.public_url}: {problem}")

    async def probe(self, model: str) -> str | None:
        """GET {url}/models: None when the server answers a model list, else why not."""
        try:
            resp = await self._http.get(f"{self.url}/models", timeout=self.timeout_s)
        except httpx.TimeoutException:
            return f"no answer within {self.timeout_s:g}s"
        except httpx.HTTPError as exc:
            return transport_problem(exc)
        if resp.status_code != 200:
            return status_problem(resp.status_code, resp.text)
        try:
            listed = [str(m.get("id")) for m in resp.json().get("data", [])]
        except (ValueError, AttributeError, TypeError):
            return "GET /models did not answer an OpenAI model list (is the URL's /v1 right?)"
        if listed and model not in listed:
            log.debug("generation server %s lists %s, not %r", self.public_url, listed, model)
        return None

    async def answer(
        self, answer: Answer, body: dict[str, Any], mark: Callable[[str | None], None]
    ) -> None:
        """Run the request, put its text pieces in `answer`, then `END` or the error:
        whatever happens, the reader gets an end. `mark` is told whether the server
        answers (None) or why not."""
        try:
            await self._request(answer, body, mark)
            answer.put(END)
        except httpx.TimeoutException:
            problem = f"no connection within {self.timeout_s:g}s"
            mark(problem)
            answer.put(self.error(problem))
        except httpx.ConnectError as exc:
            mark(transport_problem(exc))
            answer.put(self.error(transport_problem(exc)))
        except httpx.HTTPError as exc:
            answer.put(self.error(transport_problem(exc)))
        except ApplianceError as exc:
            answer.put(exc)
        except Exception as exc:  # an answer of a shape not foreseen here
            log.exception("generation server %s: unreadable answer", self.public_url)
            answer.put(self.error(f"unreadable answer ({exc!r})"))

    async def _request(
        self, answer: Answer, body: dict[str, Any], mark: Callable[[str | None], None]
    ) -> None:
        async with self._http.stream("POST", f"{self.url}/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                text = (await resp.aread()).decode("utf-8", "replace")
                if resp.status_code == 429:
                    raise Overloaded(f"the generation server {self.public_url}")
                raise self.error(status_problem(resp.status_code, text))
            mark(None)
            pieces = 0
            ended = False
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank lines, `: ping` comments, `event:` names
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                pieces += self._read_chunk(answer, data)
            if answer.finish_reason is None:
                if not ended:
                    raise self.error("the answer stream broke off (no finish_reason, no [DONE])")
                answer.finish_reason = "stop"
            if not answer.completion_tokens:  # a server without `include_usage`
                answer.completion_tokens = pieces
        self._check_estimate(answer)

    def _read_chunk(self, answer: Answer, data: str) -> int:
        """Put the text pieces of one `data:` line; how many."""
        try:
            chunk = json.loads(data)
        except ValueError:
            raise self.error(f"unreadable stream data: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            return 0
        if chunk.get("error"):
            raise self.error(f"the server ended the answer: {error_message(chunk)}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            answer.read_usage(usage)
        pieces = 0
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            text_piece = delta.get("content")
            if text_piece:
                pieces += 1
                answer.put(text_piece)
            if choice.get("finish_reason"):
                answer.finish_reason = finish_reason(choice["finish_reason"])
        return pieces

    def _check_estimate(self, answer: Answer) -> None:
        counted = answer.server_prompt_tokens
        if counted and counted > answer.prompt_estimate and not self._warned_estimate:
            self._warned_estimate = True
            log.warning(
                "generation server %s counted %d prompt tokens where %d were estimated: "
                "prompts may not fit; lower generation.n_ctx below the server's context",
                self.public_url, counted, answer.prompt_estimate,
            )  # fmt: skip


def finish_reason(reason: str) -> str:
    """OpenAI's reasons as the appliance's ("content_filter", "tool_calls"... end it)."""
    return "length" if reason == "length" else "stop"


def error_message(body: Any) -> str:
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


def status_problem(status: int, text: str) -> str:
    try:
        detail = error_message(json.loads(text))
    except ValueError:
        detail = text.strip()[:300]
    hint = ""
    if status in (401, 403):
        hint = " (check generation.api_key)"
    elif status == 404:
        hint = " (check generation.url, with its /v1, and generation.model)"
    return f"HTTP {status}: {detail}{hint}" if detail else f"HTTP {status}{hint}"


def transport_problem(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    reason = str(exc) or (str(cause) if cause else "") or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({reason})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the connection broke off ({reason})"
    return reason
