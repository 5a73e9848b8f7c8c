"""50 people ask at once: time to first token, errors and peak RSS, before and after.

Both servers hold the answer benchmark's corpus (50 PostgreSQL documentation
pages, ingested over HTTP) and get the same 50 questions at the same moment,
each without `max_tokens`, so each server's defaults apply:

* **before**: the appliance before issue 7 by its settings (`answers.BEFORE`):
  legacy prompt (4 passages in the system turn, 256-token answers), 4096 cells
  per slot, 8 slots, no prefix cache, no repetition stop, pages with navigation;
* **after**: the shipped defaults (sized from the prompt budget: 768 cells, 16 slots).

Peak RSS is sampled every 0.1 s over the server's whole life (ingestion included).

`python bench/askers.py overload`: one server with the shipped defaults, 8 then 150
askers at once: time to each one's first event (the evidence) p50/p99, how many finished
"busy" (the extractive answer: every slot and the queue taken), how many first evidences
were ranked by words (the query embeddings were queued deep) and how many errors.
`--askers 8,150` sets the rounds; `--unique` makes every asker's question its own (the
benchmark's 45 questions, each asker's with its number appended), so no two askers share
a question embedding. `--answer-mode auto` runs the rounds with the shipped
`generation.answer_mode` (with the default 135M model: extractive answers) instead of the
benchmarks' "generate"; the whole answer's time is reported either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.answers import BEFORE, ingest, load_questions  # noqa: E402
from bench.harness import appliance_server, concurrent_streams, metric_totals  # noqa: E402

MODELS = REPO / ".cache" / "models"
ASKERS = 50


def slots_of(url: str, headers: dict[str, str]) -> int:
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        if line.split(" ")[0] == "appliance_generation_slots":
            return int(float(line.split()[-1]))
    return 0


STAGES = ("embed_query", "prompt", "generate", "ground")


def stage_means(url: str, headers: dict[str, str]) -> dict[str, float]:
    """Mean seconds per request of each query stage, from the server's own /metrics."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", headers=headers).text.splitlines():
        for suffix, into in (("_sum", sums), ("_count", counts)):
            head = f'appliance_stage_seconds{suffix}{{stage="'
            if line.startswith(head):
                into[line[len(head) :].split('"')[0]] = float(line.split()[-1])
    return {s: sums.get(s, 0.0) / counts[s] if counts.get(s) else 0.0 for s in STAGES}


def run(name: str, data_dir: Path, log: Path, spec: dict[str, Any],
        settings: dict[str, str]) -> dict[str, float]:  # fmt: skip
    questions = [q["question"] for q in spec["questions"]]
    bodies: list[dict[str, object]] = [
        {"query": questions[i % len(questions)], "temperature": 0} for i in range(ASKERS)
    ]
    with appliance_server(data_dir, MODELS, log, **settings) as srv:
        with httpx.Client(base_url=srv.url, timeout=600, headers=srv.headers) as client:
            ingest(client, Path(spec["root"]), spec["files"])
        res = asyncio.run(
            concurrent_streams(f"{srv.url}/v1/ask/stream", bodies, headers=srv.headers)
        )
        time.sleep(0.3)  # one more RSS sample after the last stream
        out = {"slots": slots_of(srv.url, srv.headers), "ttft50": res.ttft(50), "ttft99": res.ttft(99),
               "ok": len(res.ok), "errors": len(res.results) - len(res.ok),
               "tps": res.tokens_per_s(), "wall": res.wall, "rss": srv.peak_rss,
               **stage_means(srv.url, srv.headers)}  # fmt: skip
    print(f"# {name}: {json.dumps(out)}", file=sys.stderr, flush=True)
    return out


OVERLOAD = (8, 150)  # `askers.py overload`: askers at once, each round
BY_WORDS = 'appliance_stage_seconds_count{stage="first_evidence_by_words"}'


