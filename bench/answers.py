"""The answer benchmark: right answers, evidence and latency per prompt strategy.

The question set (bench/data/pg_questions.json) holds 45 questions over 50 pages
of the PostgreSQL 15 documentation (Debian package postgresql-doc-15, installed
here when missing), each with the fact that answers it and the answering page;
`--corpus apache` reads the second set instead (bench/data/apache_questions.json:
61 questions over 51 pages of the Apache HTTP Server manual, package apache2-doc).
The corpus goes in through the HTTP API, every question goes out through
`/v1/ask/stream`, one at a time (an idle server, one user).

Two servers run in one go, so every ratio comes from the same run:
* **before**: the appliance as it was: whole HTML pages with their navigation,
  `legacy` prompt (4 passages in the system turn, 256-token answers), a 4096-cell
  context per slot, no prefix cache, no repetition stop;
* **after**: the shipped defaults (slots of 2048 cells, so that every strategy
  reads all it asks for), asked with every named strategy.

Measures, per strategy: recall@5 and MRR of the answering page in search,
answer accuracy (the fact in the answer, case-insensitive), evidence hit (the
fact in the returned evidence sentences), prompt/answer tokens p50, time to
first token p50 and total p50, time to the first (evidence) event p50 and whether its
best sentence (first@1) or one of its 5 best (first@5) holds the fact; and how
`grounded` separates right from wrong; and how often an answer names something (an
identifier, a file, a number, a URL) found in neither the question nor its top 5 passages
(`invented`: made up). `extract` is the extractive answer (no model).

    python bench/answers.py                    # both servers
    python bench/answers.py --corpus apache    # the second corpus
    python bench/answers.py --url http://host:8080 [--key K] [--strategies a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness import appliance_server  # noqa: E402

CORPORA = {  # --corpus: its question set
    "pg": REPO / "bench" / "data" / "pg_questions.json",
    "apache": REPO / "bench" / "data" / "apache_questions.json",
}
MODELS = REPO / ".cache" / "models"
WARM_UP = {"question": "What is this manual about?", "fact": "-"}
AFTER_STRATEGIES = ["brief", "sentences", "extract", "brief4", "top3"]
BEFORE = {  # the appliance before issue 7, by its settings
    "retrieval__html_main_content": "false",
    "retrieval__top_k": "4",
    "models__chat_ctx": "4096",
    "generation__parallel": "8",
    "generation__prompt": "legacy",
    "generation__prefix_cache": "false",
    "generation__repetition_stop": "false",
}
# The shipped defaults, with slots long enough for every strategy to read what it says
# (the default 768 cells would cut top3/top5 to fewer passages; the default strategy
# reads the same either way).
AFTER = {"models__chat_ctx": "2048"}


def load_questions(corpus: str = "pg") -> dict[str, object]:
    spec: dict[str, object] = json.loads(CORPORA[corpus].read_text())
    root = Path(str(spec["root"]))
    if not root.is_dir():
        package = str(spec["package"])
        print(f"# the corpus is missing: installing Debian package {package}", file=sys.stderr)
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            sys.exit(f"please install {package} (apt-get install {package})")
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    return spec


def headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def ingest(client: httpx.Client, root: Path, files: list[str]) -> float:
    t0 = time.perf_counter()
    handles = [(root / name).open("rb") for name in files]
    try:
        resp = client.post(  # a page's name as ingested: without its directory (mod/core.html)
            "/v1/documents",
            files=[("files", (Path(n).name, h)) for n, h in zip(files, handles, strict=True)],
        )
    finally:
        for h in handles:
            h.close()
    resp.raise_for_status()
    job_id = resp.json()["job_id"]
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if job["files_failed"]:
        sys.exit(f"ingestion failed: {job}")
    return time.perf_counter() - t0


@dataclass
class Retrieval:
    recall: float
    mrr: float
    # each question's top passages (and the question): where an answer's names may come from
    sources: dict[str, str] = field(default_factory=dict)


# What an answer names: a call, an option, a snake_case or CamelCase name, a dotted name
# (file.conf, 2.4.8), a number, a URL, a `quoted` piece.
_NAMES = re.compile(
    r"https?://\S+|`[^`\n]+`|\b\w+\(\)|(?<![\w-])--?[a-z][\w-]*|\b[a-z]+_\w+\b"
    r"|\b[A-Z][a-z]+[A-Z]\w*\b|\b\w+(?:\.\w+)+\b|\b\d+\b"
)


def invented_names(answer: str, source: str) -> list[str]:
    """The names of `answer` found nowhere in `source` (the question and its top passages,
    case and spacing aside): what the model made up."""
    known = " ".join(source.lower().split())
    names = (n.strip("`").strip() for n in _NAMES.findall(answer))
    plain = {"e.g", "i.e", *map(str, range(10))}  # not names: a list's 1., 2.
    return [n for n in names if n.lower() not in plain and " ".join(n.lower().split()) not in known]


def retrieval(client: httpx.Client, questions: list[dict[str, str]]) -> Retrieval:
    hits_at_5 = 0
    reciprocal = 0.0
    sources: dict[str, str] = {}
    for q in questions:
        hits = client.post("/v1/search", json={"query": q["question"], "top_k": 10}).json()["hits"]
        sources[q["question"]] = " ".join([q["question"], *(str(h["text"]) for h in hits[:5])])
        files = [h["file_name"] for h in hits]
        if q["file"] in files[:5]:
            hits_at_5 += 1
        if q["file"] in files:
            reciprocal += 1 / (files.index(q["file"]) + 1)
    return Retrieval(hits_at_5 / len(questions), reciprocal / len(questions), sources)


@dataclass
class Answer:
    right: bool
    evidence_hit: bool
    grounded: float
    prompt_tokens: int
    cached_tokens: int
    answer_tokens: int
    ttft: float
    total: float
    finish: str
    text: str
    evidence_s: float = 0.0  # to the stream's first event, the evidence
    first_at_1: bool = False  # the first evidence's best sentence holds the fact
    first_at_5: bool = False  # one of its 5 best does
    invented: bool = False  # names something found in neither the question nor its top passages


@dataclass
class StrategyResult:
    server: str
    name: str
    answers: list[Answer] = field(default_factory=list)
    errors: int = 0

    def share(self, attr: str) -> float:
        return sum(bool(getattr(a, attr)) for a in self.answers) / max(1, len(self.answers))

    def p50(self, attr: str) -> float:
        return float(np.median([getattr(a, attr) for a in self.answers])) if self.answers else 0.0


async def ask(client: httpx.AsyncClient, q: dict[str, str], strategy: str | None,
              source: str | None = None) -> Answer:  # fmt: skip
    body: dict[str, object] = {"query": q["question"], "temperature": 0.0}
    if strategy:
        body["strategy"] = strategy
    t0 = time.perf_counter()
    ttft = evidence_s = 0.0
    first: list[dict[str, object]] = []
    done: dict[str, object] | None = None
    async with client.stream("POST", "/v1/ask/stream", json=body) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {(await resp.aread())[:200]!r}")
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["type"] == "evidence":
                evidence_s, first = time.perf_counter() - t0, event["evidence"]
            elif event["type"] == "token" and not ttft:
                ttft = time.perf_counter() - t0
            elif event["type"] == "done":
                done = event
            elif event["type"] == "error":
                raise RuntimeError(event["message"])
    total = time.perf_counter() - t0
    assert done is not None
    fact = q["fact"].lower()
    answer = str(done["answer"])
    evidence = done.get("evidence") or []
    timings = done["timings"]
    assert isinstance(timings, dict) and isinstance(evidence, list)
    holds = [fact in " ".join(str(e["text"]).lower().split()) for e in first]
    return Answer(
        right=fact in " ".join(answer.lower().split()),
        evidence_hit=any(fact in " ".join(str(e["text"]).lower().split()) for e in evidence),
        grounded=float(done.get("grounded", 0.0)),  # type: ignore[arg-type]
        prompt_tokens=int(timings["prompt_tokens"]),
        cached_tokens=int(timings.get("cached_prompt_tokens", 0)),
        answer_tokens=int(timings["completion_tokens"]),
        ttft=ttft,
        total=total,
        finish=str(done["finish_reason"]),
        text=answer,
        evidence_s=evidence_s,
        first_at_1=bool(holds[:1] and holds[0]),
        first_at_5=any(holds[:5]),
        invented=source is not None and bool(invented_names(answer, source)),
    )


async def run_strategy(url: str, key: str | None, server: str, name: str | None,
                       questions: list[dict[str, str]],
                       sources: dict[str, str]) -> StrategyResult:  # fmt: skip
    result = StrategyResult(server, name or "(default)")
    async with httpx.AsyncClient(base_url=url, timeout=600, headers=headers(key)) as client:
        # warm: models paged in, the prompt's prefix cached; a question not in the set, so
        # none of theirs is answered from the query path's caches (vectors, sentences)
        await ask(client, WARM_UP, name)
        for q in questions:
            try:
                result.answers.append(await ask(client, q, name, sources[q["question"]]))
            except RuntimeError as exc:
                result.errors += 1
                print(f"# {name}: {q['question'][:40]}: {exc}", file=sys.stderr)
    return result


def measure(url: str, key: str | None, server: str, spec: dict[str, object],
            strategies: list[str | None]) -> tuple[Retrieval, float, list[StrategyResult]]:  # fmt: skip
    questions: list[dict[str, str]] = spec["questions"]  # type: ignore[assignment]
    files: list[str] = spec["files"]  # type: ignore[assignment]
    with httpx.Client(base_url=url, timeout=600, headers=headers(key)) as client:
        took = ingest(client, Path(str(spec["root"])), files)
        found = retrieval(client, questions)
    results = []
    for name in strategies:
        print(f"# {server}: strategy {name or '(default)'}", file=sys.stderr, flush=True)
        results.append(asyncio.run(run_strategy(url, key, server, name, questions, found.sources)))
    return found, took, results


def separation(results: list[StrategyResult]) -> str:
    """How `grounded` separates right answers from wrong ones, over every answer."""
    answers = [a for r in results if r.server == "after" for a in r.answers]
    lines = ["grounded vs right answers (every 'after' answer):"]
    for cut in (0.34, 0.5, 0.67, 1.0):
        high = [a for a in answers if a.grounded >= cut]
        low = [a for a in answers if a.grounded < cut]
        acc = lambda xs: sum(a.right for a in xs) / len(xs) if xs else float("nan")  # noqa: E731
        lines.append(
            f"  grounded >= {cut:.2f}: {len(high):4d} answers, {acc(high):.2f} right | "
            f"below: {len(low):4d} answers, {acc(low):.2f} right"
        )
    return "\n".join(lines)


def table(results: list[StrategyResult], found: dict[str, Retrieval]) -> str:
    head = (f"{'server':<7} {'strategy':<17} {'recall@5':>8} {'MRR':>5} {'accuracy':>8} "
            f"{'evidence':>8} {'prompt':>6} {'cached':>6} {'answer':>6} {'ttft_s':>6} "
            f"{'total_s':>7} {'length':>6} {'errors':>6} {'first_s':>7} {'first@1':>7} "
            f"{'first@5':>7} {'invented':>8}")  # fmt: skip
    rows = [head]
    for r in results:
        f = found[r.server]
        length = sum(a.finish == "length" for a in r.answers)
        rows.append(
            f"{r.server:<7} {r.name:<17} {f.recall:8.2f} {f.mrr:5.2f} {r.share('right'):8.2f} "
            f"{r.share('evidence_hit'):8.2f} {r.p50('prompt_tokens'):6.0f} "
            f"{r.p50('cached_tokens'):6.0f} {r.p50('answer_tokens'):6.0f} {r.p50('ttft'):6.2f} "
            f"{r.p50('total'):7.2f} {length:6d} {r.errors:6d} {r.p50('evidence_s'):7.2f} "
            f"{r.share('first_at_1'):7.2f} {r.share('first_at_5'):7.2f} "
            f"{r.share('invented'):8.2f}"
        )
    return "\n".join(rows)


def targets(results: list[StrategyResult], default: str) -> str:
    before = next(r for r in results if r.server == "before")
    after = next(r for r in results if r.server == "after" and r.name == default)

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("inf")

    acc = ratio(after.share("right"), before.share("right"))
    prompt = ratio(after.p50("prompt_tokens"), before.p50("prompt_tokens"))
    ttft = ratio(after.p50("ttft"), before.p50("ttft"))
    ev = after.share("evidence_hit")
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    return "\n".join([
        f"targets ({default} vs legacy, same run):",
        f"  answer accuracy     {after.share('right'):.2f} vs {before.share('right'):.2f} = {acc:.2f}x (target >= 2.5x: {ok(acc >= 2.5)})",
        f"  evidence hit        {ev:.2f} (target >= 0.70: {ok(ev >= 0.7)})",
        f"  prompt tokens p50   {prompt:.2f}x (target <= 0.35x: {ok(prompt <= 0.35)})",
        f"  first token p50     {ttft:.2f}x (target <= 0.40x: {ok(ttft <= 0.4)})",
    ])  # fmt: skip


def evidence_targets(results: list[StrategyResult], default: str) -> str:
    """Issue 22's targets: the evidence first, the extractive answer, shorter answers."""
    after = {r.name: r for r in results if r.server == "after"}
    lines = [f"targets (issue 22; {default} and extract, same run):"]
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    if default in after:
        r = after[default]
        cut = sum(a.finish == "length" for a in r.answers) / max(1, len(r.answers))
        lines += [
            f"  evidence event p50  {r.p50('evidence_s'):.2f} s (target <= 0.25 s: {ok(r.p50('evidence_s') <= 0.25)})",
            f"  first evidence @1   {r.share('first_at_1'):.2f} (target >= 0.60: {ok(r.share('first_at_1') >= 0.6)})",
            f"  first evidence @5   {r.share('first_at_5'):.2f} (target >= 0.90: {ok(r.share('first_at_5') >= 0.9)})",
            f"  answer accuracy     {r.share('right'):.2f} (target >= 0.40: {ok(r.share('right') >= 0.4)})",
            f"  cut at max_tokens   {cut:.2f} (target <= 0.15: {ok(cut <= 0.15)})",
            f"  answer tokens p50   {r.p50('answer_tokens'):.0f} (target <= 60: {ok(r.p50('answer_tokens') <= 60)})",
        ]  # fmt: skip
    if "extract" in after:
        x = after["extract"]
        lines += [
            f"  extract accuracy    {x.share('right'):.2f} (target >= 0.60: {ok(x.share('right') >= 0.6)})",
            f"  extract answer p50  {x.p50('total'):.2f} s (target <= 0.30 s: {ok(x.p50('total') <= 0.3)})",
        ]  # fmt: skip
    return "\n".join(lines)


