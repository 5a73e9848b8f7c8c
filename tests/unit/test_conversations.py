"""Conversations: which questions are follow-ups, what gets searched, and the journal's
bounded, per-key history (a real SQLite journal)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.domain.types import Citation, DoneEvent, Timings
from appliance.query.conversations import (
    ConversationService,
    TurnLimits,
    UnknownConversation,
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
        with pytest.raises(UnknownConversation) as refused:
            await service.begin("key-b", "c1", "And how do I undo it?")
        assert refused.value.field == "conversation_id" and refused.value.status == 404
        for i in range(4):
            await service.record(follow, done(f"answer {i}"))
        turns = await journal.turns("c1")
        assert [t.turn for t in turns] == [3, 4, 5]  # the last max_turns
        assert (await journal.conversation("c1")).turns == 3  # type: ignore[union-attr]
        for cid in ("c2", "c3"):
            await service.record(await service.begin("key-a", cid, "q"), done("a"))
        mine = await journal.conversations("key-a")
        assert [c.id for c in mine] == ["c3", "c2"]  # c1 dropped: least recently used
        await service.record(await service.begin("key-b", "c9", "q"), done("a"))
        assert [c.id for c in await journal.conversations("key-b")] == ["c9"]
        assert len(await journal.conversations(None)) == 3  # an admin sees all
        assert await journal.delete_conversation("c9")
        assert await journal.turns("c9") == []
        assert not await journal.delete_conversation("c9")
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
