"""`appliance eval` against a real server: the metrics it prints, and the shipped set."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.client.evaluation import read_questions
from tests.conftest import server_env
from tests.e2e.server import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DOCS = {
    "generator.md": "# Generator\n\nThe emergency generator in building C is tested every "
    "Tuesday at 9 am by the facilities team.\n",
    "vpn.md": "# Remote access\n\nThe VPN gateway is vpn.example.org; connect with the "
    "WireGuard profile from the intranet.\n",
    "printers.md": "# Printers\n\nPrinter PR-2204 on floor 3 jams when fed card stock; use "
    "the manual tray instead.\n",
}
QUESTIONS = [
    {"question": "When is the emergency generator tested?", "file": "generator.md",
     "fact": "Tuesday"},
    {"question": "What is the VPN gateway address?", "file": "vpn.md",
     "fact": "vpn.example.org"},
    {"question": "Which printer jams with card stock?", "file": "printers.md"},
]  # fmt: skip


@pytest.fixture(scope="module")
def server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        server_env(tmp_path_factory.mktemp("eval-data"), models_dir),
        tmp_path_factory.mktemp("logs") / "server.log",
    ).start()
    try:
        with proc.client(120) as client:  # hang guard per request
            resp = client.post(
                "/v1/documents",
                files=[("files", (name, text.encode())) for name, text in DOCS.items()],
            )
            job_id = resp.json()["job_id"]
            while client.get(f"/v1/jobs/{job_id}").json()["state"] in ("queued", "running"):
                time.sleep(0.2)
        yield proc
    finally:
        proc.stop()


def run_eval(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "eval", *args, "--url", server.url,
         "--key", server.key],
        # hang guard: an evaluation with answers takes ~20 s alone
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False, env=server.env,
    )  # fmt: skip


def test_eval_prints_every_metric(server: ServerProcess, tmp_path: Path) -> None:
    qa = tmp_path / "qa.jsonl"
    qa.write_text("# a comment line\n" + "\n".join(json.dumps(q) for q in QUESTIONS) + "\n")
    out = tmp_path / "results.json"
    done = run_eval(server, str(qa), "--max-tokens", "24", "--json", str(out))
    assert done.returncode == 0, done.stderr
    metrics = dict(re.findall(r"^(\S+)\s+(\S+)$", done.stdout.split("questions against")[1], re.M))
    assert metrics["questions"] == "3"
    assert float(metrics["recall@5"]) == 1.0 and float(metrics["mrr"]) == 1.0
    assert 0.0 <= float(metrics["answer_accuracy"]) <= 1.0  # two questions carry a fact
    assert 0.0 <= float(metrics["evidence_hit"]) <= 1.0
    assert float(metrics["search_ms_p50"]) > 0 and float(metrics["first_token_ms_p50"]) > 0
    assert float(metrics["answer_ms_p50"]) > 0 and metrics["errors"] == "0"
    saved = json.loads(out.read_text())
    assert len(saved["results"]) == 3 and saved["results"][2]["right"] is None  # no fact
    assert saved["summary"]["recall@5"] == 1.0
    # which answered (under the shipped "auto" with this model it would be extract)
    assert re.search(r"^answered_by\s+brief 3$", done.stdout, re.M), done.stdout
    assert {r["strategy"] for r in saved["results"]} == {"brief"}
    retrieval_only = run_eval(server, str(qa), "--no-answers", "--retrieval", "hybrid", "--quiet")
    assert retrieval_only.returncode == 0, retrieval_only.stderr
    assert re.search(r"^answer_accuracy\s+-$", retrieval_only.stdout, re.M)
    assert re.search(r"^recall@5\s+1\.0$", retrieval_only.stdout, re.M)


def test_a_bad_question_set_is_refused_naming_the_line(
    server: ServerProcess, tmp_path: Path
) -> None:
    qa = tmp_path / "bad.jsonl"
    qa.write_text(json.dumps(QUESTIONS[0]) + '\n{"question": "no file"}\n')
    done = run_eval(server, str(qa))
    assert done.returncode == 2 and "line 2" in done.stderr and "file" in done.stderr


def test_the_shipped_question_set_names_the_corpus_files() -> None:
    spec = json.loads((REPO / "bench" / "data" / "pg_questions.json").read_text())
    questions = read_questions(REPO / "bench" / "data" / "pg_questions.jsonl")
    assert len(questions) == len(spec["questions"]) + len(spec["exact_token_questions"]) == 57
    assert {q.file for q in questions} <= set(spec["files"])
    assert all(q.fact for q in questions)
