"""`/v1/models/embedding`: switching the embedding model and the switch's progress."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

ModelName = Annotated[
    str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class EmbeddingSwitchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Switch to an embedding model added with `appliance models add`."""

    name: ModelName


class EmbeddingSwitchRead(msgspec.Struct, frozen=True):
    """The embedding switch: the live collection and model, and the last switch's progress."""

    collection: str
    state: Literal["idle", "running", "done", "failed"]
    model: str
    target_collection: str
    documents_total: int
    documents_done: int
    chunks_done: int
    started_at: float | None
    finished_at: float | None
    error: str | None
