"""Dependency providers: a route names the service it uses and receives that one, never
the container and never a global. Each provider answers 503 `starting` while the
models load (`running_services`)."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from appliance.config.schema import Settings
from appliance.domain.errors import ApplianceError
from appliance.ingest.service import IngestionService
from appliance.ingest.sources import SourceService
from appliance.observability.log_buffer import LogBuffer
from appliance.observability.metrics import Metrics
from appliance.query.pipeline import QueryService
from appliance.security.audit import AuditLog
from appliance.security.key_store import KeyStore
from appliance.server.backup import Backups
from appliance.server.embedding_models import EmbeddingModels
from appliance.server.health_checks import HealthChecks
from appliance.server.services import ServedModels, Services
from appliance.server.startup import running_services
from appliance.server.status_report import StatusReport
from appliance.store.journal import Journal


class SourcesOff(ApplianceError):
    status, code = 503, "starting"


def services_of(state: State) -> Services:
    return running_services(state)  # 503 `starting` while the models load


def query_service(state: State) -> QueryService:
    return services_of(state).query


def ingestion(state: State) -> IngestionService:
    return services_of(state).ingestion


def journal(state: State) -> Journal:
    return services_of(state).journal


def settings(state: State) -> Settings:
    return services_of(state).settings


def keys(state: State) -> KeyStore:
    return services_of(state).keys


def audit(state: State) -> AuditLog:
    return services_of(state).audit


def metrics(state: State) -> Metrics:
    return services_of(state).metrics


def sources(state: State) -> SourceService:
    running = services_of(state).sources
    if running is None:
        raise SourcesOff("synced folders are not started yet")
    return running


def backups(state: State) -> Backups:
    return services_of(state).backups


def embedding_models(state: State) -> EmbeddingModels:
    return services_of(state).embedding_models


def logs(state: State) -> LogBuffer:
    return services_of(state).logs


def status_report(state: State) -> StatusReport:
    return StatusReport(services_of(state))


def health_checks(state: State) -> HealthChecks:
    return HealthChecks(services_of(state))


def served(state: State) -> ServedModels:
    return services_of(state).served()


DEPENDENCIES = {
    provider.__name__: Provide(provider, sync_to_thread=False)
    for provider in (
        query_service, ingestion, journal, settings, keys, audit, metrics, sources, backups,
        embedding_models, logs, status_report, health_checks, served,
    )
}  # fmt: skip
