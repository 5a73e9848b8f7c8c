"""One dashboard chart: a title with the current value, over a sparkline of a minute."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from tui.metrics import Series


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    number = f"{value:.0f}" if value >= 100 or unit == "ms" else f"{value:.1f}"
    return number + (unit if unit in ("", "/s") else f" {unit}")


class Chart(Vertical):
    def __init__(self, key: str, series: Series) -> None:
        super().__init__(id=f"chart-{key}", classes="chart")
        self.series = series

    def compose(self) -> ComposeResult:
        yield Label(self._title(), classes="chart-title")
        yield Sparkline(list(self.series.points) or [0.0], summary_function=max)

    def _title(self) -> str:
        peak = max(self.series.points, default=0.0)
        now = _fmt(self.series.now, self.series.unit)
        return f"{self.series.label}: {now}  (max {_fmt(peak, self.series.unit)})"

    def refresh_from_series(self) -> None:
        self.query_one(Label).update(self._title())
        self.query_one(Sparkline).data = list(self.series.points) or [0.0]
