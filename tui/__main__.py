"""`python -m tui [--url URL] [--key KEY]`: the admin UI for a running appliance."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from appliance.config import load_settings
from tui.app import AdminApp
from tui.client import ApplianceClient


def default_key(config: str | None) -> str | None:
    """$APPLIANCE_API_KEY, else the bootstrap admin key of this server's data dir."""
    if os.environ.get("APPLIANCE_API_KEY"):
        return os.environ["APPLIANCE_API_KEY"]
    data_dir = Path(load_settings(config).storage.data_dir).expanduser()
    try:
        return (data_dir / "secrets" / "admin.key").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="appliance-tui")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="appliance API URL")
    parser.add_argument("--key", help="API key (default: $APPLIANCE_API_KEY or admin.key)")
    parser.add_argument("--config", help="config file (for the data dir of admin.key)")
    args = parser.parse_args()
    client = ApplianceClient(args.url, args.key or default_key(args.config))
    try:
        AdminApp(client).run()
    finally:
        client.close()


if __name__ == "__main__":
    main()
