"""What the commands share: the settings (--config), and for those that talk to a
running server, its URL (--url) and API key (--key)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TypeAlias

from appliance.config import Settings, load_settings, local

if TYPE_CHECKING:
    # what `add_subparsers` returns: each command group's `register` adds to it
    Commands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def server_url(args: argparse.Namespace, settings: Settings) -> str:
    return local.server_url(settings, getattr(args, "url", None))


def api_key(args: argparse.Namespace, settings: Settings) -> str | None:
    """--key, else $APPLIANCE_API_KEY, else the bootstrap admin key on this server."""
    return local.api_key(settings, getattr(args, "key", None))


def add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="server URL (default: from the config)")
    parser.add_argument(
        "--key",
        help="API key (default: $APPLIANCE_API_KEY, else <data_dir>/secrets/admin.key)",
    )
