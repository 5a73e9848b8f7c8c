"""Dependency providers: handlers receive services, never globals."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import Provide

from appliance.config.schema import Settings
from appliance.ingest.service import IngestionService
from appliance.query.pipeline import QueryService
from appliance.server.services import Services
from appliance.server.startup import running_services
from appliance.store.journal import Journal


def services_of(state: State) -> Services:
    return running_services(state)  # 503 `starting` while the models load


def _query(state: State) -> QueryService:
    return services_of(state).query


def _ingestion(state: State) -> IngestionService:
    return services_of(state).ingestion


def _journal(state: State) -> Journal:
    return services_of(state).journal


def _settings(state: State) -> Settings:
    return services_of(state).settings


DEPENDENCIES = {
    "query_service": Provide(_query, sync_to_thread=False),
    "ingestion": Provide(_ingestion, sync_to_thread=False),
    "journal": Provide(_journal, sync_to_thread=False),
    "settings": Provide(_settings, sync_to_thread=False),
    "services": Provide(services_of, sync_to_thread=False),
}
