"""The conversation tables: keyed by (API key, conversation id), so two keys may use the
same id without meeting. A journal from before (keyed by the id alone) is rebuilt in
place when it is opened, every row kept."""

from __future__ import annotations

import sqlite3

_TABLES = (
    """CREATE TABLE IF NOT EXISTS conversations (
    key_id TEXT NOT NULL,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (key_id, id)
)""",
    """CREATE TABLE IF NOT EXISTS conversation_turns (
    key_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    question TEXT NOT NULL,
    searched TEXT NOT NULL,
    answer TEXT NOT NULL,
    files TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    PRIMARY KEY (key_id, conversation_id, turn),
    FOREIGN KEY (key_id, conversation_id)
        REFERENCES conversations(key_id, id) ON DELETE CASCADE
)""",
)
_COPY = (
    "INSERT INTO conversations (key_id, id, title, created_at, updated_at) "
    "SELECT key_id, id, title, created_at, updated_at FROM conversations_by_id",
    "INSERT INTO conversation_turns (key_id, conversation_id, turn, question, searched, "
    "answer, files, created_at) "
    "SELECT c.key_id, t.conversation_id, t.turn, t.question, t.searched, t.answer, t.files, "
    "t.created_at FROM conversation_turns_by_id t "
    "JOIN conversations_by_id c ON c.id = t.conversation_id",
)


def create_conversation_tables(conn: sqlite3.Connection) -> None:
    """Create the tables, or rebuild those of an older journal (in one transaction)."""
    if _keyed_by_id_alone(conn):
        _rebuild(conn)
    for table in _TABLES:
        conn.execute(table)


def _keyed_by_id_alone(conn: sqlite3.Connection) -> bool:
    primary = {row[1]: row[5] for row in conn.execute("PRAGMA table_info(conversations)")}
    return bool(primary) and not primary.get("key_id")


def _rebuild(conn: sqlite3.Connection) -> None:
    """SQLite's recipe for a changed primary key: new tables, rows copied, old dropped
    (foreign keys off meanwhile, checked before the commit)."""
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("ALTER TABLE conversation_turns RENAME TO conversation_turns_by_id")
            conn.execute("ALTER TABLE conversations RENAME TO conversations_by_id")
            for statement in (*_TABLES, *_COPY):
                conn.execute(statement)
            conn.execute("DROP TABLE conversation_turns_by_id")
            conn.execute("DROP TABLE conversations_by_id")
            broken = conn.execute("PRAGMA foreign_key_check(conversation_turns)").fetchall()
            if broken:
                raise sqlite3.IntegrityError(f"conversations rebuilt with broken links: {broken}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
