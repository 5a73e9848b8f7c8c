"""`appliance ask QUESTION`: the sentences of the documents that answer it first, then the
answer streamed as it comes, then its evidence, sources and grounded score, over the
shared client (`appliance.client`), like the admin console."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.client.display import where
from appliance.domain.types import DoneEvent, ErrorEvent, Evidence, EvidenceEvent, TokenEvent


def register(commands: options.Commands) -> None:
    p = commands.add_parser("ask", help="ask a question")
    options.add_client_options(p)
    p.add_argument("question")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--extract", action="store_true",
        help="answer with the documents' sentences that best answer it, verbatim (no chat "
        "model); without --extract or --generate, the server's generation.answer_mode decides",
    )  # fmt: skip
    mode.add_argument(
        "--generate", action="store_true",
        help="the chat model writes the answer (the default prompt), whatever answer_mode says",
    )  # fmt: skip
    p.add_argument(
        "--collection", dest="collections", action="append", type=options.collection_name,
        metavar="NAME", help="only this collection's documents (repeatable; never more than "
        "the key may read)",
    )  # fmt: skip
    options.client_command(p, ask, timeout=None)


def evidence_lines(evidence: list[Evidence]) -> list[str]:
    return [f'  [{e.citation}] {where(e)}: "{" ".join(e.text.split())}"' for e in evidence]


def print_first_evidence(event: EvidenceEvent) -> None:
    """The sentences that answer the question, before the answer's words."""
    if event.evidence:
        print("From the documents:")
        print("\n".join(evidence_lines(event.evidence)))
        print()


def print_evidence(done: DoneEvent) -> None:
    """The evidence sentences weighed against the answer, with file and page, then the
    citations and the grounded score."""
    if done.evidence:
        print("\nEvidence:")
        print("\n".join(evidence_lines(done.evidence)))
    print("\nSources:")
    for c in done.citations:
        print(f"  [{c.index}] {where(c)} (score {c.score:.3f})")
    note = "" if done.grounded >= 0.5 else " (low: check the evidence before relying on the answer)"
    print(f"\nGrounded: {done.grounded:.2f}{note}")
    for sentence in done.unsupported:
        print(f'  not supported by the documents: "{sentence}"')


async def ask(client: ApplianceClient, args: argparse.Namespace) -> int:
    """Ask `args.question` (narrowed to `args.collections` when given); the exit status."""
    fields = {
        "top_k": args.top_k, "max_tokens": args.max_tokens,
        "strategy": "extract" if args.extract else "generate" if args.generate else None,
        "filters": {"collections": args.collections} if args.collections else None,
    }  # fmt: skip
    try:
        return await _ask(client, args.question, fields)
    except ApiError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1


async def _ask(client: ApplianceClient, question: str, fields: dict[str, Any]) -> int:
    async for event in client.ask_stream(question, **fields):
        if isinstance(event, EvidenceEvent):
            print_first_evidence(event)
        elif isinstance(event, TokenEvent):
            print(event.text, end="", flush=True)
        elif isinstance(event, DoneEvent):
            print()
            print_evidence(event)
            t = event.timings
            speed = (
                "quoted, no model" if event.strategy == "extract" else f"{t.tokens_per_s:.1f} tok/s"
            )
            print(f"  first token {t.first_token_ms:.0f} ms, {speed}", file=sys.stderr)
        elif isinstance(event, ErrorEvent):
            print(f"\nerror: {event.message}", file=sys.stderr)
            return 1
    return 0
