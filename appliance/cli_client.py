"""The CLI's HTTP side: `ingest` (upload + progress bar), `ask` (streamed answer), `keys`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from appliance.ingest.parsers import SUPPORTED_EXTENSIONS

UPLOAD_GROUP = 20


def api_client(url: str, key: str | None, timeout: float | None) -> httpx.Client:
    """An HTTP client for the appliance, sending `key` (if any) as a bearer token."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, timeout=timeout, headers=headers)


def refused(resp: httpx.Response) -> str:
    """A one-line reason for a non-2xx answer, with a hint for 401/403."""
    hint = {
        401: " (no valid API key: pass --key, set APPLIANCE_API_KEY, or run on the server "
        "itself, where <data_dir>/secrets/admin.key is read)",
        403: " (this API key's role may not do that)",
    }.get(resp.status_code, "")
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text
    return f"{resp.status_code} {detail}{hint}"


def collect_files(paths: list[Path]) -> tuple[list[Path], list[str]]:
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
            )  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
    return files, problems


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def _groups(files: list[Path]) -> Iterator[list[Path]]:
    for start in range(0, len(files), UPLOAD_GROUP):
        yield files[start : start + UPLOAD_GROUP]


def ingest(url: str, key: str | None, paths: list[Path], wait: bool) -> int:
    files, problems = collect_files(paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not files:
        print("nothing to upload", file=sys.stderr)
        return 1
    failed = 0
    with api_client(url, key, 300) as client:
        for group in _groups(files):
            handles = [(f.name, f.open("rb")) for f in group]
            try:
                resp = client.post(
                    "/v1/documents", files=[("files", (name, fh)) for name, fh in handles]
                )
            finally:
                for _, fh in handles:
                    fh.close()
            if resp.status_code != 202:
                print(f"upload failed: {refused(resp)}", file=sys.stderr)
                return 1
            job_id = resp.json()["job_id"]
            if not wait:
                print(f"job {job_id} queued ({len(group)} files)")
                continue
            while True:
                job = client.get(f"/v1/jobs/{job_id}").json()
                line = (
                    f"\rjob {job_id[:8]} {job['state']:<9} files "
                    f"{_bar(job['files_done'] + job['files_failed'], job['files_total'])} "
                    f"chunks {job['chunks_done']}/{job['chunks_total']}"
                )
                print(line, end="", file=sys.stderr, flush=True)
                if job["state"] in ("done", "failed", "cancelled"):
                    print(file=sys.stderr)
                    break
                time.sleep(0.5)
            for f in job["files"]:
                if f["state"] == "failed":
                    failed += 1
                    print(f"  FAILED {f['file_name']}: {f['error']}", file=sys.stderr)
                elif f["state"] == "skipped":
                    print(f"  skipped {f['file_name']}: {f['note']}")
                else:
                    print(f"  {f['state']} {f['file_name']}: {f['chunks_done']} chunks")
    return 1 if failed else 0


def _where(item: dict[str, Any]) -> str:
    page = f", page {item['page']}" if item.get("page") else ""
    return f"{item['file_name']}{page}"


def print_evidence(done: dict[str, Any]) -> None:
    """The evidence sentences with file and page, then the citations and the grounded score."""
    if done.get("evidence"):
        print("\nEvidence:")
        for e in done["evidence"]:
            text = " ".join(e["text"].split())
            print(f'  [{e["citation"]}] {_where(e)}: "{text}"')
    print("\nSources:")
    for c in done["citations"]:
        print(f"  [{c['index']}] {_where(c)} (score {c['score']:.3f})")
    grounded = done.get("grounded", 0.0)
    note = "" if grounded >= 0.5 else " (low: check the evidence before relying on the answer)"
    print(f"\nGrounded: {grounded:.2f}{note}")
    for sentence in done.get("unsupported", []):
        print(f'  not supported by the documents: "{sentence}"')


def ask(url: str, key: str | None, question: str, top_k: int | None, max_tokens: int | None) -> int:
    body: dict[str, object] = {"query": question}
    if top_k:
        body["top_k"] = top_k
    if max_tokens:
        body["max_tokens"] = max_tokens
    with (
        api_client(url, key, None) as client,
        client.stream("POST", "/v1/ask/stream", json=body) as resp,
    ):
        if resp.status_code != 200:
            resp.read()
            print(f"error {refused(resp)}", file=sys.stderr)
            return 1
        for line in resp.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:].strip())
            if event["type"] == "token":
                print(event["text"], end="", flush=True)
            elif event["type"] == "done":
                print()
                print_evidence(event)
                t = event["timings"]
                print(
                    f"  first token {t['first_token_ms']:.0f} ms, {t['tokens_per_s']:.1f} tok/s",
                    file=sys.stderr,
                )
            elif event["type"] == "error":
                print(f"\nerror: {event['message']}", file=sys.stderr)
                return 1
    return 0
