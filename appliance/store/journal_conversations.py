"""The journal's part for conversations: each API key's questions and answers, bounded.

A conversation belongs to the key that started it: it is keyed by (key, id), so another
key using the same id has a conversation of its own and never sees this one. Each keeps
its last `max_turns` turns, and each key its last `max_conversations` conversations
(older ones are dropped as new ones are written).
"""

from __future__ import annotations

import sqlite3

import msgspec

from appliance.store.journal_thread import JournalThread


class TurnRow(msgspec.Struct, frozen=True):
    turn: int
    question: str  # as asked
    searched: str  # what retrieval and the model were given (the follow-up rewritten)
    answer: str
    files: list[str]  # the cited files
    created_at: float


class ConversationRow(msgspec.Struct, frozen=True):
    id: str
    key_id: str
    title: str  # the first question, shortened
    created_at: float
    updated_at: float
    turns: int


class ConversationJournal(JournalThread):
    """Mixed into `Journal`: the same SQLite connection and thread. A conversation is
    named by its key and its id together: the same id under two keys is two
    conversations."""

    async def conversation(self, key_id: str, conversation_id: str) -> ConversationRow | None:
        row = await self._worker.call(
            lambda c: c.execute(
                f"SELECT {_ROW} FROM conversations c WHERE c.key_id = ? AND c.id = ?",
                (key_id, conversation_id),
            ).fetchone()
        )
        return ConversationRow(*row) if row else None

    async def conversations(self, key_id: str | None, limit: int = 100) -> list[ConversationRow]:
        """A key's conversations, most recent first (all keys' when `key_id` is None)."""
        where, args = ("WHERE c.key_id = ?", (key_id, limit)) if key_id else ("", (limit,))
        rows = await self._worker.call(
            lambda c: c.execute(
                f"SELECT {_ROW} FROM conversations c {where} ORDER BY c.updated_at DESC LIMIT ?",
                args,
            ).fetchall()
        )
        return [ConversationRow(*r) for r in rows]

    async def turns(
        self, key_id: str, conversation_id: str, last: int | None = None
    ) -> list[TurnRow]:
        """The conversation's turns, oldest first (only the `last` ones if given)."""
        rows = await self._worker.call(
            lambda c: c.execute(
                "SELECT turn, question, searched, answer, files, created_at "
                "FROM conversation_turns WHERE key_id = ? AND conversation_id = ? "
                "ORDER BY turn DESC LIMIT ?",
                (key_id, conversation_id, -1 if last is None else last),
            ).fetchall()
        )
        return [
            TurnRow(t, q, s, a, msgspec.json.decode(f), at) for t, q, s, a, f, at in reversed(rows)
        ]

    async def add_turn(
        self,
        conversation_id: str,
        key_id: str,
        row: TurnRow,
        *,
        max_turns: int,
        max_conversations: int,
    ) -> None:
        """Append a turn (creating the key's conversation), then trim to the bounds."""
        named = (key_id, conversation_id)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO conversations (key_id, id, title, created_at, updated_at) "
                "VALUES (?,?,?,?,?) "
                "ON CONFLICT(key_id, id) DO UPDATE SET updated_at = excluded.updated_at",
                (*named, row.question[:120], row.created_at, row.created_at),
            )
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(turn), 0) FROM conversation_turns "
                "WHERE key_id = ? AND conversation_id = ?",
                named,
            ).fetchone()
            conn.execute(
                "INSERT INTO conversation_turns (key_id, conversation_id, turn, question, "
                "searched, answer, files, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (*named, last + 1, row.question, row.searched, row.answer,
                 msgspec.json.encode(row.files).decode(), row.created_at),
            )  # fmt: skip
            conn.execute(
                "DELETE FROM conversation_turns "
                "WHERE key_id = ? AND conversation_id = ? AND turn <= ?",
                (*named, last + 1 - max_turns),
            )
            conn.execute(
                "DELETE FROM conversations WHERE key_id = ? AND id IN ("
                "SELECT id FROM conversations WHERE key_id = ? "
                "ORDER BY updated_at DESC LIMIT -1 OFFSET ?)",
                (key_id, key_id, max_conversations),
            )

        await self._transaction(body)

    async def delete_conversation(self, key_id: str, conversation_id: str) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                "DELETE FROM conversations WHERE key_id = ? AND id = ?",
                (key_id, conversation_id),
            )
            return deleted.rowcount > 0

        return await self._transaction(body)


# a conversation's columns and its number of turns
_ROW = (
    "c.id, c.key_id, c.title, c.created_at, c.updated_at, (SELECT COUNT(*) "
    "FROM conversation_turns t WHERE t.key_id = c.key_id AND t.conversation_id = c.id)"
)
