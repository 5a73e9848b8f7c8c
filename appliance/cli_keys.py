"""`appliance keys list|create|revoke`: API keys, managed through the API (admin key)."""

from __future__ import annotations

import argparse
import sys
import time

from appliance.cli_client import api_client, refused


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def keys_command(url: str, key: str | None, args: argparse.Namespace) -> int:
    with api_client(url, key, 30) as client:
        if args.keys_command == "list":
            resp = client.get("/v1/keys")
            if resp.status_code != 200:
                print(f"cannot list keys: {refused(resp)}", file=sys.stderr)
                return 1
            print(f"{'id':<8}  {'role':<6}  {'created':<16}  {'revoked':<16}  name")
            for k in resp.json()["keys"]:
                print(
                    f"{k['id']:<8}  {k['role']:<6}  {_when(k['created_at']):<16}  "
                    f"{_when(k['revoked_at']):<16}  {k['name']}"
                )
            return 0
        if args.keys_command == "create":
            resp = client.post("/v1/keys", json={"name": args.name, "role": args.role})
            if resp.status_code != 201:
                print(f"cannot create the key: {refused(resp)}", file=sys.stderr)
                return 1
            made = resp.json()
            print(f"made {made['role']} key {made['id']} ({made['name']}). Copy it now, it is")
            print("not shown again (only its hash is stored):\n")
            print(f"    {made['key']}\n")
            return 0
        resp = client.delete(f"/v1/keys/{args.key_id}")
        if resp.status_code != 200:
            print(f"cannot revoke {args.key_id}: {refused(resp)}", file=sys.stderr)
            return 1
        print(f"revoked key {args.key_id}")
        return 0
