"""Built-in evaluation: a question set against the live index, over the HTTP API.

Each line of the set is a JSON object: `question`, the expected `file` (the file name
as ingested), and optionally the expected `fact` (a phrase the right answer contains).
For every question: search (recall@k and the reciprocal rank of the expected file in
the top 10), then, unless turned off, ask (answer accuracy: the fact in the answer;
evidence hit: the fact in the returned evidence sentences) and the answer's timings.
The CLI (`appliance eval`) and the console's Eval screen both run this; it talks to the
appliance only through `ApplianceClient`.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import msgspec

from appliance.client.http import ApplianceClient

SEARCH_DEPTH = 10  # hits read per question: MRR counts ranks up to here


class EvalQuestion(msgspec.Struct, frozen=True):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    file: Annotated[str, msgspec.Meta(min_length=1)]
    fact: str | None = None


class EvalSetError(ValueError):
    """The question set cannot be read; the message names the file and line."""


def read_questions(path: Path) -> list[EvalQuestion]:
    """Questions from a JSONL file (blank lines and lines starting with # skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(f"{path}: cannot read the question set ({exc})") from exc
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            questions.append(msgspec.json.decode(line, type=EvalQuestion))
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise EvalSetError(f"{path}, line {number}: {exc}") from exc
    if not questions:
        raise EvalSetError(f"{path}: no questions")
    return questions


@dataclass
class QuestionResult:
    question: EvalQuestion
    rank: int | None  # of the expected file among the search hits, 1-based
    search_ms: float  # as the client saw it
    right: bool | None = None  # the fact in the answer (None: no fact, or not asked)
    evidence_hit: bool | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None
    answer: str = ""
    error: str | None = None
    strategy: str = ""  # what answered: a [prompts.*] name, or "extract"


@dataclass
class EvalReport:
    k: int
    results: list[QuestionResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def recall(self) -> float:
        found = sum(1 for r in self.results if r.rank is not None and r.rank <= self.k)
        return found / max(1, len(self.results))

    @property
    def mrr(self) -> float:
        return sum(1 / r.rank for r in self.results if r.rank) / max(1, len(self.results))

    def share(self, attr: str) -> float | None:
        judged = [getattr(r, attr) for r in self.results if getattr(r, attr) is not None]
        return sum(map(bool, judged)) / len(judged) if judged else None

    @staticmethod
    def _p50(values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if known else None

    def summary(self) -> dict[str, float | int | None]:
        rs = self.results
        return {
            "questions": len(rs),
            f"recall@{self.k}": round(self.recall, 3),
            "mrr": round(self.mrr, 3),
            "answer_accuracy": _round(self.share("right")),
            "evidence_hit": _round(self.share("evidence_hit")),
            "search_ms_p50": _round(self._p50([r.search_ms for r in rs]), 1),
            "first_token_ms_p50": _round(self._p50([r.first_token_ms for r in rs]), 1),
            "answer_ms_p50": _round(self._p50([r.total_ms for r in rs]), 1),
            "errors": sum(1 for r in rs if r.error),
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _contains(text: str, fact: str) -> bool:
    return " ".join(fact.lower().split()) in " ".join(text.lower().split())


async def evaluate(
    client: ApplianceClient,
    questions: Sequence[EvalQuestion],
    *,
    k: int = 5,
    answers: bool = True,
    retrieval: str | None = None,
    strategy: str | None = None,
    max_tokens: int | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> EvalReport:
    """Run every question in turn (one user: the timings are an idle server's)."""
    report = EvalReport(k)
    t0 = time.perf_counter()
    for q in questions:
        t_search = time.perf_counter()
        found = await client.search(q.question, max(k, SEARCH_DEPTH), retrieval=retrieval)
        search_ms = (time.perf_counter() - t_search) * 1000
        files = [h.file_name for h in found.hits]
        rank = files.index(q.file) + 1 if q.file in files else None
        result = QuestionResult(q, rank, search_ms)
        if answers:
            try:
                answer = await client.ask(
                    q.question, top_k=k, retrieval=retrieval, strategy=strategy,
                    max_tokens=max_tokens,
                )  # fmt: skip
            except Exception as exc:  # one failed answer does not end the run
                result.error = str(exc)
            else:
                result.answer = answer.answer
                result.strategy = answer.strategy
                result.first_token_ms = answer.timings.first_token_ms
                result.total_ms = answer.timings.total_ms
                if q.fact:
                    result.right = _contains(answer.answer, q.fact)
                    result.evidence_hit = any(_contains(e.text, q.fact) for e in answer.evidence)
        report.results.append(result)
        if on_result is not None:
            on_result(result)
    report.wall_s = time.perf_counter() - t0
    return report


def format_report(report: EvalReport) -> str:
    """The summary as aligned lines ("-" where a measure does not apply)."""
    lines = []
    for name, value in report.summary().items():
        shown = "-" if value is None else f"{value}"
        lines.append(f"{name:<20} {shown}")
    answered = Counter(r.strategy for r in report.results if r.strategy)
    if answered:  # under answer_mode "auto", which answers were measured
        shown = ", ".join(f"{name} {n}" for name, n in answered.most_common())
        lines.append(f"{'answered_by':<20} {shown}")
    lines.append(f"{'wall_s':<20} {report.wall_s:.1f}")
    return "\n".join(lines)
