"""Pure data types that flow through ingestion and query (no I/O, no frameworks).

The ones the HTTP API also sends are defined once in `appliance.wire` and named here too,
so the core reads them from the domain."""

from __future__ import annotations

import msgspec

from appliance.wire.answers import AnswerEvent as AnswerEvent
from appliance.wire.answers import Citation as Citation
from appliance.wire.answers import DoneEvent as DoneEvent
from appliance.wire.answers import ErrorEvent as ErrorEvent
from appliance.wire.answers import Evidence as Evidence
from appliance.wire.answers import EvidenceEvent as EvidenceEvent
from appliance.wire.answers import FinishReason as FinishReason
from appliance.wire.answers import Timings as Timings
from appliance.wire.answers import TokenEvent as TokenEvent
from appliance.wire.search import DocumentFilter as DocumentFilter
from appliance.wire.search import DocumentInfo as DocumentInfo
from appliance.wire.search import Hit as Hit
from appliance.wire.sources import ScanReport as ScanReport


class Section(msgspec.Struct, frozen=True):
    """A run of text from one place of a document: a page, or the body under a heading.

    `location` says where, as a reader would look for it, when a page number alone
    does not: "sheet Prices, rows 2-31", "slide 4", "notes of slide 4".
    """

    text: str
    page: int | None = None
    heading: str | None = None
    location: str | None = None


class ChunkRecord(msgspec.Struct, frozen=True):
    """One chunk as stored: its vector and the payload needed for citations."""

    point_id: str
    document_id: str
    file_name: str
    chunk_index: int
    text: str
    page: int | None
    heading: str | None
    vector: list[float]
    location: str | None = None
    collection: str = "default"  # the id of the collection its document belongs to
