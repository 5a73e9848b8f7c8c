"""What the commands share: the settings (--config), and for those that talk to a
running server, its URL (--url) and API key (--key), a client of it, and the names of
collections as the server accepts them."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

from appliance.client import ApplianceClient, names
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


def verb_group(
    commands: Commands, name: str, help: str
) -> tuple[argparse.ArgumentParser, Commands]:
    """A command group talking to the server (`appliance NAME [--url --key] VERB`) and
    its verbs, chosen in `args.<name>_command`."""
    group = commands.add_parser(name, help=help)
    add_client_options(group)
    return group, group.add_subparsers(dest=f"{name}_command", required=True)


def add_collection(parser: argparse.ArgumentParser, help: str, default: str | None) -> None:
    """`--collection NAME`: where documents go."""
    parser.add_argument(
        "--collection", type=collection_name, default=default, metavar="NAME", help=help
    )


Request: TypeAlias = Callable[[ApplianceClient, argparse.Namespace], Awaitable[int]]


def client_command(
    parser: argparse.ArgumentParser, request: Request, timeout: float | None = 30.0
) -> None:
    """Make `parser`'s command run `request(client, args)` with a client of the server
    `args` names (--config, --url, --key); its exit status is the command's. A test
    awaits `args.request` with a client of its own."""

    def run(args: argparse.Namespace) -> int:
        found = settings(args)
        url, key = server_url(args, found), api_key(args, found)

        async def requests() -> int:
            async with ApplianceClient(url, key, timeout=timeout) as client:
                return await request(client, args)

        return asyncio.run(requests())

    parser.set_defaults(func=run, request=request)


def collection_name(text: str) -> str:
    """An argparse `type`: a collection's name as the server accepts it."""
    try:
        return names.collection_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def key_collections(text: str) -> list[str]:
    """An argparse `type`: `hr,finance` or `*` as the list of collections a key reads."""
    try:
        return names.key_collections(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
