"""The port answers while the models load: /healthz at once, `starting` elsewhere.

The build of the services is held back by a gate (a wrapper around the real
`build_services`, which then runs for real) so the `starting` state can be observed
without racing a 1 s model load; a failing build stands in for a broken start."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

import appliance.server.app as app_module
from appliance.server.app import create_app

pytestmark = pytest.mark.slow


def test_routes_say_starting_until_the_services_are_built(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real_build = app_module.build_services

    async def gated_build(settings: Any, plan: Any) -> Any:
        await asyncio.to_thread(gate.wait, 300)  # hang guard: the test opens the gate
        return await real_build(settings, plan)

    monkeypatch.setattr(app_module, "build_services", gated_build)
    app = create_app(settings_for(), load_in_background=True)
    with TestClient(app, timeout=120) as client:  # hang guard per request
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "starting"
        assert ready.headers["retry-after"] == "2"
        busy = client.get("/v1/documents", headers={"Authorization": "Bearer rag_x_y"})
        assert busy.status_code == 503 and busy.json()["code"] == "starting", busy.text
        assert busy.headers["retry-after"] == "2"
        gate.set()
        deadline = time.monotonic() + 300  # hang guard: the models load in ~2 s alone
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the services never came up"
            time.sleep(0.1)
        assert client.get("/v1/documents").status_code == 401  # now keys are checked


def test_a_failed_start_is_reported_and_ends_the_server(
    settings_for: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def broken_build(settings: Any, plan: Any) -> Any:
        raise RuntimeError("the data disk is read-only")

    monkeypatch.setattr(app_module, "build_services", broken_build)
    app = create_app(settings_for(), load_in_background=True)
    failures: list[str] = []
    app.state.on_start_failure = failures.append  # ApplianceServer exits 1 on this
    with TestClient(app, timeout=120) as client:  # hang guard per request
        deadline = time.monotonic() + 120  # hang guard: the start fails at once
        while not failures:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ready = client.get("/readyz").json()
        assert ready["status"] == "unavailable"
        assert ready["checks"]["models"] == "failed"  # the reason is logged, not shown
    assert failures == ["the data disk is read-only"]
