"""The readiness check of the running services: a code per part for /readyz.

Codes only (ok, not_running, unreachable, timeout, error): /readyz needs no key, so
the reasons behind them (exception texts, paths, the generation server's address) go
to the log, which an admin reads. The store and the journal are pinged; the embedding
model is checked by its thread; the generator says itself (an external server is asked
GET <url>/models, cached 5 s).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)

PING_TIMEOUT_S = 2.0


class Running(Protocol):
    @property
    def alive(self) -> bool: ...


class Answering(Protocol):
    async def readiness(self) -> str: ...


class Pinged(Protocol):
    async def ping(self) -> None: ...


class Checked(Protocol):
    """What the check reads of the services."""

    @property
    def embedder(self) -> Running: ...
    @property
    def generator(self) -> Answering: ...
    @property
    def store(self) -> Pinged: ...
    @property
    def journal(self) -> Pinged: ...


async def part_checks(parts: Checked) -> dict[str, str]:
    """Each part's code, in /readyz's order."""
    checks = {
        "embedding_model": "ok" if parts.embedder.alive else "not_running",
        "chat_model": await parts.generator.readiness(),
    }
    for name, part in (("vector_store", parts.store), ("journal", parts.journal)):
        checks[name] = await ping(name, part)
    return checks


async def ping(name: str, part: Pinged) -> str:
    try:
        await asyncio.wait_for(part.ping(), PING_TIMEOUT_S)
    except TimeoutError:
        log.warning("readiness: the %s gave no answer within %ss", name, PING_TIMEOUT_S)
        return "timeout"
    except Exception as exc:
        log.warning("readiness: the %s failed its ping: %s", name, exc)
        return "error"
    return "ok"
