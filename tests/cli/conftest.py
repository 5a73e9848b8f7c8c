"""The command line's tests: its commands parsed by the real parser and their requests
awaited with a client of a real appliance in process (the console tests' fixtures)."""

from __future__ import annotations

from tests.tui.conftest import live, live_client

__all__ = ["live", "live_client"]
