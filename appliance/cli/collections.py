"""`appliance collections list|create|rename|delete`: the named sets of documents a key
may be allowed to read, through the API (an admin key changes them)."""

from __future__ import annotations

import argparse
import sys

from appliance.cli import options
from appliance.client import ApiError, ApplianceClient
from appliance.client.display import when

NOT_EMPTY = "collection_not_empty"  # the server's code for a delete that needs --force


def register(commands: options.Commands) -> None:
    group, verbs = options.verb_group(
        commands, "collections", "collections: who may read which documents"
    )
    verbs.add_parser("list", help="the collections this key may read, with their documents")
    create = verbs.add_parser("create", help="make an empty collection (admin)")
    create.add_argument("name", type=options.collection_name)
    rename = verbs.add_parser("rename", help="rename a collection; keys keep reading it (admin)")
    rename.add_argument("name", type=options.collection_name)
    rename.add_argument("new", type=options.collection_name, help="its new name")
    delete = verbs.add_parser("delete", help="delete a collection (admin)")
    delete.add_argument("name", type=options.collection_name)
    delete.add_argument(
        "--force", action="store_true", help="also when it holds documents: delete them too"
    )
    options.client_command(group, collections_command)


async def collections_command(client: ApplianceClient, args: argparse.Namespace) -> int:
    verb = args.collections_command
    try:
        await _run(client, args)
    except ApiError as exc:
        print(f"collections {verb}: {exc}", file=sys.stderr)
        if exc.code == NOT_EMPTY:
            print(
                f"  `appliance collections delete {args.name} --force` deletes it with its "
                "documents",
                file=sys.stderr,
            )
        return 1
    return 0


async def _run(client: ApplianceClient, args: argparse.Namespace) -> None:
    verb = args.collections_command
    if verb == "list":
        found = await client.collections()
        print(f"{'name':<24}  {'id':<12}  {'documents':>9}  created")
        for c in found:
            print(f"{c.name:<24}  {c.id:<12}  {c.documents:>9}  {when(c.created_at)}")
        if not found:
            print("no collections this key may read")
    elif verb == "create":
        made = await client.create_collection(args.name)
        print(f"made collection {made.name} (id {made.id})")
    elif verb == "rename":
        renamed = await client.rename_collection(args.name, args.new)
        print(f"renamed {args.name} to {renamed.name}; keys that read it still do")
    else:
        deleted = await client.delete_collection(args.name, force=args.force)
        print(f"deleted collection {deleted.name} and its {deleted.documents_deleted} documents")
