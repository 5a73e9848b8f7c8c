"""The journal's catalog queries: documents by their metadata (search filters), and the
metadata of the documents an answer cites. Mixed into `Journal`."""

from __future__ import annotations

import calendar
import sqlite3
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from appliance.domain.types import DocumentFilter, DocumentInfo
from appliance.runtime.worker import ThreadWorker

UPLOAD = "upload"  # the source name of uploaded documents in filters


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _day(value: date, *, end: bool = False) -> float:
    """Seconds since the epoch at the start of `value` (UTC), or of the next day."""
    if end:
        value += timedelta(days=1)
    return float(calendar.timegm(value.timetuple()))


def filter_sql(f: DocumentFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the documents `f` admits."""
    where: list[str] = ["state = 'indexed'"]
    params: list[Any] = []
    if f.file_types is not None:
        types = [t.lower().lstrip(".") for t in f.file_types]
        where.append(f"file_type IN ({','.join('?' * len(types)) or 'NULL'})")
        params += types
    if f.sources is not None:
        named = [s for s in f.sources if s != UPLOAD]
        either = [f"source_id IN ({','.join('?' * len(named)) or 'NULL'})"]
        if UPLOAD in f.sources:
            either.append("source_id IS NULL")
        where.append(f"({' OR '.join(either)})")
        params += named
    if f.title is not None:
        where.append("(lower(title) LIKE ? ESCAPE '\\' OR lower(file_name) LIKE ? ESCAPE '\\')")
        params += [_like(f.title)] * 2
    if f.author is not None:
        where.append("lower(author) LIKE ? ESCAPE '\\'")
        params.append(_like(f.author))
    if f.created_after is not None:
        where.append("created >= ?")
        params.append(f.created_after.isoformat())
    if f.created_before is not None:
        where.append("created < ?")
        params.append((f.created_before + timedelta(days=1)).isoformat())
    if f.ingested_after is not None:
        where.append("created_at >= ?")
        params.append(_day(f.ingested_after))
    if f.ingested_before is not None:
        where.append("created_at < ?")
        params.append(_day(f.ingested_before, end=True))
    return " AND ".join(where), params


class CatalogQueries:
    _worker: ThreadWorker[sqlite3.Connection]

    async def matching(self, f: DocumentFilter) -> list[str]:
        """Ids of the indexed documents the filter admits."""
        where, params = filter_sql(f)
        rows = await self._worker.call(
            lambda c: c.execute(f"SELECT id FROM documents WHERE {where}", params).fetchall()
        )
        return [r[0] for r in rows]

    async def describe(self, document_ids: Sequence[str]) -> dict[str, DocumentInfo]:
        """What citations show of these documents (the ones an answer cites)."""
        ids = sorted(set(document_ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self._worker.call(
            lambda c: c.execute(
                "SELECT id, title, author, file_type, source_id FROM documents "
                f"WHERE id IN ({marks})",
                ids,
            ).fetchall()
        )
        return {r[0]: DocumentInfo(r[1], r[2], r[3] or None, r[4]) for r in rows}
