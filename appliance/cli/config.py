"""`appliance config check`: load and validate the config, show where things are."""

from __future__ import annotations

import argparse
from pathlib import Path

from appliance.cli import options


def register(commands: options.Commands) -> None:
    config = commands.add_parser("config", help="configuration tools")
    verbs = config.add_subparsers(dest="config_command", required=True)
    verbs.add_parser("check", help="validate the config").set_defaults(func=cmd_config_check)


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = options.settings(args)
    source = args.config or "configs/appliance.toml"
    print(f"{source}: OK")
    print(f"  server   {settings.server.host}:{settings.server.port}")
    print(f"  data_dir {Path(settings.storage.data_dir).expanduser().resolve()}")
    store = settings.storage.qdrant_url or "embedded (under data_dir)"
    print(f"  store    {store}")
    return 0