def overload(
    spec: dict[str, Any],
    rounds: tuple[int, ...] = OVERLOAD,
    unique: bool = False,
    answer_mode: str = "generate",
) -> None:
    """Issue 22: every asker gets its evidence event, those beyond the slots and the queue
    the extractive answer ("busy"); the shipped defaults, one server. `unique`: no two
    askers ask the same question."""
    questions = [q["question"] for q in spec["questions"]]
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "server.log"
        mode = {"generation__answer_mode": answer_mode}
        with appliance_server(Path(work) / "data", MODELS, log, **mode) as srv:
            with httpx.Client(base_url=srv.url, timeout=600, headers=srv.headers) as client:
                ingest(client, Path(spec["root"]), spec["files"])
            slots = slots_of(srv.url, srv.headers)
            cycled = "each asker's own (numbered)" if unique else "cycled"
            print(f"shipped defaults but answer_mode = {answer_mode!r}: {slots} slots, queue 64; "
                  f"the answer benchmark's corpus and questions ({cycled}), no max_tokens\n")  # fmt: skip
            print(f"{'askers':>6} {'evidence p50 s':>14} {'evidence p99 s':>14} {'no evidence':>11} "
                  f"{'busy':>5} {'generated':>9} {'by words':>8} {'ttft p50 s':>10} {'errors':>6} "
                  f"{'wall s':>6} {'answer p50 s':>12} {'answer p99 s':>12}")  # fmt: skip
            asked = 0
            for n in rounds:
                bodies: list[dict[str, object]] = [
                    {"query": questions[i % len(questions)] + (f" ({asked + i})" if unique else ""),
                     "temperature": 0}
                    for i in range(n)
                ]  # fmt: skip
                asked += n
                words0 = metric_totals(srv.url, srv.headers).get(BY_WORDS, 0.0)
                res = asyncio.run(
                    concurrent_streams(f"{srv.url}/v1/ask/stream", bodies, headers=srv.headers)
                )
                words = metric_totals(srv.url, srv.headers).get(BY_WORDS, 0.0) - words0
                ok = [r for r in res.results if r.status == 200 and r.finish]
                firsts = [r.first_event for r in ok]
                busy = sum(r.finish == "busy" for r in ok)
                generated = [r for r in ok if r.finish != "busy" and r.completion_tokens > 0]
                ttft = np.median([r.ttft for r in generated]) if generated else float("nan")
                p50, p99 = np.percentile(firsts, 50), np.percentile(firsts, 99)
                whole = [r.total for r in ok] or [float("nan")]
                print(f"{n:>6} {p50:>14.2f} {p99:>14.2f} {n - len(ok):>11} {busy:>5} "
                      f"{len(generated):>9} {words:>8.0f} {ttft:>10.2f} "
                      f"{len(res.results) - len(ok):>6} {res.wall:>6.1f} "
                      f"{np.percentile(whole, 50):>12.2f} {np.percentile(whole, 99):>12.2f}",
                      flush=True)  # fmt: skip
                time.sleep(2)
    print(f"\n(askers.py overload: {time.monotonic() - t0:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", choices=["before", "after", "overload"],
                        help="one server only (before, after) or the overload rounds")  # fmt: skip
    parser.add_argument("--askers", default=",".join(map(str, OVERLOAD)),
                        help="overload: askers at once in each round (default %(default)s)")  # fmt: skip
    parser.add_argument("--unique", action="store_true",
                        help="overload: every asker's question its own (numbered)")  # fmt: skip
    parser.add_argument("--answer-mode", choices=["generate", "auto", "extract"],
                        default="generate", help="overload: generation.answer_mode (default "
                        "%(default)s, the benchmarks'; auto: the shipped one)")  # fmt: skip
    args = parser.parse_args()
    spec = load_questions()
    if args.mode == "overload":
        rounds = tuple(int(n) for n in args.askers.split(","))
        overload(spec, rounds, args.unique, args.answer_mode)
        return
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as work:
        log = Path(work) / "server.log"
        only = [args.mode] if args.mode else []  # `askers.py after`: one server, for a quick look
        before = (
            run("before", Path(work) / "before", log, spec, BEFORE)
            if only in ([], ["before"])
            else None
        )
        after = (
            run("after", Path(work) / "after", log, spec, {}) if only in ([], ["after"]) else None
        )
        if before is None or after is None:
            return
    print(f"{ASKERS} concurrent askers, the answer benchmark's questions and corpus, "
          "no max_tokens (each server's default answer length)\n")  # fmt: skip
    print(f"{'server':<7} {'slots':>5} {'ttft p50 s':>10} {'ttft p99 s':>10} {'errors':>6} "
          f"{'tok/s':>6} {'wall s':>6} {'peak RSS MiB':>12}")  # fmt: skip
    for name, r in (("before", before), ("after", after)):
        print(f"{name:<7} {r['slots']:>5.0f} {r['ttft50']:>10.1f} {r['ttft99']:>10.1f} "
              f"{r['errors']:>6.0f} {r['tps']:>6.1f} {r['wall']:>6.1f} {r['rss'] / 2**20:>12.0f}")  # fmt: skip
    print("\nmean seconds per request in each stage (server's /metrics):")
    for name, r in (("before", before), ("after", after)):
        print(f"  {name:<7} " + "  ".join(f"{s} {r[s]:.2f}" for s in STAGES))
    p99 = after["ttft99"] / before["ttft99"]
    rss = after["rss"] / before["rss"]
    print(f"\np99 time to first token after/before: {p99:.2f}x (target <= 0.35x with 0 errors: "
          f"{'met' if p99 <= 0.35 and after['errors'] == 0 else 'MISSED'})")  # fmt: skip
    print(f"peak RSS after/before: {rss:.2f}x (target <= 0.70x at no fewer slots: "
          f"{'met' if rss <= 0.7 and after['slots'] >= before['slots'] else 'MISSED'}; "
          f"{after['rss'] / 2**20:.0f} MiB vs the 1165 MiB measured before: "
          f"{after['rss'] / 2**20 / 1165:.2f}x)")  # fmt: skip
    print(f"\n(askers.py: {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
