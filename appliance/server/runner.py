"""uvicorn with a graceful drain: SIGTERM lets running answers finish, then exits 0.

On the first SIGTERM/SIGINT the server stops accepting connections and starts the
query service's drain (`server.shutdown_grace_s`): answers streaming may finish
within the grace period; those still running then end with a `shutting_down` error
event (SSE) or, on a WebSocket, that event and close code 1001. Only then does
uvicorn's own shutdown run (lifespan: models, store and journal closed), and the
process exits 0 instead of re-raising the signal. A second signal forces the exit.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn
from litestar import Litestar

from appliance.query.draining import Draining

log = logging.getLogger(__name__)
FLUSH_S = 0.5  # for the final events to leave the sockets


class ApplianceServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Litestar, grace_s: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self.start_failure: str | None = None
        app.state.on_start_failure = self._start_failed

    def _start_failed(self, reason: str) -> None:
        """The services could not be built (they load after the port is bound): exit 1."""
        self.start_failure = reason
        self.should_exit = True

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is None or self._drain is not None or self.should_exit:
            self.should_exit = self.force_exit = True  # second signal: now
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is not None:
            return
        for server in self.servers:  # no new connections; open ones go on
            server.close()
        services = getattr(self._app.state, "services", None)
        if services is None:  # still starting: nothing to drain
            self.should_exit = True
            return
        log.info("shutting down: %d answers running, %.0f s grace", services.query.draining.active,
                 self._grace_s)  # fmt: skip
        services.query.draining.begin(self._grace_s)
        self._drain = asyncio.create_task(self._drain_then_exit(services.query.draining))

    async def _drain_then_exit(self, draining: Draining) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._grace_s + 5
        while draining.active and loop.time() < give_up:
            await asyncio.sleep(0.05)
        await asyncio.sleep(FLUSH_S)
        self.should_exit = True  # uvicorn's shutdown: close connections, then the lifespan
