"""`appliance eval QA.jsonl`: a question set against the live index, through the API."""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import asdict
from pathlib import Path

import msgspec

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.client.evaluation import (
    EvalSetError,
    QuestionResult,
    evaluate,
    format_report,
    read_questions,
)


def register(commands: options.Commands) -> None:
    p = commands.add_parser(
        "eval",
        help="run a question set (JSONL: question, file, optional fact) against the index",
        description="Prints recall@k and MRR of the expected file, answer accuracy and "
        "evidence hit (when a fact is given) and timings. Example set: "
        "bench/data/pg_questions.jsonl (PostgreSQL 15 docs, package postgresql-doc-15).",
    )
    p.add_argument("questions", type=Path, help="the question set (.jsonl)")
    p.add_argument("--k", type=int, default=5, help="recall@k and top_k of the answers")
    p.add_argument("--no-answers", dest="answers", action="store_false",
                   help="search only: recall and MRR, no generation")  # fmt: skip
    p.add_argument("--retrieval", choices=["dense", "hybrid"], default=None)
    p.add_argument(
        "--strategy",
        default=None,
        help="a prompt strategy ([prompts.*]), or extract or generate (default: the "
        "server's answer_mode)",
    )
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write every result here")
    p.add_argument("--quiet", action="store_true", help="only the summary")
    options.add_client_options(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    return eval_command(options.server_url(args, settings), options.api_key(args, settings), args)


def _line(r: QuestionResult) -> str:
    rank = f"#{r.rank}" if r.rank else "miss"
    verdict = {True: "right", False: "wrong", None: "-"}[r.right]
    if r.error:
        verdict = f"error: {r.error[:60]}"
    return f"{rank:>5} {verdict:<6} {r.question.question[:70]}"


def eval_command(url: str, key: str | None, args: argparse.Namespace) -> int:
    if not 1 <= args.k <= 50:
        print("eval: --k must be between 1 and 50", file=sys.stderr)
        return 2
    try:
        questions = read_questions(args.questions)
    except EvalSetError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2

    def show(result: QuestionResult) -> None:
        if not args.quiet:
            print(_line(result), flush=True)

    async def run() -> int:
        async with ApplianceClient(url, key, timeout=600) as client:
            report = await evaluate(
                client, questions, k=args.k, answers=args.answers, retrieval=args.retrieval,
                strategy=args.strategy, max_tokens=args.max_tokens, on_result=show,
            )  # fmt: skip
        print(f"\n{args.questions.name}: {len(questions)} questions against {url}")
        print(format_report(report))
        if args.json:
            rows = [asdict(r) for r in report.results]  # the question as a Struct
            body = {"summary": report.summary(), "results": rows}
            args.json.write_bytes(msgspec.json.format(msgspec.json.encode(body), indent=1))
        return 0

    try:
        return asyncio.run(run())
    except ApiError as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 1
