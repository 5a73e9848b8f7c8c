"""The one HTTP client of the appliance, shared by the CLI and the admin console.

Async (httpx), typed with the wire structs of `appliance.wire`. Every failure
is an `ApiError` whose message is plain words for a person: the server is not
reachable, the key was refused, or the server's own reason (`detail`) for a 4xx/5xx.
A test passes an `httpx.ASGITransport` to talk to an app in process.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from appliance.client.errors import ApiError, refusal, unreachable
from appliance.wire.answers import AnswerEvent
from appliance.wire.ask import AskResponse
from appliance.wire.collections import CollectionDeleted, CollectionList, CollectionRead
from appliance.wire.documents import ChunkPage, DocumentList
from appliance.wire.embedding_switch import EmbeddingSwitchRead
from appliance.wire.jobs import JobCreated, JobRead
from appliance.wire.keys import KeyCreated, KeyList, KeyRead, Role
from appliance.wire.search import SearchResponse
from appliance.wire.sources import SourceList, SourceRead, SourceRemoved, SourceSettings
from appliance.wire.status import LogPage, Readiness, StatusRead

T = TypeVar("T")


class ApplianceClient:
    def __init__(
        self,
        base_url: str,
        key: str | None = None,
        *,
        timeout: float | None = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, headers=headers, transport=transport,
            verify=verify,
        )  # fmt: skip

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- plumbing --------------------------------------------------------
    async def _send(
        self, method: str, path: str, ok: Sequence[int] = (), **kw: Any
    ) -> httpx.Response:
        try:
            resp = await self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        if not resp.is_success and resp.status_code not in ok:
            raise refusal(resp, self.base_url)
        return resp

    async def _get(self, path: str, kind: type[T], **kw: Any) -> T:
        resp = await self._send("GET", path, **kw)
        return msgspec.json.decode(resp.content, type=kind)

    async def _post(self, path: str, kind: type[T], **kw: Any) -> T:
        resp = await self._send("POST", path, **kw)
        return msgspec.json.decode(resp.content, type=kind)

    # ---- health and status -----------------------------------------------
    async def responds(self) -> bool:
        """Whether anything answers HTTP at the base URL, whatever its status (restore
        refuses to write beside a running server)."""
        try:
            await self._http.get("/healthz")
        except httpx.HTTPError:
            return False
        return True

    async def readiness(self) -> Readiness:
        """Ready or not (a 503 is an answer here: it names the part that is down)."""
        resp = await self._send("GET", "/readyz", ok=(503,))
        return msgspec.json.decode(resp.content, type=Readiness)

    async def status(self) -> StatusRead:
        return await self._get("/v1/status", StatusRead)

    async def metrics_text(self) -> str:
        return (await self._send("GET", "/metrics")).text

    async def logs(self, after: int = 0, level: str = "debug", limit: int = 500) -> LogPage:
        params = {"after": after, "level": level, "limit": limit}
        return await self._get("/v1/logs", LogPage, params=params)

    # ---- documents and jobs ----------------------------------------------
    async def documents(self) -> DocumentList:
        return await self._get("/v1/documents", DocumentList)

    async def chunks(self, document_id: str, offset: int = 0, limit: int = 100) -> ChunkPage:
        params = {"offset": offset, "limit": limit}
        return await self._get(f"/v1/documents/{document_id}/chunks", ChunkPage, params=params)

    async def delete_document(self, document_id: str) -> None:
        await self._send("DELETE", f"/v1/documents/{document_id}")

    async def reindex(self, document_id: str) -> JobCreated:
        return await self._post(f"/v1/documents/{document_id}/reindex", JobCreated)

    async def upload(self, paths: Sequence[Path], collection: str | None = None) -> JobCreated:
        """One upload request of these files (at most server.max_files_per_upload), into
        `collection` (the server's `default` when None)."""
        handles = [(p.name, p.open("rb")) for p in paths]
        data = {"collection": collection} if collection else None
        try:
            files = [("files", (name, fh)) for name, fh in handles]
            return await self._post(
                "/v1/documents", JobCreated, files=files, data=data, timeout=None
            )
        finally:
            for _, fh in handles:
                fh.close()

    async def jobs(self) -> list[JobRead]:
        return await self._get("/v1/jobs", list[JobRead])

    async def job(self, job_id: str) -> JobRead:
        return await self._get(f"/v1/jobs/{job_id}", JobRead)

    async def cancel_job(self, job_id: str) -> JobRead:
        return await self._post(f"/v1/jobs/{job_id}/cancel", JobRead)

    # ---- questions -------------------------------------------------------
    async def search(self, query: str, top_k: int | None = None, **options: Any) -> SearchResponse:
        body: dict[str, Any] = {"query": query, **{k: v for k, v in options.items() if v}}
        if top_k:
            body["top_k"] = top_k
        return await self._post("/v1/search", SearchResponse, json=body)

    async def ask(self, query: str, **options: Any) -> AskResponse:
        body = {"query": query, **{k: v for k, v in options.items() if v is not None}}
        return await self._post("/v1/ask", AskResponse, json=body, timeout=None)

    async def ask_stream(self, query: str, **options: Any) -> AsyncIterator[AnswerEvent]:
        """The answer's events as they come: its first evidence, tokens, then one done (or
        error) event."""
        body = {"query": query, **{k: v for k, v in options.items() if v is not None}}
        try:
            async with self._http.stream("POST", "/v1/ask/stream", json=body, timeout=None) as resp:
                if not resp.is_success:
                    await resp.aread()
                    raise refusal(resp, self.base_url)
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        yield msgspec.json.decode(line[5:].strip(), type=AnswerEvent)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc

    # ---- collections -----------------------------------------------------
    async def collections(self) -> list[CollectionRead]:
        """The collections this key may read (an admin key: all of them)."""
        return (await self._get("/v1/collections", CollectionList)).collections

    async def create_collection(self, name: str) -> CollectionRead:
        return await self._post("/v1/collections", CollectionRead, json={"name": name})

    async def rename_collection(self, name: str, new: str) -> CollectionRead:
        resp = await self._send("PATCH", _collection_path(name), json={"name": new})
        return msgspec.json.decode(resp.content, type=CollectionRead)

    async def delete_collection(self, name: str, force: bool = False) -> CollectionDeleted:
        """Delete a collection; one that holds documents only with `force` (which deletes
        them too), else the server refuses (409, code `collection_not_empty`)."""
        params = {"force": "true"} if force else {}
        resp = await self._send("DELETE", _collection_path(name), params=params)
        return msgspec.json.decode(resp.content, type=CollectionDeleted)

    # ---- keys and backup -------------------------------------------------
    async def embedding_switch(self) -> EmbeddingSwitchRead:
        return await self._get("/v1/models/embedding", EmbeddingSwitchRead)

    async def switch_embedding(self, name: str) -> EmbeddingSwitchRead:
        return await self._post("/v1/models/embedding", EmbeddingSwitchRead, json={"name": name})

    # ---- synced folders --------------------------------------------------
    async def sources(self) -> list[SourceRead]:
        return (await self._get("/v1/sources", SourceList)).sources

    async def add_source(self, spec: SourceSettings) -> SourceRead:
        return await self._post("/v1/sources", SourceRead, content=msgspec.json.encode(spec),
                                headers={"content-type": "application/json"})  # fmt: skip

    async def scan_source(self, source_id: str) -> SourceRead:
        return await self._post(f"/v1/sources/{source_id}/scan", SourceRead)

    async def remove_source(self, source_id: str) -> SourceRemoved:
        resp = await self._send("DELETE", f"/v1/sources/{source_id}")
        return msgspec.json.decode(resp.content, type=SourceRemoved)

    async def keys(self) -> list[KeyRead]:
        return (await self._get("/v1/keys", KeyList)).keys

    async def create_key(
        self, name: str, role: Role, collections: Sequence[str] | None = None
    ) -> KeyCreated:
        """A new key reading `collections` (names; the server's `["*"]`, all, when None)."""
        body: dict[str, Any] = {"name": name, "role": role}
        if collections is not None:
            body["collections"] = list(collections)
        return await self._post("/v1/keys", KeyCreated, json=body)

    async def revoke_key(self, key_id: str) -> None:
        await self._send("DELETE", f"/v1/keys/{key_id}")

    async def backup(self, target: Path) -> int:
        """Stream a backup archive into `target` (mode 0600: it holds secrets); its size.
        It is written to a new `.<name>.part` beside it (O_EXCL | O_NOFOLLOW: a link or
        another user's file planted at that name is refused, never written through)."""
        tmp = target.with_name(f".{target.name}.part")
        fd = -1
        try:
            async with self._http.stream("POST", "/v1/backup", timeout=None) as resp:
                if not resp.is_success:
                    await resp.aread()
                    raise refusal(resp, self.base_url)
                fd = _create_part(tmp)
                with os.fdopen(fd, "wb") as out:
                    async for block in resp.aiter_bytes(1 << 20):
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            if fd >= 0:  # ours: an interrupted download leaves nothing behind
                tmp.unlink(missing_ok=True)
            if isinstance(exc, httpx.TransportError):
                raise unreachable(self.base_url, exc) from exc
            raise
        return target.stat().st_size


def _create_part(tmp: Path) -> int:
    """A new file `tmp` (0600). A leftover regular file of this user (a download killed
    halfway) is replaced; anything else at that name is refused, untouched."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        found = os.lstat(tmp)
        if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid():
            raise ApiError(
                f"{tmp}: something this user did not write is in the way of the download "
                "(a link, or another user's file): refusing to write through it"
            ) from None
        tmp.unlink()
    try:
        return os.open(tmp, flags, 0o600)
    except FileExistsError:
        raise ApiError(f"{tmp}: planted while the download started: refused") from None


def _collection_path(name: str) -> str:
    # quoted whole: a name typed with '/' or '?' names no other route
    return f"/v1/collections/{quote(name, safe='')}"
