"""`python -m tui [--url URL]`: the admin UI for a running appliance."""

from __future__ import annotations

import argparse

from tui.app import AdminApp
from tui.client import ApplianceClient


def main() -> None:
    parser = argparse.ArgumentParser(prog="appliance-tui")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="appliance API URL")
    args = parser.parse_args()
    client = ApplianceClient(args.url)
    try:
        AdminApp(client).run()
    finally:
        client.close()


if __name__ == "__main__":
    main()
