"""FrozenAppliance: fixed answers for the snapshot tests (a named fake of the server).

A snapshot must be the same bytes every run, and a real appliance's ids, timestamps and
timings never are. The bodies are built from the real wire structs, so a schema change
breaks them; the console's client, parsing and screens are the real ones. Every other
console test talks to a real appliance.
"""

from __future__ import annotations

import httpx
import msgspec

from appliance.config.sources import SourceSettings
from appliance.domain.types import (
    Citation,
    DoneEvent,
    Evidence,
    EvidenceEvent,
    Hit,
    ScanReport,
    Timings,
    TokenEvent,
)
from appliance.wire.collections import CollectionList, CollectionRead
from appliance.wire.documents import ChunkPage, ChunkRead, DocumentList, DocumentRead
from appliance.wire.keys import KeyList, KeyRead
from appliance.wire.search import SearchResponse
from appliance.wire.sources import SourceList, SourceRead
from appliance.wire.status import LogLine, LogPage, ModelStatus, Readiness, StatusRead

T0 = 1764763200.0  # 2025-12-03 12:00 UTC
PDF = "application/pdf"
DOCS = [
    DocumentRead("d1", "facilities.pdf", PDF, 40_000, 3, 3, T0),
    DocumentRead("d2", "backups.md", "text/markdown", 2_000, 2, None, T0 + 60),
    DocumentRead("d3", "remote-access.docx",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                 12_000, 2, None, T0 + 120, collection="hr"),
]  # fmt: skip
FACT = "The emergency generator in building C is tested every Tuesday at 9 am."
METRICS = """\
# TYPE appliance_http_requests_total counter
appliance_http_requests_total{method="POST",path="/v1/ask",status_code="200"} 42.0
# TYPE appliance_tokens_generated_total counter
appliance_tokens_generated_total 1234.0
# TYPE appliance_generation_slots gauge
appliance_generation_slots 16.0
# TYPE appliance_generation_slots_active gauge
appliance_generation_slots_active 0.0
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 7.34003200e+08
"""


def _status() -> StatusRead:
    return StatusRead(
        version="0.1.0", started_at=T0, uptime_s=3725.0,
        models=[
            ModelStatus("chat", "SmolLM2-135M-Instruct", 98_000_000, 1024, 16, 2),
            ModelStatus("embedding", "all-MiniLM-L6-v2", 46_000_000, 512, 2, 2),
        ],
        ram_budget_bytes=6 * 2**30, ram_planned_bytes=900 * 2**20, store="embedded",
        documents=len(DOCS), data_dir_bytes=120 * 2**20, disk_free_bytes=50 * 2**30,
        disk_total_bytes=250 * 2**30, supported_extensions=[".md", ".pdf", ".txt"],
    )  # fmt: skip


def _answer() -> bytes:
    citation = Citation(1, "d1", "facilities.pdf", 1, 0.711, page=2, snippet=FACT)
    done = DoneEvent(
        answer="The generator is tested every Tuesday at 9 am [1].",
        citations=[citation],
        timings=Timings(12.0, 1.5, 3.0, 467.0, 610.0, 1090.0, 523, 14, 22.9),
        evidence=[Evidence("d1", "facilities.pdf", 1, 19, 90, FACT, 0.83, 1, page=2)],
        grounded=1.0, strategy="top3",
    )  # fmt: skip
    first = EvidenceEvent([Evidence("d1", "facilities.pdf", 1, 19, 89, FACT, 0.71, 1, page=2)])
    events = [first, TokenEvent("The generator"), TokenEvent(" is tested every Tuesday"), done]
    tag = {EvidenceEvent: "evidence", TokenEvent: "token", DoneEvent: "done"}
    return b"".join(
        b"event: " + tag[type(e)].encode() + b"\ndata: " + msgspec.json.encode(e) + b"\n\n"
        for e in events
    )


ROUTES: dict[tuple[str, str], object] = {
    ("GET", "/readyz"): Readiness("ready", {"embedding_model": "ok", "chat_model": "ok",
                                            "vector_store": "ok", "journal": "ok"}),
    ("GET", "/v1/status"): _status(),
    ("GET", "/v1/documents"): DocumentList(DOCS, len(DOCS)),
    ("GET", "/v1/documents/d1/chunks"): ChunkPage("d1", "facilities.pdf", 2, 0, [
        ChunkRead(0, "Facilities report. The company values clear writing.", 1, None),
        ChunkRead(1, "Safety procedures. " + FACT, 2, "Safety"),
    ]),
    ("GET", "/v1/jobs"): [],
    ("GET", "/v1/keys"): KeyList([
        KeyRead("0ca025ea", "bootstrap admin", "admin", T0, None),
        KeyRead("459696b8", "helpdesk", "query", T0 + 300, T0 + 900, ["hr", "handbook"]),
    ]),
    ("GET", "/v1/collections"): CollectionList([
        CollectionRead("default", "c0d3f4a1", T0 - 86400, 2),
        CollectionRead("hr", "7be2c905", T0 + 240, 1),
    ]),
    ("GET", "/v1/logs"): LogPage([
        LogLine(1, T0, "info", "appliance.server.app", "appliance ready: models need ~898 MiB"),
        LogLine(2, T0 + 5, "warning", "appliance.ingest", "resumed 1 ingestion jobs"),
        LogLine(3, T0 + 9, "error", "appliance.ingest", "ingesting bad.pdf failed: no text"),
    ], 3),
    ("GET", "/v1/sources"): SourceList([
        SourceRead(SourceSettings(id="shared", path="/srv/share/docs", interval_s=3600,
                                  include=["*.pdf", "*.docx"]), "config",
                   ScanReport(state="done", started_at=T0 + 600, finished_at=T0 + 642,
                              seen=120, new=3, changed=1, unchanged=116, deleted=2)),
        SourceRead(SourceSettings(id="policies", path="/srv/policies", watch=True), "api"),
    ]),
    ("POST", "/v1/search"): SearchResponse([
        Hit("p1", 0.711, "d1", "facilities.pdf", 1, "Safety procedures. " + FACT, 2, "Safety"),
        Hit("p2", 0.096, "d2", "backups.md", 0, "Nightly backups run at 02:00.", None, None),
    ], 11.8, 0.9),
}  # fmt: skip


async def _handle(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/metrics":
        return httpx.Response(200, text=METRICS)
    if request.url.path == "/v1/ask/stream":
        return httpx.Response(200, content=_answer(), headers={"content-type": "text/event-stream"})
    body = ROUTES.get((request.method, request.url.path))
    if body is None:
        return httpx.Response(404, json={"status_code": 404, "detail": "not in the frozen set"})
    return httpx.Response(200, content=msgspec.json.encode(body))


def frozen_transport() -> httpx.MockTransport:
    return httpx.MockTransport(_handle)
