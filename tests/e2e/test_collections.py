"""Collections end to end, on a real server with real files: a helpdesk key never reads
a fact that exists only in an HR document, through any route (a conversation's
follow-up, the OpenAI SDK with `model="appliance"` and `appliance eval` included);
the scopes survive a backup and restore; an older data dir opens with everything in
`default` and every key reading `*`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from websockets.sync.client import connect

from tests.conftest import server_env
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
SECRET = "PINEAPPLE-7731"  # only in the HR document
HR = {
    "leave.md": "# Leave\n\nStaff file leave requests on form PINEAPPLE-7731 in the human "
    "resources portal. Requests need two weeks of notice.\n"
}
DESK = {
    "passwords.md": "# Passwords\n\nThe helpdesk resets forgotten passwords at the MANGO-4420 "
    "kiosk on floor two. Bring a badge.\n"
}
QUESTION = "Which form do staff file leave requests on?"
FOLLOW_UP = "And how much notice do they need?"


def upload(client: httpx.Client, docs: dict[str, str], collection: str | None) -> str:
    data = {"collection": collection} if collection else None
    resp = client.post(
        "/v1/documents", files=[("files", (n, t.encode())) for n, t in docs.items()], data=data
    )
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    deadline = time.monotonic() + 300  # hang guard: two short documents take ~2 s
    while (job := client.get(f"/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert job["state"] == "done", job
    return str(job["files"][0]["document_id"])


def make_key(client: httpx.Client, name: str, collections: list[str]) -> str:
    body = {"name": name, "role": "query", "collections": collections}
    resp = client.post("/v1/keys", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args],
        # hang guard: a backup, a restore or an evaluation of one question takes seconds
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False, env=env,
    )  # fmt: skip


@dataclass(frozen=True)
class Team:
    server: ServerProcess
    hr_doc: str  # the HR document's id
    helpdesk: str  # a query key reading `desk`
    hr: str  # a query key reading `hr`


@pytest.fixture(scope="module")
def team(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    data = tmp_path_factory.mktemp("collections-data")
    proc = ServerProcess(
        server_env(data, models_dir), tmp_path_factory.mktemp("logs") / "server.log"
    ).start()
    try:
        with proc.client(120) as client:  # hang guard per request
            for name in ("hr", "desk"):
                assert client.post("/v1/collections", json={"name": name}).status_code == 201
            hr_doc = upload(client, HR, "hr")
            upload(client, DESK, "desk")
            helpdesk = make_key(client, "helpdesk", ["desk"])
            hr = make_key(client, "hr team", ["hr"])
        yield Team(proc, hr_doc, helpdesk, hr)
    finally:
        proc.stop()


def everything_a_key_reads(team: Team, key: str, tmp_path: Path) -> list[str]:
    """What `key` gets back from every route that returns document content."""
    seen: list[str] = []
    server, hr_doc = team.server, team.hr_doc
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=180) as client:  # hang guard
        for method, path, body in (
            ("POST", "/v1/search", {"query": QUESTION, "top_k": 20}),
            ("POST", "/v1/search", {"query": "PINEAPPLE-7731 leave form", "retrieval": "hybrid"}),
            ("POST", "/v1/ask", {"query": QUESTION, "max_tokens": 24}),
            ("POST", "/v1/ask", {"query": QUESTION, "strategy": "extract"}),
            ("POST", "/v1/ask/stream", {"query": QUESTION, "max_tokens": 16}),
            ("POST", "/v1/ask", {"query": QUESTION, "conversation_id": "c1", "max_tokens": 8}),
            ("POST", "/v1/ask", {"query": FOLLOW_UP, "conversation_id": "c1", "max_tokens": 8}),
            ("GET", "/v1/conversations/c1", None),
            ("GET", "/v1/documents", None),
            ("GET", f"/v1/documents/{hr_doc}", None),
            ("GET", f"/v1/documents/{hr_doc}/chunks", None),
            ("GET", "/v1/collections", None),
        ):
            resp = client.request(method, path, json=body)
            assert resp.status_code in (200, 404), (path, resp.text)
            seen.append(resp.text)
    url = server.url.replace("http", "ws", 1) + "/v1/ask/ws"
    with connect(url, additional_headers=auth) as socket:
        socket.send(json.dumps({"query": QUESTION, "max_tokens": 8}))
        while True:
            seen.append(message := str(socket.recv(timeout=180)))  # hang guard
            if json.loads(message)["type"] in ("done", "error"):
                break
    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, timeout=180)  # hang guard
    seen.append(" ".join(m.id for m in sdk.models.list().data))
    chat: list[ChatCompletionMessageParam] = [{"role": "user", "content": QUESTION}]
    made = sdk.chat.completions.create(model="appliance", messages=chat, max_tokens=16)
    seen.append(made.model_dump_json())
    stream = sdk.chat.completions.create(
        model="appliance", messages=chat, max_tokens=8, stream=True
    )
    seen += [chunk.model_dump_json() for chunk in stream]
    questions = tmp_path / "qa.jsonl"
    questions.write_text(json.dumps({"question": QUESTION, "file": "leave.md", "fact": SECRET}))
    out = tmp_path / "eval.json"
    evaluated = cli(server.env, "eval", str(questions), "--max-tokens", "8", "--json", str(out),
                    "--url", server.url, "--key", key)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads(out.read_text())["results"]
    for result in results:
        del result["question"]  # the question set's own fact, echoed
    seen += [evaluated.stdout, json.dumps(results)]
    return seen


def test_a_helpdesk_key_never_reads_an_hr_fact(team: Team, tmp_path: Path) -> None:
    helpdesk = everything_a_key_reads(team, team.helpdesk, tmp_path)
    leaks = [text[:300] for text in helpdesk if SECRET in text]
    assert not leaks, leaks
    assert any("MANGO-4420" in text for text in helpdesk)  # it does read its own
    hr = everything_a_key_reads(team, team.hr, tmp_path)
    assert sum(SECRET in text for text in hr) >= 8  # the same probes do show the fact
    sdk = openai.OpenAI(base_url=f"{team.server.url}/v1", api_key=team.helpdesk, timeout=180)
    with pytest.raises(openai.NotFoundError) as refused:  # naming it does not widen the scope
        sdk.chat.completions.create(
            model="appliance/hr", messages=[{"role": "user", "content": QUESTION}]
        )
    assert SECRET not in str(refused.value)


def test_collections_and_key_scopes_survive_a_backup_and_restore(
    team: Team, models_dir: Path, tmp_path: Path
) -> None:
    server = team.server
    archive = tmp_path / "backup.tar.gz"
    made = cli(server.env, "backup", "--url", server.url, str(archive))
    assert made.returncode == 0, made.stderr
    second = ServerProcess(server_env(tmp_path / "restored", models_dir), tmp_path / "b.log")
    restored = cli(second.env, "restore", "--url", second.url, str(archive))
    assert restored.returncode == 0, restored.stderr
    second.start()
    try:
        with second.client() as client:
            names = {c["name"]: c["documents"] for c in client.get("/v1/collections").json()[
                "collections"]}  # fmt: skip
            assert names == {"default": 0, "hr": 1, "desk": 1}
            scopes = {k["name"]: k["collections"] for k in client.get("/v1/keys").json()["keys"]}
            assert scopes["helpdesk"] == ["desk"] and scopes["hr team"] == ["hr"]
        for key, shown in ((team.helpdesk, False), (team.hr, True)):
            found = httpx.post(
                f"{second.url}/v1/search", json={"query": QUESTION, "top_k": 20},
                headers={"Authorization": f"Bearer {key}"}, timeout=60,  # hang guard
            )  # fmt: skip
            assert found.status_code == 200 and (SECRET in found.text) == shown
    finally:
        second.stop()


def as_before_collections(data: Path) -> None:
    """Rewrite a stopped server's data dir as an appliance from before collections left
    it: no `collection` payload on chunks, the journal's old documents table (one row per
    content) and no collections table, keys without scopes."""
    import qdrant_edge as qe

    for shard_dir in (data / "edge").iterdir():
        shard = qe.EdgeShard.load(str(shard_dir), None)
        every = qe.Filter(must_not=[qe.IsEmptyCondition("document_id")])
        shard.update(qe.UpdateOperation.delete_payload_by_filter(every, ["collection"]))
        shard.flush()
        shard.close()
    journal = sqlite3.connect(data / "journal.sqlite3", isolation_level=None)
    [sql] = journal.execute("SELECT sql FROM sqlite_master WHERE name = 'documents'").fetchone()
    columns = [
        r[1] for r in journal.execute("PRAGMA table_info(documents)") if r[1] != "collection"
    ]
    old = sql.replace("content_hash TEXT NOT NULL", "content_hash TEXT NOT NULL UNIQUE")
    old = old.replace("CREATE TABLE documents", "CREATE TABLE old_documents")
    old = old.replace(", collection TEXT NOT NULL DEFAULT 'default'", "")
    journal.executescript(
        f"DROP INDEX documents_content; {old}; "
        f"INSERT INTO old_documents SELECT {', '.join(columns)} FROM documents; "
        "DROP TABLE documents; ALTER TABLE old_documents RENAME TO documents; "
        "DROP TABLE collections;"
    )
    assert "collection" not in {r[1] for r in journal.execute("PRAGMA table_info(documents)")}
    journal.close()
    keys = sqlite3.connect(data / "secrets" / "keys.sqlite3", isolation_level=None)
    keys.execute("ALTER TABLE api_keys DROP COLUMN collections")
    keys.close()


def test_an_older_data_dir_opens_with_everything_in_default(
    models_dir: Path, tmp_path: Path
) -> None:
    proc = ServerProcess(server_env(tmp_path / "data", models_dir), tmp_path / "s.log").start()
    try:
        with proc.client() as client:
            doc = upload(client, DESK, None)
            made = client.post("/v1/keys", json={"name": "old key", "role": "query"}).json()
    finally:
        proc.stop()
    as_before_collections(proc.data_dir)
    proc.start()
    try:
        with proc.client() as client:
            assert client.get(f"/v1/documents/{doc}").json()["collection"] == "default"
            scopes = {k["name"]: k["collections"] for k in client.get("/v1/keys").json()["keys"]}
            assert scopes["old key"] == ["*"]
            assert client.post("/v1/collections", json={"name": "hr"}).status_code == 201
            in_default = make_key(client, "default only", ["default"])
            in_hr = make_key(client, "hr only", ["hr"])
            # the same content may now be stored again in another collection
            again = upload(client, DESK, "hr")
            assert again != doc
        for key, expected in ((made["key"], {doc, again}), (in_default, {doc}), (in_hr, {again})):
            hits = httpx.post(
                f"{proc.url}/v1/search", json={"query": "forgotten passwords", "top_k": 10},
                headers={"Authorization": f"Bearer {key}"}, timeout=60,  # hang guard
            ).json()["hits"]  # fmt: skip
            assert {h["document_id"] for h in hits} == expected
    finally:
        proc.stop()


def with_source(config: Path, share: Path, collection: str) -> None:
    """The shipped config plus one synced folder filling `collection`."""
    shipped = (REPO / "configs" / "appliance.toml").read_text()
    config.write_text(
        f'{shipped}\n[[sources]]\nid = "share"\npath = "{share}"\ncollection = "{collection}"\n'
    )


def test_a_source_moved_to_another_collection_takes_its_documents_along(
    models_dir: Path, tmp_path: Path
) -> None:
    """An admin moves a synced folder from `default` to `hr` in the config file: its
    unchanged files must not stay readable in `default` (they would leak to every key
    reading it). The next scan stores them in `hr` and drops them from `default`."""
    share, config = tmp_path / "share", tmp_path / "appliance.toml"
    share.mkdir()
    (share / "bonus.txt").write_text("The staff bonus code this year is MANGO-4411.\n")
    with_source(config, share, "default")
    env = server_env(tmp_path / "data", models_dir)
    proc = ServerProcess(env, tmp_path / "s.log", config=config).start()

    def scan_and_search(key: str | None = None) -> set[str]:
        with proc.client() as client:
            assert client.post("/v1/sources/share/scan").status_code == 202
            deadline = time.monotonic() + 300  # hang guard: one short file takes ~1 s
            while client.get("/v1/sources").json()["sources"][0]["last_scan"]["state"] == (
                "running"
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
        hits = httpx.post(
            f"{proc.url}/v1/search", json={"query": "staff bonus code", "top_k": 10},
            headers={"Authorization": f"Bearer {key or proc.key}"}, timeout=60,  # hang guard
        ).json()["hits"]  # fmt: skip
        with proc.client() as client:  # the collection of each document holding the fact
            return {
                client.get(f"/v1/documents/{h['document_id']}").json()["collection"]
                for h in hits if "MANGO-4411" in h["text"]
            }  # fmt: skip

    try:
        with proc.client() as client:
            reads_default = make_key(client, "default only", ["default"])
        assert scan_and_search(reads_default) == {"default"}
    finally:
        proc.stop()
    with_source(config, share, "hr")
    proc.start()
    try:
        assert scan_and_search(reads_default) == set()
        assert scan_and_search() == {"hr"}  # the admin reads it, in `hr` only
        with proc.client() as client:
            mine = {"Authorization": f"Bearer {reads_default}"}
            listed = client.get("/v1/documents", headers=mine)
            assert listed.status_code == 200 and listed.json()["documents"] == []
    finally:
        proc.stop()
