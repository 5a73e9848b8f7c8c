"""The evidence benchmark: how often the first evidence sentence (hit@1) or one of the five
first (hit@5) holds the fact, per way of ranking the sentences, on both question sets.

One server with the shipped defaults holds the corpus (ingested over HTTP). For every
question, the bench takes the hits of `/v1/search` (the shipped retrieval) and the evidence
event of an extractive answer (`"strategy": "extract"`: what the product sends first, with
its time). Then it ranks the sentences of the same hits offline, embedded through the
server's own `/v1/embeddings` (the same model), with each candidate ranking:

* `shipped`: the evidence event itself;
* `cos/3`, `cos/5`: every sentence of the top 3 or 5 passages by cosine to the question;
* `cand12/3`: the 12 sentences sharing most words with the question, then cosine (the
  ranking before this bench);
* `bm25/5`: BM25 of the sentences (their own document frequencies);
* `fused/5`: cosine and BM25 fused by reciprocal rank, plus the passage's own rank;
* `+next`: a sentence with its next one when it is short or ends in a colon.

A ranking is only as good as the passages under it: `ceiling/3`, `ceiling/5` say how often any
sentence of those passages holds the fact.

    python bench/evidence.py [--corpus pg|apache|both] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.query.sentences import content_words, split_sentences  # noqa: E402
from bench.answers import CORPORA, ingest, load_questions  # noqa: E402
from bench.harness import appliance_server  # noqa: E402

MODELS = REPO / ".cache" / "models"
TOP_K = 5


class Unit:
    """One evidence candidate: a span of a hit's text."""

    def __init__(self, rank: int, index: int, text: str) -> None:
        self.rank = rank  # the hit's rank
        self.index = index  # the sentence's position in its hit
        self.text = text
        self.words = content_words(text)


def units_of(hits: Sequence[dict[str, Any]], passages: int, with_next: bool) -> list[Unit]:
    out: list[Unit] = []
    for rank, hit in enumerate(hits[:passages]):
        text = str(hit["text"])
        spans = split_sentences(text)
        for i, s in enumerate(spans):
            end = s.end
            piece = text[s.start : s.end]
            if with_next and i + 1 < len(spans) and (piece.endswith(":") or len(piece) < 60):
                end = spans[i + 1].end
            out.append(Unit(rank, i, text[s.start : end]))
    return out


def holds(fact: str, text: str) -> bool:
    return fact.lower() in " ".join(text.lower().split())


