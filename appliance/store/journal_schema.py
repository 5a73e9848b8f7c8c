"""The journal's tables, rows and migrations (SQLite).

`documents`, `jobs`, `files` and `chunks` hold the ingestion state (`journal.py`);
`sources` and `source_files` the synced folders and what each scan saw
(`journal_sources.py`); `conversations` and their turns are in `conversation_tables.py`.
An older journal gains the newer columns when it is opened.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import msgspec

from appliance.runtime.files import copy_sqlite
from appliance.store.conversation_tables import create_conversation_tables
from appliance.wire.collections import DEFAULT_COLLECTION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    pages INTEGER,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    upload_path TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    stage TEXT NOT NULL,
    state TEXT NOT NULL,
    document_id TEXT,
    content_hash TEXT,
    content_type TEXT,
    pages INTEGER,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    note TEXT,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS chunks (
    document_id TEXT NOT NULL,
    chunk_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    page INTEGER,
    heading TEXT,
    PRIMARY KEY (document_id, chunk_index)
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_scan TEXT
);
CREATE TABLE IF NOT EXISTS collections (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
INSERT OR IGNORE INTO collections (id, name, created_at) VALUES ('default', 'default', 0);
CREATE TABLE IF NOT EXISTS source_files (
    source_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,
    document_id TEXT,
    seen INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    PRIMARY KEY (source_id, path)
);
"""


class DocumentRow(msgspec.Struct, frozen=True):
    """A stored document. `created_at` is when it was ingested; `created`/`modified` are
    the dates its format records (ISO 8601). `source_id` names the synced folder it came
    from, `parent_id` the mail it was attached to; `meta` is JSON of the rest (mail
    headers, pages read by OCR)."""

    id: str
    file_name: str
    content_hash: str
    content_type: str
    size_bytes: int
    chunks: int
    pages: int | None
    created_at: float
    file_type: str = ""
    title: str | None = None
    author: str | None = None
    created: str | None = None
    modified: str | None = None
    source_id: str | None = None
    parent_id: str | None = None
    meta: str = "{}"
    collection: str = DEFAULT_COLLECTION  # the id of its collection


class JobRow(msgspec.Struct, frozen=True):
    id: str
    state: str
    created_at: float
    started_at: float | None
    finished_at: float | None


class FileRow(msgspec.Struct, frozen=True):
    job_id: str
    idx: int
    file_name: str
    upload_path: str
    size_bytes: int
    stage: str  # received | parsed | indexed | ended (failed, skipped, cancelled)
    state: str  # the API's FileState
    document_id: str | None
    content_hash: str | None
    content_type: str | None
    pages: int | None
    chunks_total: int
    error: str | None
    note: str | None
    extra: str = "{}"  # JSON: metadata and links of the file (see FileTask)


# The columns a row is read and written with: its fields, in order (defined once, there).
DOC_COLUMNS = ", ".join(DocumentRow.__struct_fields__)
FILE_COLUMNS = ", ".join(FileRow.__struct_fields__)
JOB_COLUMNS = ", ".join(JobRow.__struct_fields__)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.with_name("catalog.sqlite3")  # before the journal, documents lived there
    if not path.exists() and old.exists():
        # through SQLite, so rows still in the old file's WAL come along
        source = sqlite3.connect(old)
        try:
            copy_sqlite(source, path.with_suffix(".migrating"))
        finally:
            source.close()
        os.replace(path.with_suffix(".migrating"), path)
        for suffix in ("", "-wal", "-shm"):
            old.with_name(old.name + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(_SCHEMA)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(documents)")}
    if "state" not in columns:
        conn.execute("ALTER TABLE documents ADD COLUMN state TEXT NOT NULL DEFAULT 'indexed'")
    if "cancel_requested" not in {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}:
        conn.execute("ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0")
    _add_columns(conn, "documents", _DOC_ADDED)
    _unique_per_collection(conn)
    _add_columns(conn, "files", (("extra", "TEXT NOT NULL DEFAULT '{}'"),))
    _add_columns(conn, "chunks", (("location", "TEXT"),))
    _add_columns(conn, "sources", (("device", "INTEGER"),))  # st_dev at add
    create_conversation_tables(conn)  # keyed by (key, id); older journals rebuilt
    conn.executescript(_INDEXES)
    return conn


# Columns added since the first journals: an older journal gains them on open.
_DOC_ADDED = (
    ("file_type", "TEXT NOT NULL DEFAULT ''"),
    ("title", "TEXT"),
    ("author", "TEXT"),
    ("created", "TEXT"),
    ("modified", "TEXT"),
    ("source_id", "TEXT"),
    ("parent_id", "TEXT"),
    ("meta", "TEXT NOT NULL DEFAULT '{}'"),
    ("collection", "TEXT NOT NULL DEFAULT 'default'"),  # every older document: `default`
)
_INDEXES = """
CREATE INDEX IF NOT EXISTS documents_file_type ON documents(file_type);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source_id);
CREATE UNIQUE INDEX IF NOT EXISTS documents_content ON documents(collection, content_hash);
CREATE INDEX IF NOT EXISTS source_files_document ON source_files(document_id);
CREATE INDEX IF NOT EXISTS conversations_key ON conversations(key_id, updated_at);
"""


_REBUILT = "CREATE TABLE documents_rebuilt"


def _unique_per_collection(conn: sqlite3.Connection) -> None:
    """Journals from before collections held each content once (`content_hash UNIQUE`);
    now it is once per collection. SQLite cannot drop a constraint, so the table is
    rebuilt from its own definition, in one transaction (rows, column order kept)."""
    [sql] = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'documents'").fetchone()
    if "content_hash TEXT NOT NULL UNIQUE" not in sql:
        return
    rebuilt = sql.replace("content_hash TEXT NOT NULL UNIQUE", "content_hash TEXT NOT NULL")
    # the name as stored: bare, or quoted once the table was renamed
    rebuilt = re.sub(r'^CREATE TABLE (IF NOT EXISTS )?"?documents"?', _REBUILT, rebuilt)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(rebuilt)
        conn.execute("INSERT INTO documents_rebuilt SELECT * FROM documents")
        conn.execute("DROP TABLE documents")
        conn.execute("ALTER TABLE documents_rebuilt RENAME TO documents")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _add_columns(
    conn: sqlite3.Connection, table: str, columns: tuple[tuple[str, str], ...]
) -> None:
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
