"""Hybrid retrieval (BM25 + dense, fused by reciprocal rank) against dense-only search.

One server, one ingestion of the answer benchmark's corpus (50 pages of the PostgreSQL
15 documentation); every question is searched twice through `/v1/search`, once with
`retrieval: "dense"` and once with `retrieval: "hybrid"`, so both columns come from the
same index in the same run. Two question sets: the answer benchmark's 45 questions
(in users' words) and 12 that hinge on an exact token (a setting, a type, a function,
an option). Reported: recall@5 and MRR@10 of the answering page, and search latency;
then every question is answered in both modes with the shipped defaults (`appliance
eval`'s code): answer accuracy (the fact in the answer) and evidence hit.

    python bench/hybrid.py [--no-answers] [retrieval__bm25_weight=0.5 ...]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.client import ApplianceClient  # noqa: E402
from appliance.client.evaluation import EvalQuestion, evaluate  # noqa: E402
from bench.answers import MODELS, ingest, load_questions  # noqa: E402
from bench.harness import appliance_server  # noqa: E402

MODES = ("dense", "hybrid")


def measure(
    client: httpx.Client, questions: list[dict[str, str]], mode: str
) -> tuple[float, float, float, list[str]]:
    found5, reciprocal, latency, misses = 0, 0.0, [], []
    for q in questions:
        t0 = time.perf_counter()
        resp = client.post("/v1/search",
                           json={"query": q["question"], "top_k": 10, "retrieval": mode})  # fmt: skip
        latency.append((time.perf_counter() - t0) * 1000)
        resp.raise_for_status()
        files = [h["file_name"] for h in resp.json()["hits"]]
        if q["file"] in files[:5]:
            found5 += 1
        else:
            misses.append(q["question"])
        if q["file"] in files:
            reciprocal += 1 / (files.index(q["file"]) + 1)
    n = len(questions)
    return found5 / n, reciprocal / n, statistics.median(latency), misses


def answers(url: str, headers: dict[str, str], sets: dict[str, list[dict[str, str]]]) -> None:
    print(f"\n{'questions':<28} {'retrieval':<8} {'accuracy':>9} {'evidence':>9} "
          f"{'first token p50 ms':>19}")  # fmt: skip

    async def run(questions: list[EvalQuestion], mode: str) -> tuple[float, float, float]:
        key = headers.get("Authorization", "").removeprefix("Bearer ") or None
        async with ApplianceClient(url, key, timeout=600) as client:
            report = await evaluate(client, questions, retrieval=mode)
        summary = report.summary()
        return (float(summary["answer_accuracy"] or 0), float(summary["evidence_hit"] or 0),
                float(summary["first_token_ms_p50"] or 0))  # fmt: skip

    for title, raw in sets.items():
        questions = [EvalQuestion(q["question"], q["file"], q["fact"]) for q in raw]
        rows = {mode: asyncio.run(run(questions, mode)) for mode in MODES}
        for mode, (accuracy, evidence, ttft) in rows.items():
            print(f"{title:<28} {mode:<8} {accuracy:>9.2f} {evidence:>9.2f} {ttft:>19.0f}")


def main() -> None:
    t_start = time.monotonic()
    spec = load_questions()
    root = Path(str(spec["root"]))
    files = list(spec["files"])  # type: ignore[call-overload]
    sets = {
        "users' questions (45)": list(spec["questions"]),  # type: ignore[call-overload]
        "exact-token questions (12)": list(spec["exact_token_questions"]),  # type: ignore[call-overload]
    }
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "data"
        settings = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)  # section__key=value
        with (
            appliance_server(data, MODELS, Path(work) / "server.log", **settings) as srv,
            httpx.Client(base_url=srv.url, headers=srv.headers, timeout=600) as client,
        ):
            seconds = ingest(client, root, files)
            print(f"corpus: {len(files)} pages ingested in {seconds:.0f} s; "
                  "each question searched in both modes on the same index\n")  # fmt: skip
            print(f"{'questions':<28} {'retrieval':<8} {'recall@5':>9} {'MRR@10':>7} "
                  f"{'search p50 ms':>14}")  # fmt: skip
            all_rows: dict[str, dict[str, tuple[float, float, float, list[str]]]] = {}
            for title, questions in sets.items():
                rows = {mode: measure(client, questions, mode) for mode in MODES}
                all_rows[title] = rows
                for mode, (recall, mrr, p50, _) in rows.items():
                    print(f"{title:<28} {mode:<8} {recall:>9.2f} {mrr:>7.2f} {p50:>14.1f}")
                (r_d, m_d, t_d, _), (r_h, m_h, t_h, _) = rows["dense"], rows["hybrid"]
                print(f"{'':<28} {'ratio':<8} {r_h / max(r_d, 1e-9):>8.2f}x "
                      f"{m_h / max(m_d, 1e-9):>6.2f}x {t_h / max(t_d, 1e-9):>13.2f}x\n")  # fmt: skip
            for title, rows in all_rows.items():
                for mode in MODES:
                    for question in rows[mode][3]:
                        print(f"missed at 5 ({mode}, {title}): {question}")
            if "--no-answers" not in sys.argv:
                answers(srv.url, srv.headers, sets)
    print(f"\n(hybrid.py: {time.monotonic() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
