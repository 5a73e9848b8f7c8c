"""The table of the documents, keys and sources screens: one row per record, updated
in place by key, and keys that act on the record under the cursor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from tui.widgets.plain import cell


class RecordTable(DataTable[Text]):
    """Records by key, a row each, every cell literal text (`cell()`), whatever the
    server sent. A subclass binds its keys to `act('<action>')`; the table then posts
    `RowAction(action, key of the row under the cursor)` for its screen to carry out."""

    DEFAULT_CSS = Path(__file__).with_suffix(".tcss").read_text(encoding="utf-8")

    @dataclass
    class RowAction(Message):
        """A key bound to `act(action)` pressed; `key`: the record under the cursor,
        None while the table is empty."""

        table: RecordTable
        action: str
        key: str | None

        @property
        def control(self) -> RecordTable:
            return self.table

    def __init__(self, fields: Sequence[str], *, id: str) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.fields = tuple(fields)

    def on_mount(self) -> None:
        for name in self.fields:
            self.add_column(name, key=name)

    @property
    def selected_key(self) -> str | None:
        """The row key under the cursor, or None for an empty table."""
        if self.row_count == 0:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def action_act(self, action: str) -> None:
        self.post_message(self.RowAction(self, action, self.selected_key))

    def show_rows(self, rows: Mapping[str, tuple[str, ...]]) -> None:
        """Show `rows` (values in `fields` order, by row key) in place: changed cells are
        updated, gone rows removed, new rows added; never cleared and refilled, so the
        cursor stays on the same row key (a refresh never moves a delete onto another
        record). The values are shown as they are, never as markup."""
        selected = self.selected_key
        for key in [k.value for k in self.rows if k.value not in rows]:
            self.remove_row(key)  # type: ignore[arg-type]
        for key, values in rows.items():
            if key in self.rows:
                for field, value in zip(self.fields, values, strict=True):
                    if self.get_cell(key, field) != (shown := cell(value)):
                        self.update_cell(key, field, shown, update_width=True)
            else:
                self.add_row(*map(cell, values), key=key)
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected))
