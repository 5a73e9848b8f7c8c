"""`appliance tui`: the admin console (Textual), for a running server."""

from __future__ import annotations

import argparse

from appliance.cli import options


def register(commands: options.Commands) -> None:
    console = commands.add_parser("tui", help="the admin console (Textual) for a running server")
    options.add_client_options(console)
    console.set_defaults(func=cmd_tui)


def cmd_tui(args: argparse.Namespace) -> int:
    from tui.__main__ import run_console  # the console is HTTP-only: nothing loads here

    settings = options.settings(args)
    return run_console(options.server_url(args, settings), options.api_key(args, settings))
