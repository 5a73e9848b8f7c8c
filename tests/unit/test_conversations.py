"""Conversations: which questions are follow-ups, what gets searched, and the journal's
bounded, per-key history (a real SQLite journal): keyed by (key, id), an older journal
rebuilt so."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from appliance.domain.types import Citation, DoneEvent, Timings
from appliance.query.conversations import (
    ConversationService,
    TurnLimits,
    is_follow_up,
    searched_question,
)
from appliance.store.journal import Journal
from appliance.store.journal_conversations import TurnRow

FIRST = "How do I enable data checksums on an existing cluster?"


def row(question: str, searched: str | None = None) -> TurnRow:
    return TurnRow(1, question, searched or question, "an answer", ["a.html"], 1.0)


@pytest.mark.parametrize(
    ("question", "follows"),
    [
        ("And how do I undo it?", True),
        ("what about replicas", True),
        ("Does that need a restart?", True),
        ("How long?", True),  # short: leans on its context
        ("How do I rotate the server log files every day?", False),
        ("Which port does the backup service listen on by default?", False),
    ],
)
def test_follow_ups_are_recognised(question: str, follows: bool) -> None:
    assert is_follow_up(question) is follows


def test_a_follow_up_is_searched_with_the_question_before_it() -> None:
    history = [row(FIRST)]
    assert searched_question("And how do I undo it?", history) == f"{FIRST}\nAnd how do I undo it?"
    standalone = "How do I rotate the server log files every day?"
    assert searched_question(standalone, history) == standalone  # a new subject stands alone
    assert searched_question("And how do I undo it?", []) == "And how do I undo it?"
    chained = searched_question("Does it need a restart?", [row("x", "y " * 500)])
    assert len(chained) < 450  # a chain of follow-ups carries a bounded context


def done(answer: str, *files: str) -> DoneEvent:
    citations = [Citation(i, f"d{i}", f, 0, 0.5, None, None, "") for i, f in enumerate(files, 1)]
    return DoneEvent(answer, citations, Timings(0, 0, 0, 0, 0, 0, 0, 0, 0.0))


async def test_history_is_per_key_bounded_and_deletable(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start()
    service = ConversationService(journal, TurnLimits(max_turns=3, max_conversations=2))
    try:
        turn = await service.begin("key-a", "c1", FIRST)
        assert turn.searched == FIRST
        await service.record(turn, done("Run pg_checksums --enable.", "app-pgchecksums.html"))
        follow = await service.begin("key-a", "c1", "And how do I undo it?")
        assert follow.searched.startswith(FIRST)
        for i in range(4):
            await service.record(follow, done(f"answer {i}"))
        turns = await journal.turns("key-a", "c1")
        assert [t.turn for t in turns] == [3, 4, 5]  # the last max_turns
        assert (await journal.conversation("key-a", "c1")).turns == 3  # type: ignore[union-attr]
        for cid in ("c2", "c3"):
            await service.record(await service.begin("key-a", cid, "q"), done("a"))
        mine = await journal.conversations("key-a")
        assert [c.id for c in mine] == ["c3", "c2"]  # c1 dropped: least recently used
        assert await journal.turns("key-a", "c1") == []  # with its turns
        await service.record(await service.begin("key-b", "c9", "q"), done("a"))
        assert [c.id for c in await journal.conversations("key-b")] == ["c9"]
        assert len(await journal.conversations(None)) == 3  # an admin sees all
        assert not await journal.delete_conversation("key-a", "c9")  # not key-a's
        assert await journal.delete_conversation("key-b", "c9")
        assert await journal.turns("key-b", "c9") == []
        assert not await journal.delete_conversation("key-b", "c9")
    finally:
        await journal.close()


async def test_two_keys_may_use_the_same_id_without_meeting(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    journal.start()
    service = ConversationService(journal, TurnLimits(max_conversations=1))
    try:
        first = await service.begin("key-a", "c1", FIRST)
        await service.record(first, done("Run pg_checksums --enable.", "app-pgchecksums.html"))
        # key B's "c1" is a conversation of its own: no history of A's is searched
        theirs = await service.begin("key-b", "c1", "And how do I undo it?")
        assert theirs.searched == "And how do I undo it?"
        await service.record(theirs, done("No idea."))
        await service.record(await service.begin("key-b", "c2", "q"), done("a"))  # B's bound
        assert await journal.conversation("key-b", "c1") is None  # B's c1 dropped, not A's
        mine = await journal.turns("key-a", "c1")
        assert [(t.question, t.answer) for t in mine] == [(FIRST, "Run pg_checksums --enable.")]
        assert not await journal.delete_conversation("key-b", "c1")
        follow = await service.begin("key-a", "c1", "And how do I undo it?")
        assert follow.searched == f"{FIRST}\nAnd how do I undo it?"
    finally:
        await journal.close()


# The conversation tables as the first journals made them (keyed by the id alone).
_KEYED_BY_ID = """
CREATE TABLE conversations (id TEXT PRIMARY KEY, key_id TEXT NOT NULL, title TEXT NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE conversation_turns (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    turn INTEGER NOT NULL, question TEXT NOT NULL, searched TEXT NOT NULL,
    answer TEXT NOT NULL, files TEXT NOT NULL DEFAULT '[]', created_at REAL NOT NULL,
    PRIMARY KEY (conversation_id, turn));
CREATE INDEX conversations_key ON conversations(key_id, updated_at);
INSERT INTO conversations VALUES ('c1', 'key-a', 'How?', 1.0, 2.0),
    ('c2', 'key-b', 'Why?', 3.0, 3.0);
INSERT INTO conversation_turns VALUES ('c1', 1, 'How?', 'How?', 'Thus.', '["a.md"]', 1.0),
    ('c1', 2, 'And?', 'How?\nAnd?', 'So.', '[]', 2.0),
    ('c2', 1, 'Why?', 'Why?', 'Because.', '[]', 3.0);
"""


def _primary_key(path: Path, table: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        columns = [
            (pk, name) for _, name, _, _, _, pk in conn.execute(f"PRAGMA table_info({table})")
        ]
    return [name for pk, name in sorted(columns) if pk]


async def test_an_older_journal_is_rebuilt_keyed_by_key_and_id_keeping_every_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.executescript(_KEYED_BY_ID)
    journal = Journal(path)
    journal.start()
    await journal.close()
    assert _primary_key(path, "conversations") == ["key_id", "id"]
    assert _primary_key(path, "conversation_turns") == ["key_id", "conversation_id", "turn"]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert not {t for t in tables if t.endswith("_by_id")}  # the old tables are gone
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    journal = Journal(path)  # reopened: nothing left to rebuild, nothing lost
    journal.start()
    service = ConversationService(journal)
    try:
        old = await journal.conversation("key-a", "c1")
        assert old is not None and (old.title, old.created_at, old.updated_at, old.turns) == (
            "How?", 1.0, 2.0, 2,
        )  # fmt: skip
        turns = await journal.turns("key-a", "c1")
        assert [(t.turn, t.searched, t.answer, t.files) for t in turns] == [
            (1, "How?", "Thus.", ["a.md"]), (2, "How?\nAnd?", "So.", []),
        ]  # fmt: skip
        assert [c.id for c in await journal.conversations("key-b")] == ["c2"]
        # the rebuilt tables take a second key's "c1" beside the first's
        await service.record(await service.begin("key-b", "c1", "Who?"), done("Them."))
        assert [t.answer for t in await journal.turns("key-b", "c1")] == ["Them."]
        assert len(await journal.turns("key-a", "c1")) == 2
        assert await journal.delete_conversation("key-a", "c1")  # the turns go with it
        assert await journal.turns("key-a", "c1") == []
        assert len(await journal.turns("key-b", "c1")) == 1
    finally:
        await journal.close()


def test_chat_messages_are_read_as_a_conversation() -> None:
    from appliance.query.chat import retrieval_question

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Run pg_checksums --enable."},
        {"role": "user", "content": "And how do I undo it?"},
    ]
    assert retrieval_question(messages) == (3, f"{FIRST}\nAnd how do I undo it?")
    messages.append({"role": "user", "content": "How do I rotate the server log files daily?"})
    assert retrieval_question(messages) == (4, messages[-1]["content"])
    assert retrieval_question([{"role": "system", "content": "x"}]) == (0, "x")
