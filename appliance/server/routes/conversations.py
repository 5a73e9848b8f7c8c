"""Conversations: a key lists, reads and deletes its own (an admin key: everyone's).

A conversation is named by its key and its id: the same id under another key is another
conversation. Reading or deleting takes the caller's own; an admin key names another
key's with `?key_id=`. Whatever another key holds answers exactly like an unknown id."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, delete, get
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from appliance.query.conversations import UnknownConversation
from appliance.security.audit import AuditLog
from appliance.security.keys import KeyRecord, Role
from appliance.server.openapi import errors
from appliance.store.journal import Journal
from appliance.store.journal_conversations import ConversationRow
from appliance.wire.conversations import ConversationList, ConversationRead, ConversationTurn


def _read(row: ConversationRow, history: list[ConversationTurn] | None = None) -> ConversationRead:
    return ConversationRead(
        row.id, row.key_id, row.title, row.created_at, row.updated_at, row.turns, history
    )


OWNER = Parameter(
    query="key_id", default=None,
    description="An admin key's way to another key's conversation (default: the caller's)",
)  # fmt: skip


async def owned(
    journal: Journal, key: KeyRecord, conversation_id: str, owner: str | None
) -> ConversationRow:
    """The conversation `conversation_id` of the caller (or, for an admin, of `owner`)."""
    key_id = key.id if owner is None or key.role is not Role.ADMIN else owner
    row = await journal.conversation(key_id, conversation_id)
    if row is None or (owner is not None and owner != row.key_id):
        raise UnknownConversation()
    return row


class ConversationController(Controller):
    path = "/v1/conversations"
    tags = ("query",)
    opt = {"role": Role.QUERY}  # noqa: RUF012 - Litestar's own attribute; admin passes too

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
        self,
        conversation_id: str,
        journal: Journal,
        request: Request[KeyRecord, Any, Any],
        key_id: str | None = OWNER,
    ) -> ConversationRead:
        row = await owned(journal, request.user, conversation_id, key_id)
        turns = await journal.turns(row.key_id, conversation_id)
        history = [
            ConversationTurn(t.turn, t.question, t.searched, t.answer, t.files, t.created_at)
            for t in turns
        ]
        return _read(row, history)

    @delete("/{conversation_id:str}", status_code=HTTP_204_NO_CONTENT,
            summary="Delete a conversation and its history (query)",
            responses=errors(404))  # fmt: skip
    async def delete_conversation(
        self,
        conversation_id: str,
        journal: Journal,
        audit: AuditLog,
        request: Request[KeyRecord, Any, Any],
        key_id: str | None = OWNER,
    ) -> None:
        row = await owned(journal, request.user, conversation_id, key_id)
        await journal.delete_conversation(row.key_id, conversation_id)
        audit.record(
            "conversation_deleted", by=request.user.id, key_id=row.key_id,
            conversation=conversation_id,
        )  # fmt: skip
