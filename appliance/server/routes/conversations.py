"""Conversations: a key lists, reads and deletes its own (an admin key: everyone's).

A conversation is named by its key and its id: the same id under another key is another
conversation. Reading or deleting takes the caller's own; an admin key names another
key's with `?key_id=`. Whatever another key holds answers exactly like an unknown id."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get
from litestar.di import Provide
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from appliance.query.conversations import UnknownConversation
from appliance.security.audit import CallerAudit
from appliance.security.keys import KeyRecord, Role
from appliance.server.openapi import errors
from appliance.store.journal import Journal
from appliance.store.journal_conversations import ConversationRow
from appliance.wire.conversations import ConversationList, ConversationRead, ConversationTurn


def _read(row: ConversationRow, history: list[ConversationTurn] | None = None) -> ConversationRead:
    return ConversationRead(
        row.id, row.key_id, row.title, row.created_at, row.updated_at, row.turns, history
    )


async def owned(
    conversation_id: str,
    journal: Journal,
    request: Request[KeyRecord, Any, Any],
    key_id: str | None = Parameter(
        query="key_id", default=None,
        description="An admin key's way to another key's conversation (default: the caller's)",
    ),
) -> ConversationRow:  # fmt: skip
    """The conversation `conversation_id` of the caller (or, for an admin, of `key_id`):
    what the routes naming one receive as `conversation`."""
    key = request.user
    owner = key.id if key_id is None or key.role is not Role.ADMIN else key_id
    row = await journal.conversation(owner, conversation_id)
    if row is None or (key_id is not None and key_id != row.key_id):
        raise UnknownConversation()
    return row


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ("query",)
    opt = {"role": Role.QUERY}  # noqa: RUF012 - Litestar's own attribute; admin passes too
    dependencies = {"conversation": Provide(owned)}  # noqa: RUF012 - Litestar's own attribute

    @get("/", summary="List this key's conversations, most recent first (query; admin: all)",
         responses=errors())  # fmt: skip
    async def list_conversations(
        self,
        journal: Journal,
        request: Request[KeyRecord, Any, Any],
        limit: int = Parameter(default=50, ge=1, le=1000),
    ) -> ConversationList:
        key = request.user
        rows = await journal.conversations(None if key.role is Role.ADMIN else key.id, limit)
        return ConversationList([_read(r) for r in rows])

    @get("/{conversation_id:str}", summary="A conversation and its turns (query; admin: any key's)",
         responses=errors(404))  # fmt: skip
    async def get_conversation(
        self, conversation: ConversationRow, journal: Journal
    ) -> ConversationRead:
        turns = await journal.turns(conversation.key_id, conversation.id)
        history = [
            ConversationTurn(t.turn, t.question, t.searched, t.answer, t.files, t.created_at)
            for t in turns
        ]
        return _read(conversation, history)

    @delete("/{conversation_id:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Delete a conversation and its history (query)",
            responses=errors(404))  # fmt: skip
    async def delete_conversation(
        self, conversation: ConversationRow, journal: Journal, audit: CallerAudit
    ) -> None:
        await journal.delete_conversation(conversation.key_id, conversation.id)
        audit.record(
            "conversation_deleted", key_id=conversation.key_id, conversation=conversation.id
        )
