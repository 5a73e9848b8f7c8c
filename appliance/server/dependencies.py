"""Dependency providers: a route names the service it uses and receives that one, never
the container and never a global. Each provider answers 503 `starting` while the
models load (`running_services`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide

from appliance.domain.errors import ApplianceError
from appliance.ingest.sources import SourceService
from appliance.security.audit import CallerAudit
from appliance.security.keys import KeyRecord
from appliance.server.health_checks import HealthChecks
from appliance.server.reader import caller_reader
from appliance.server.services import Services
from appliance.server.startup import running_services
from appliance.server.status_report import StatusReport


class SourcesOff(ApplianceError):
    status, code = 503, "starting"


def services_of(state: State) -> Services:
    return running_services(state)  # 503 `starting` while the models load


def running_sources(services: Services) -> SourceService:
    if services.sources is None:
        raise SourcesOff("synced folders are not started yet")
    return services.sources


def provide(read: Callable[[Services], object]) -> Provide:
    """A provider answering `read` of the running services."""

    def provider(state: State) -> object:
        return read(services_of(state))

    return Provide(provider, sync_to_thread=False)


def caller_audit(state: State, request: Request[KeyRecord, Any, Any]) -> CallerAudit:
    """The audit log, each record signed by the key that made the request."""
    return CallerAudit(services_of(state).audit, request.user.id)


# the parameter name a route declares -> the provider of what it receives
DEPENDENCIES = {
    "query_service": provide(lambda s: s.query),
    "ingestion": provide(lambda s: s.ingestion),
    "journal": provide(lambda s: s.journal),
    "settings": provide(lambda s: s.settings),
    "keys": provide(lambda s: s.keys),
    "audit": Provide(caller_audit, sync_to_thread=False),
    "metrics": provide(lambda s: s.metrics),
    "sources": provide(running_sources),
    "backups": provide(lambda s: s.backups),
    "embedding_models": provide(lambda s: s.embedding_models),
    "logs": provide(lambda s: s.logs),
    "status_report": provide(StatusReport),
    "health_checks": provide(HealthChecks),
    "served": provide(Services.served),
    "reader": Provide(caller_reader, sync_to_thread=False),
    # not `collections`: Litestar reads a body field of a dependency's name as a failed
    # dependency (a 500), and requests carry a `collections` field
    "collection_service": provide(lambda s: s.collections),
}