def bm25(units: Sequence[Unit], query: set[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    n = len(units)
    df = Counter(w for u in units for w in u.words)
    avg = sum(len(u.words) for u in units) / max(1, n)
    scores = []
    for u in units:
        s = 0.0
        for w in query & u.words:
            idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
            s += idf * (k1 + 1) / (1 + k1 * (1 - b + b * len(u.words) / max(avg, 1)))
        scores.append(s)
    return scores


def rrf(*rankings: Sequence[float], k: float = 10.0) -> list[float]:
    """Reciprocal-rank fusion of score lists (higher is better in each)."""
    fused = [0.0] * len(rankings[0])
    for scores in rankings:
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        for pos, i in enumerate(order):
            fused[i] += 1 / (k + pos + 1)
    return fused


class Embeddings:
    def __init__(self, client: httpx.Client) -> None:
        self._client = client
        self._known: dict[str, np.ndarray] = {}

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        for i in range(0, len(missing), 64):
            part = missing[i : i + 64]
            resp = self._client.post("/v1/embeddings", json={"model": "x", "input": part})
            resp.raise_for_status()
            for t, row in zip(part, resp.json()["data"], strict=True):
                self._known[t] = np.asarray(row["embedding"], dtype=np.float32)
        return np.stack([self._known[t] for t in texts]) if texts else np.zeros((0, 1))


Ranker = Callable[[str, Sequence[dict[str, Any]], Embeddings], list[str]]


def by_cosine(passages: int, with_next: bool = False, keep: int = 0) -> Ranker:
    def rank(question: str, hits: Sequence[dict[str, Any]], embed: Embeddings) -> list[str]:
        units = by_overlap(units_of(hits, passages, with_next), question, keep)
        if not units:
            return []
        cos = embed([u.text for u in units]) @ embed([question])[0]
        return [units[i].text for i in np.argsort(-cos, kind="stable")]

    return rank


def by_bm25(passages: int) -> Ranker:
    def rank(question: str, hits: Sequence[dict[str, Any]], embed: Embeddings) -> list[str]:
        units = units_of(hits, passages, False)
        scores = bm25(units, content_words(question))
        return [units[i].text for i in sorted(range(len(units)), key=lambda i: -scores[i])]

    return rank


def by_overlap(units: list[Unit], question: str, keep: int) -> list[Unit]:
    """The `keep` units sharing most words with the question, in their order."""
    if not keep or len(units) <= keep:
        return units
    q = content_words(question)
    order = sorted(range(len(units)), key=lambda i: -len(q & units[i].words))
    return [units[i] for i in sorted(order[:keep])]


def fused(passages: int, with_next: bool = False, prior: bool = True, keep: int = 0) -> Ranker:
    def rank(question: str, hits: Sequence[dict[str, Any]], embed: Embeddings) -> list[str]:
        units = by_overlap(units_of(hits, passages, with_next), question, keep)
        if not units:
            return []
        cos = [float(x) for x in embed([u.text for u in units]) @ embed([question])[0]]
        lexical = bm25(units, content_words(question))
        lists = [cos, lexical] + ([[-float(u.rank) for u in units]] if prior else [])
        scores = rrf(*lists)
        return [units[i].text for i in sorted(range(len(units)), key=lambda i: -scores[i])]

    return rank


def ceiling(passages: int) -> Ranker:
    def rank(question: str, hits: Sequence[dict[str, Any]], embed: Embeddings) -> list[str]:
        return [" ".join(str(h["text"]) for h in hits[:passages])]

    return rank


RANKERS: dict[str, Ranker] = {
    "ceiling/3": ceiling(3),
    "ceiling/5": ceiling(5),
    "cand12/3": by_cosine(3, keep=12),
    "cos/3": by_cosine(3),
    "cos/5": by_cosine(5),
    "bm25/5": by_bm25(5),
    "fused/3": fused(3),
    "fused/5": fused(5),
    "fused/5 no prior": fused(5, prior=False),
    "fused/5 +next": fused(5, with_next=True),
    "fused/5 cand24": fused(5, keep=24),
    "fused/5 cand12": fused(5, keep=12),
    "fused/3 cand12": fused(3, keep=12),
    "bm25/3": by_bm25(3),
    "cos/5 +next": by_cosine(5, with_next=True),
}


def measure(corpus: str, limit: int | None, dump: Path | None = None) -> list[str]:
    spec = load_questions(corpus)
    questions: list[dict[str, str]] = spec["questions"]  # type: ignore[assignment]
    questions = questions[:limit] if limit else questions
    hits_at: dict[str, list[tuple[bool, bool]]] = {name: [] for name in ["shipped", *RANKERS]}
    first_s: list[float] = []
    dumped: list[dict[str, Any]] = []
    log = Path(tempfile.gettempdir()) / "bench-evidence.log"
    with (
        tempfile.TemporaryDirectory() as work,
        appliance_server(Path(work) / "data", MODELS, log) as srv,
        httpx.Client(base_url=srv.url, timeout=600, headers=srv.headers) as client,
    ):
        ingest(client, Path(str(spec["root"])), spec["files"])  # type: ignore[arg-type]
        embed = Embeddings(client)
        body = {"query": questions[0]["question"], "strategy": "extract"}
        client.post("/v1/ask", json=body).raise_for_status()  # warm
        for q in questions:
            fact = q["fact"]
            t0 = time.perf_counter()
            resp = client.post("/v1/ask", json={"query": q["question"], "strategy": "extract"})
            first_s.append(time.perf_counter() - t0)
            resp.raise_for_status()
            shipped = [str(e["text"]) for e in resp.json()["first_evidence"]]
            found = [holds(fact, t) for t in shipped]
            hits_at["shipped"].append((any(found[:1]), any(found[:5])))
            search = {"query": q["question"], "top_k": TOP_K}
            hits = client.post("/v1/search", json=search).json()["hits"]
            dumped.append({**q, "hits": hits, "shipped": shipped})
            for name, ranker in RANKERS.items():
                ranked = [holds(fact, t) for t in ranker(q["question"], hits, embed)]
                hits_at[name].append((any(ranked[:1]), any(ranked[:5])))
        if dump is not None:  # the hits and every sentence's embedding, to try rankings offline
            texts = {u.text for d in dumped for w in (False, True)
                     for u in units_of(d["hits"], TOP_K, w)}  # fmt: skip
            texts |= {str(q["question"]) for q in questions}
            order = sorted(texts)
            vectors = dict(zip(order, embed(order).round(5).tolist(), strict=True))
            dump.write_text(json.dumps({"questions": dumped, "vectors": vectors}))
    n = len(questions)
    lines = [
        f"{corpus}: {n} questions, {len(spec['files'])} pages of {spec['package']} "  # type: ignore[arg-type]
        f"(extract answer p50 {np.median(first_s) * 1000:.0f} ms over HTTP)",
        f"  {'ranking':<18} {'hit@1':>6} {'hit@5':>6}",
    ]
    for name, pairs in hits_at.items():
        at1 = sum(a for a, _ in pairs) / n
        at5 = sum(b for _, b in pairs) / n
        lines.append(f"  {name:<18} {at1:6.2f} {at5:6.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=[*sorted(CORPORA), "both"], default="both")
    parser.add_argument("--limit", type=int, help="first N questions only (a quick look)")
    parser.add_argument("--dump", type=Path, help="write each corpus's hits and sentence "
                        "embeddings to DUMP.<corpus>.json (to try rankings offline)")  # fmt: skip
    args = parser.parse_args()
    corpora = sorted(CORPORA) if args.corpus == "both" else [args.corpus]
    t0 = time.monotonic()
    for corpus in corpora:
        dump = args.dump.with_suffix(f".{corpus}.json") if args.dump else None
        print("\n".join(measure(corpus, args.limit, dump)), flush=True)
    print(f"(evidence.py: {time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
