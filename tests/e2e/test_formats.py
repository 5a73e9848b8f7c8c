"""Every format through the real server: upload a generated file, find its fact, check the
citation (sheet and rows, slide, page, mail subject) and the document's metadata; filters
narrow search and answers by that metadata."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import server_env
from tests.e2e.server import ServerProcess
from tests.format_files import FACTS, make_formats

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def loaded(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    data = tmp_path_factory.mktemp("formats-data")
    proc = ServerProcess(
        server_env(data, models_dir), tmp_path_factory.mktemp("logs") / "server.log"
    ).start()
    files = make_formats(tmp_path_factory.mktemp("formats"))
    with proc.client(120) as client:  # hang guard per request
        resp = client.post(
            "/v1/documents",
            files=[("files", (p.name, p.read_bytes())) for p in files.values()],
        )
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["job_id"]
        # hang guard: every format, OCR of a scan included, takes ~30 s alone
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.3)
    try:
        yield proc, job
    finally:
        proc.stop()


def search(proc: ServerProcess, query: str, **extra: Any) -> dict[str, Any]:
    with proc.client() as client:
        resp = client.post("/v1/search", json={"query": query, "top_k": 3, **extra})
        assert resp.status_code == 200, resp.text
        found: dict[str, Any] = resp.json()
        return found


def hit_for(proc: ServerProcess, kind: str) -> dict[str, Any]:
    name, fact, question = FACTS[kind]
    hits = search(proc, question)["hits"]
    mine = [h for h in hits if h["file_name"] == name and fact.lower() in h["text"].lower()]
    assert mine, f"{name}: {[(h['file_name'], h['text'][:80]) for h in hits]}"
    return mine[0]


def rows_of(location: str) -> range:
    match = re.search(r"rows (\d+)-(\d+)", location)
    assert match, location
    return range(int(match.group(1)), int(match.group(2)) + 1)


def test_every_file_is_ingested_with_its_attachment(
    loaded: tuple[ServerProcess, dict[str, Any]],
) -> None:
    _, job = loaded
    states = {f["file_name"]: (f["state"], f["error"]) for f in job["files"]}
    assert all(state == "done" for state, _ in states.values()), [
        (n, s) for n, s in states.items() if s[0] != "done"
    ]
    assert "inventory.txt" in states  # the mail's attachment, a file of the same job
    notes = {f["file_name"]: f["note"] for f in job["files"]}
    assert notes["contract-scan.pdf"] == "pages read by OCR: 1, 2"
    assert notes["warranty.png"] == "pages read by OCR: 1"


@pytest.mark.parametrize("kind", sorted(FACTS))
def test_each_format_answers_its_fact_with_the_right_citation(
    loaded: tuple[ServerProcess, dict[str, Any]], kind: str
) -> None:
    proc, _ = loaded
    hit = hit_for(proc, kind)
    where = (hit["page"], hit["heading"], hit["location"])
    if kind == "xlsx":
        assert hit["heading"] == "Depots" and hit["location"].startswith("sheet Depots, rows")
        assert 45 in rows_of(hit["location"])  # Kuopio is on spreadsheet row 45
        assert "Manager: Onni Lindqvist" in hit["text"]  # the header repeated on the row
    elif kind == "csv":
        assert 13 in rows_of(hit["location"]), where  # the ZX-4411 line of the file
    elif kind == "tsv":
        assert 3 in rows_of(hit["location"]), where
    elif kind == "ods":
        assert hit["location"].startswith("sheet Budget, rows") and 3 in rows_of(hit["location"])
    elif kind == "pptx":
        assert hit["page"] == 3 and hit["location"] in ("slide 3", "notes of slide 3"), where
        assert hit["heading"] == "Backup rotation"
    elif kind == "odp":
        assert (hit["page"], hit["location"]) == (2, "slide 2"), where
    elif kind == "eml":
        assert hit["heading"] == "Quarterly depot audit", where
        assert hit["location"] == "mail: Quarterly depot audit"
    elif kind == "msg":
        assert hit["location"] == "mail: Fire drill schedule", where
    elif kind == "odt":
        assert hit["heading"] == "Visitor policy", where
    elif kind in ("png", "scan"):
        assert hit["page"] == (1 if kind == "png" else 2), where


def test_documents_carry_their_metadata(loaded: tuple[ServerProcess, dict[str, Any]]) -> None:
    proc, _ = loaded
    with proc.client() as client:
        docs = {d["file_name"]: d for d in client.get("/v1/documents").json()["documents"]}
    xlsx = docs["depots.xlsx"]
    assert (xlsx["file_type"], xlsx["title"], xlsx["author"]) == (
        "xlsx", "Depot directory", "Facilities team",
    )  # fmt: skip
    mail = docs["audit.eml"]
    assert mail["title"] == "Quarterly depot audit" and mail["author"] == "Aino Virtanen"
    assert mail["created"].startswith("2026-11-03")
    assert mail["meta"]["from"] == "Aino Virtanen <aino@example.com>"
    outlook = docs["fire-drill.msg"]
    assert (outlook["file_type"], outlook["title"], outlook["author"]) == (
        "msg", "Fire drill schedule", "Eero Salo",
    )  # fmt: skip
    attachment = docs["inventory.txt"]
    assert attachment["parent_id"] == mail["id"]
    assert docs["contract-scan.pdf"]["meta"]["ocr_pages"] == "1,2"
    assert docs["backup-plan.pptx"]["pages"] == 3
    assert all(d["source"] is None for d in docs.values())  # uploads, not a synced folder


def test_filters_narrow_search_to_matching_documents(
    loaded: tuple[ServerProcess, dict[str, Any]],
) -> None:
    proc, _ = loaded
    question = FACTS["xlsx"][2]
    only_slides = search(proc, question, filters={"file_types": ["pptx", "odp"]})
    assert only_slides["hits"]
    assert {h["file_name"] for h in only_slides["hits"]} <= {"backup-plan.pptx", "hours.odp"}
    by_title = search(proc, "warehouse", filters={"title": "DEPOT DIRECTORY"})
    assert {h["file_name"] for h in by_title["hits"]} == {"depots.xlsx"}
    assert by_title["documents"][by_title["hits"][0]["document_id"]]["title"] == "Depot directory"
    by_author = search(proc, "pallets", filters={"author": "virtanen"})
    assert {h["file_name"] for h in by_author["hits"]} == {"audit.eml"}
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    assert search(proc, question, filters={"ingested_before": yesterday})["hits"] == []
    assert search(proc, question, filters={"ingested_after": yesterday})["hits"]
    assert search(proc, question, filters={"sources": ["upload"]})["hits"]
    assert search(proc, question, filters={"sources": ["no-such-folder"]})["hits"] == []
    mail_dated = search(proc, question, filters={"created_after": "2026-11-01",
                                                 "created_before": "2026-11-30"})  # fmt: skip
    assert {h["file_name"] for h in mail_dated["hits"]} == {"audit.eml"}


def test_a_bad_filter_is_refused_naming_the_field(
    loaded: tuple[ServerProcess, dict[str, Any]],
) -> None:
    proc, _ = loaded
    with proc.client() as client:
        resp = client.post(
            "/v1/search", json={"query": "x", "filters": {"ingested_after": "last week"}}
        )
        assert resp.status_code == 400
        assert "filters.ingested_after" in resp.text
        resp = client.post("/v1/search", json={"query": "x", "filters": {"colour": "red"}})
        assert resp.status_code == 400 and "colour" in resp.text
        assert client.get("/readyz").status_code == 200


def test_answer_citations_show_location_and_metadata(
    loaded: tuple[ServerProcess, dict[str, Any]],
) -> None:
    proc, _ = loaded
    with proc.client(180) as client:
        resp = client.post(
            "/v1/ask",
            json={"query": FACTS["xlsx"][2], "max_tokens": 16,
                  "filters": {"file_types": ["xlsx"]}},
        )  # fmt: skip
    assert resp.status_code == 200, resp.text
    citations = resp.json()["citations"]
    assert citations and all(c["file_name"] == "depots.xlsx" for c in citations)
    top = citations[0]
    assert top["location"].startswith("sheet Depots, rows")
    assert (top["title"], top["author"], top["file_type"], top["source"]) == (
        "Depot directory", "Facilities team", "xlsx", None,
    )  # fmt: skip
