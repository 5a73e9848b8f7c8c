"""Conversations: follow-up questions searched with what came before.

"And how do I undo it?" finds nothing on its own. A question that reads as a follow-up
(it opens like one, points back with "it", "that", "they"..., or is only a few words)
is searched, and put to the model, together with the question it follows; any other
question stands alone, so a change of subject is not dragged back. The rewrite is a
rule, not a model call: the default 135M chat model rewrites unreliably, and the rule
costs nothing before the first token.

History is kept in the journal per API key, bounded (`TurnLimits`); a key sees and
continues only its own conversations: conversations are keyed by (key, id), so an id
another key uses starts a conversation of this key's own.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from appliance.domain.errors import FieldError
from appliance.domain.types import DoneEvent
from appliance.store.journal_conversations import ConversationJournal, TurnRow

_OPENS_FOLLOW_UP = re.compile(
    r"^\s*(and|but|or|also|so|then|what about|how about|what if|why not|same|ok|okay)\b", re.I
)
_POINTS_BACK = re.compile(
    r"\b(it|its|it's|this|that|these|those|they|them|their|there|he|she|him|her|"
    r"former|latter|above|previous|same|such|one|ones|again|instead)\b",
    re.I,
)
SHORT_WORDS = 4  # a question of this many words or fewer leans on its context
PREVIOUS_CHARS = 400  # at most this much of the previous question is carried


@dataclass(frozen=True)
class TurnLimits:
    max_turns: int = 20  # kept per conversation (older turns dropped)
    max_conversations: int = 100  # kept per API key (least recently used dropped)
    answer_chars: int = 4000  # of each answer kept
    history_turns: int = 3  # read back when a question arrives


class UnknownConversation(FieldError):
    """This key has no conversation of this id (another key's is no different)."""

    code = "unknown_conversation"
    status = 404

    def __init__(self) -> None:
        super().__init__("conversation_id", "no such conversation for this API key")


def is_follow_up(question: str) -> bool:
    words = question.split()
    return (
        len(words) <= SHORT_WORDS
        or bool(_OPENS_FOLLOW_UP.match(question))
        or bool(_POINTS_BACK.search(question))
    )


def join_follow_up(question: str, previous: str | None) -> str:
    """A follow-up joined to the (standalone) question before it; else the question."""
    if not previous or not previous.strip() or not is_follow_up(question):
        return question
    previous = previous.strip()
    if len(previous) > PREVIOUS_CHARS:  # the start: where a chain of follow-ups began
        previous = previous[:PREVIOUS_CHARS].rsplit(" ", 1)[0]
    return f"{previous}\n{question.strip()}"


def searched_question(question: str, history: list[TurnRow]) -> str:
    """What retrieval and the model get, given the conversation's turns so far."""
    return join_follow_up(question, history[-1].searched if history else None)


@dataclass(frozen=True)
class Turn:
    """One question of a conversation, before its answer."""

    conversation_id: str
    key_id: str
    question: str
    searched: str


class ConversationService:
    def __init__(self, journal: ConversationJournal, limits: TurnLimits = TurnLimits()) -> None:
        self._journal = journal
        self._limits = limits

    async def begin(self, key_id: str, conversation_id: str, question: str) -> Turn:
        """The turn for `question`: a new conversation if the key has none of this id
        (whether or not another key has one)."""
        history = await self._journal.turns(
            key_id, conversation_id, last=self._limits.history_turns
        )
        return Turn(conversation_id, key_id, question, searched_question(question, history))

    async def record(self, turn: Turn, done: DoneEvent) -> None:
        files = list(dict.fromkeys(c.file_name for c in done.citations))
        row = TurnRow(
            0, turn.question, turn.searched, done.answer[: self._limits.answer_chars], files,
            time.time(),
        )  # fmt: skip
        await self._journal.add_turn(
            turn.conversation_id, turn.key_id, row,
            max_turns=self._limits.max_turns, max_conversations=self._limits.max_conversations,
        )  # fmt: skip
