"""`appliance keys list|create|revoke`: API keys, managed through the API (admin key).
A key reads the collections it names (`--collections hr,finance`), or all (`*`)."""

from __future__ import annotations

import argparse
import sys

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.client.display import when


def register(commands: options.Commands) -> None:
    keys, verbs = options.verb_group(commands, "keys", "manage API keys (admin)")
    verbs.add_parser("list", help="list the keys and what they read (never their secrets)")
    create = verbs.add_parser("create", help="make a key; its secret is shown once")
    create.add_argument("--role", choices=["admin", "ingest", "query"], required=True)
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.add_argument(
        "--collections", type=options.key_collections, default=None, metavar="NAMES",
        help="the collections it may read, comma-separated (default: *, all of them)",
    )  # fmt: skip
    revoke = verbs.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    options.client_command(keys, keys_command)


async def keys_command(client: ApplianceClient, args: argparse.Namespace) -> int:
    doing = {"list": "cannot list keys", "create": "cannot create the key"}.get(
        args.keys_command, f"cannot revoke {getattr(args, 'key_id', '')}"
    )
    try:
        await _keys(client, args)
    except ApiError as exc:
        print(f"{doing}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _keys(client: ApplianceClient, args: argparse.Namespace) -> None:
    if args.keys_command == "list":
        print(
            f"{'id':<8}  {'role':<6}  {'created':<16}  {'revoked':<16}  {'collections':<16}  name"
        )
        for k in await client.keys():
            print(
                f"{k.id:<8}  {k.role:<6}  {when(k.created_at):<16}  "
                f"{when(k.revoked_at):<16}  {','.join(k.collections):<16}  {k.name}"
            )
    elif args.keys_command == "create":
        made = await client.create_key(args.name, args.role, args.collections)
        print(
            f"made {made.role} key {made.id} ({made.name}), reading {','.join(made.collections)}."
        )
        print("Copy it now, it is not shown again (only its hash is stored):\n")
        print(f"    {made.key}\n")
    else:
        await client.revoke_key(args.key_id)
        print(f"revoked key {args.key_id}")
