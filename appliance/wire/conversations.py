"""`/v1/conversations`: the questions asked within a conversation, per API key."""

from __future__ import annotations

import msgspec


class ConversationTurn(msgspec.Struct, frozen=True):
    turn: int
    question: str
    searched: str
    answer: str
    files: list[str]
    created_at: float


class ConversationRead(msgspec.Struct, frozen=True):
    id: str
    key_id: str
    title: str
    created_at: float
    updated_at: float
    turns: int
    history: list[ConversationTurn] | None = None


class ConversationList(msgspec.Struct, frozen=True):
    conversations: list[ConversationRead]
