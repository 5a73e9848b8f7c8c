"""The `appliance` command: serve | tui | models | ingest | ask | keys | collections |
sources | backup | restore | doctor | config, and --version.

Commands that touch data talk to the running server over HTTP, like any client
(`appliance.client`): the embedded store is locked to the server process. Each command
group is a module whose `register` adds its parser and handler; only `serve` imports
the server, when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from appliance.cli import (
    ask,
    backup,
    collections,
    config,
    console,
    doctor,
    evaluate,
    ingest,
    keys,
    models,
    serve,
    sources,
)
from appliance.config import ConfigError

EXIT_CONFIG = 2
# in the order `appliance --help` lists them
GROUPS = (
    serve.register, models.register, doctor.register, config.register, console.register,
    keys.register, collections.register, sources.register, evaluate.register, backup.register,
    ingest.register, ask.register,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance", description="On-prem RAG appliance: documents in, cited answers out."
    )
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: configs/appliance.toml)"
    )
    parser.add_argument(
        "--version", action="store_true", help="print the version, lock hash and build, and exit"
    )
    commands = parser.add_subparsers(dest="command")
    for register in GROUPS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from appliance.cli.build_info import read_build_info

        print(read_build_info().line())
        return 0
    if args.command is None:
        parser.error("a command is required")
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"appliance: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    return result
