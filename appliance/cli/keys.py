"""`appliance keys list|create|revoke`: API keys, managed through the API (admin key)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from appliance.client import ApiError, ApplianceClient


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def keys_command(url: str, key: str | None, args: argparse.Namespace) -> int:
    doing = {"list": "cannot list keys", "create": "cannot create the key"}.get(
        args.keys_command, f"cannot revoke {getattr(args, 'key_id', '')}"
    )
    try:
        asyncio.run(_keys(url, key, args))
    except ApiError as exc:
        print(f"{doing}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _keys(url: str, key: str | None, args: argparse.Namespace) -> None:
    async with ApplianceClient(url, key) as client:
        if args.keys_command == "list":
            print(f"{'id':<8}  {'role':<6}  {'created':<16}  {'revoked':<16}  name")
            for k in await client.keys():
                print(
                    f"{k.id:<8}  {k.role:<6}  {_when(k.created_at):<16}  "
                    f"{_when(k.revoked_at):<16}  {k.name}"
                )
        elif args.keys_command == "create":
            made = await client.create_key(args.name, args.role)
            print(f"made {made.role} key {made.id} ({made.name}). Copy it now, it is")
            print("not shown again (only its hash is stored):\n")
            print(f"    {made.key}\n")
        else:
            await client.revoke_key(args.key_id)
            print(f"revoked key {args.key_id}")
