"""DataTable helpers: rows updated in place by key, so the cursor stays where it was;
every cell literal text (`cell()`), whatever the server sent."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text
from textual.widgets import DataTable

from tui.widgets.plain import cell


def selected_key(table: DataTable[Text]) -> str | None:
    """The row key under the cursor, or None for an empty table."""
    if table.row_count == 0:
        return None
    key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    return str(key) if key is not None else None


def sync_rows(
    table: DataTable[Text], rows: Mapping[str, tuple[str, ...]], columns: Sequence[str]
) -> None:
    """Make `table` show `rows` (by row key) in place: changed cells are updated, gone
    rows removed, new rows added; never cleared and refilled, so the cursor stays on
    the same row key (a refresh never moves a delete onto another document). The
    values are shown as they are, never as markup."""
    selected = selected_key(table)
    for key in [k.value for k in table.rows if k.value not in rows]:
        table.remove_row(key)  # type: ignore[arg-type]
    for key, values in rows.items():
        if key in table.rows:
            for column, value in zip(columns, values, strict=True):
                if table.get_cell(key, column) != (shown := cell(value)):
                    table.update_cell(key, column, shown, update_width=True)
        else:
            table.add_row(*map(cell, values), key=key)
    if selected is not None and selected in table.rows:
        table.move_cursor(row=table.get_row_index(selected))
