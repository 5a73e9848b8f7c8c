"""`appliance tui` or `python -m tui [--url URL] [--key KEY] [--config PATH]`: the admin
console for a running appliance. On the server itself the defaults just work: the URL
from the config, the key from $APPLIANCE_API_KEY or <data_dir>/secrets/admin.key."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from appliance.client import ApplianceClient
from appliance.config import load_settings
from appliance.config.local import api_key, server_url
from tui.app import AdminApp


def run_console(url: str, key: str | None) -> int:
    client = ApplianceClient(url, key, timeout=30)
    try:
        AdminApp(client).run()
    finally:
        asyncio.run(client.aclose())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="appliance-tui", description=__doc__)
    parser.add_argument("--url", help="appliance API URL (default: from the config)")
    parser.add_argument(
        "--key", help="API key (default: $APPLIANCE_API_KEY, else <data_dir>/secrets/admin.key)"
    )
    parser.add_argument("--config", help="config file (default: configs/appliance.toml)")
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    return run_console(server_url(settings, args.url), api_key(settings, args.key))


if __name__ == "__main__":
    raise SystemExit(main())
