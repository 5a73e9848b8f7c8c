"""The console's tests: a real appliance in process (its real lifespan: real models, real
store), reached by the real client through `httpx.ASGITransport`, as datasette does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot

from appliance.client import ApplianceClient
from appliance.config import load_settings
from appliance.server.app import create_app
from tests.conftest import REPO, server_env

# A hang guard, not a timing assert: a broken screen fails naming what it never showed
# instead of hanging. What it waits for (an ingest, an answer, an evaluation) takes seconds
# alone; 300 s leaves room for a CPU hog beside the suite (120 s was once too little).
WAIT_S = 300.0


@dataclass(frozen=True)
class Live:
    """A running in-process appliance: how to reach it, and its admin key."""

    transport: httpx.AsyncBaseTransport
    key: str
    url: str = "http://appliance.test"


@pytest.fixture
async def live(models_dir: Path, tmp_path: Path) -> AsyncIterator[Live]:
    env = server_env(tmp_path / "data", models_dir, APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE="0")
    app = create_app(load_settings(REPO / "configs" / "appliance.toml", env))
    started, stop = asyncio.Event(), asyncio.Event()

    async def serve() -> None:  # the lifespan enters and exits in this one task (anyio)
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(serve())
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when="FIRST_COMPLETED")
    if task.done():
        task.result()  # the startup failed: raise its error
    key = (tmp_path / "data" / "secrets" / "admin.key").read_text().strip()
    try:
        yield Live(httpx.ASGITransport(app=app), key)
    finally:
        stop.set()
        await task


@pytest.fixture
async def live_client(live: Live) -> AsyncIterator[ApplianceClient]:
    """The admin's client of the in-process appliance."""
    async with ApplianceClient(live.url, live.key, transport=live.transport) as client:
        yield client


async def until(pilot: Pilot[None], ready: Callable[[], bool], what: str) -> None:
    """Let the app run until `ready()`; fail naming `what` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"the console never showed {what}")
        await pilot.pause(0.05)


async def wait_job(client: ApplianceClient, job_id: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while (await client.job(job_id)).state not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the job never finished"
        await asyncio.sleep(0.1)
