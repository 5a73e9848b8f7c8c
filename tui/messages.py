"""The typed messages workers post to screens (network results, never widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from appliance.client import ApiError
from appliance.client.evaluation import EvalReport, QuestionResult
from appliance.domain.types import DoneEvent, ErrorEvent, Evidence
from appliance.wire.collections import CollectionRead
from appliance.wire.documents import ChunkPage, DocumentList
from appliance.wire.jobs import JobRead
from appliance.wire.keys import KeyCreated, KeyRead
from appliance.wire.search import SearchResponse
from appliance.wire.sources import SourceRead
from appliance.wire.status import LogPage
from tui.metrics import Scrape


@dataclass
class CallFailed(Message):
    """A request failed; the app shows it and, if the server is gone, says so."""

    doing: str
    error: ApiError
    background: bool = False  # a poll: no toast when the banner already says it


@dataclass
class MetricsScraped(Message):
    scrape: Scrape


@dataclass
class DocumentsLoaded(Message):
    documents: DocumentList


@dataclass
class ChunksLoaded(Message):
    page: ChunkPage


@dataclass
class JobsUpdated(Message):
    """The latest state of the jobs an upload made."""

    jobs: list[JobRead]


@dataclass
class AnswerEvidence(Message):
    evidence: list[Evidence]


@dataclass
class AnswerToken(Message):
    text: str


@dataclass
class EvidencePassage(Message):
    """The passage (chunk text) the first evidence sentence stands in, with the evidence
    sentences it holds, to highlight them within it."""

    text: str
    evidence: list[Evidence]


@dataclass
class AnswerDone(Message):
    done: DoneEvent


@dataclass
class AnswerFailed(Message):
    error: ErrorEvent


@dataclass
class SearchDone(Message):
    response: SearchResponse


@dataclass
class EvalProgress(Message):
    """One question of an evaluation scored."""

    result: QuestionResult
    done: int
    total: int


@dataclass
class EvalFinished(Message):
    report: EvalReport
    name: str


@dataclass
class KeysLoaded(Message):
    keys: list[KeyRead]


@dataclass
class SourcesLoaded(Message):
    sources: list[SourceRead]


@dataclass
class CollectionsLoaded(Message):
    collections: list[CollectionRead]


@dataclass
class KeyMade(Message):
    created: KeyCreated


@dataclass
class LogsLoaded(Message):
    page: LogPage
    level: str