def samples(results: list[StrategyResult], spec: dict[str, object], n: int = 4) -> str:
    questions: list[dict[str, str]] = spec["questions"]  # type: ignore[assignment]
    lines = ["sample answers (default strategy):"]
    after = next(r for r in results if r.server == "after")
    for q, a in list(zip(questions, after.answers, strict=False))[:n]:
        mark = "right" if a.right else "wrong"
        lines.append(f"  Q: {q['question']}\n     expected {q['fact']!r}; {mark}, grounded "
                     f"{a.grounded:.2f}: {a.text[:160]!r}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a live appliance (default: start both servers here)")
    parser.add_argument("--key", default=os.environ.get("APPLIANCE_API_KEY"))
    parser.add_argument("--strategies", help="comma-separated strategy names (default: all)")
    parser.add_argument("--limit", type=int, help="first N questions only (a quick look)")
    parser.add_argument("--after-only", action="store_true",
                        help="only the shipped server: no before/after targets (a quick look)")  # fmt: skip
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="pg",
                        help="the question set (default: pg, the PostgreSQL manual)")  # fmt: skip
    args = parser.parse_args()
    spec = load_questions(args.corpus)
    if args.limit:
        spec["questions"] = spec["questions"][: args.limit]  # type: ignore[index]
    names: list[str | None] = list(args.strategies.split(",")) if args.strategies else []
    t0 = time.monotonic()
    if args.url:
        found, took, results = measure(args.url, args.key, "live", spec, names or [None])
        print(f"ingested {len(spec['files'])} pages in {took:.0f} s")  # type: ignore[arg-type]
        print(table(results, {"live": found}))
        return
    log = Path(tempfile.gettempdir()) / "bench-answers.log"
    found_by: dict[str, Retrieval] = {}
    results = []
    took_before = 0.0
    with tempfile.TemporaryDirectory() as work:
        if not args.after_only:
            with appliance_server(Path(work) / "before", MODELS, log, **BEFORE) as server:
                found, took_before, res = measure(
                    server.url, server.key, "before", spec, ["legacy"]
                )
                found_by["before"] = found
                results += res
        strategies = list(names or AFTER_STRATEGIES)
        with appliance_server(Path(work) / "after", MODELS, log, **AFTER) as server:
            found, took_after, res = measure(server.url, server.key, "after", spec, strategies[:1])
            found_by["after"] = found
            results += res
        questions_: list[dict[str, str]] = spec["questions"]  # type: ignore[assignment]
        for name in strategies[1:]:  # each on a fresh server (same data): no strategy is
            # answered from the vectors and sentences another one's questions left cached
            print(f"# after: strategy {name or '(default)'}", file=sys.stderr, flush=True)
            with appliance_server(Path(work) / "after", MODELS, log, **AFTER) as server:
                results.append(asyncio.run(
                    run_strategy(server.url, server.key, "after", name, questions_,
                                 found_by["after"].sources)
                ))  # fmt: skip
    questions = len(spec["questions"])  # type: ignore[arg-type]
    print(f"{questions} questions over {len(spec['files'])} pages of {spec['package']}; "  # type: ignore[arg-type]
          f"ingested in {took_before:.0f} s (before) / {took_after:.0f} s (after); "
          "greedy answers, one user, idle server")  # fmt: skip
    print("before = whole pages with navigation, legacy prompt, 4096-cell slots, no prefix cache")
    print("after  = main content only, shipped defaults with 2048-cell slots (each row one "
          "strategy; the default is the first)\n")  # fmt: skip
    print(table(results, found_by))
    print()
    default = (names or AFTER_STRATEGIES)[0] or "brief"
    if not args.after_only:
        print(targets(results, default))
        print()
    print(evidence_targets(results, default))
    print()
    print(separation(results))
    print()
    print(samples(results, spec))
    print(f"\n(answers.py: {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
