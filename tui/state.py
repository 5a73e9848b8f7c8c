"""What the app knows about its link to the appliance (watched by every screen)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["connecting", "ok", "not_ready", "unreachable", "key_refused"]


@dataclass(frozen=True)
class Connection:
    state: State
    text: str
