"""What a benchmark hands `herald bench`: figures, each beside the baseline
measured in the same run, and the ratio between them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured figure: `value` in `unit` (e.g. 53.1 "commands/s", 412.0
    "ms p99"), beside `baseline_value` of `baseline` (what the store, the
    broker or the framework alone does, measured in the same run, in the same
    unit). `ratio` is value ÷ baseline: read it with `goal` (e.g. "≥ 0.3×"
    for a rate, "≤ 1.2×" for a latency)."""

    path: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    goal: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {**asdict(self), "ratio": None if ratio is None else round(ratio, 3)}


@dataclass
class Result:
    """One benchmark's run: its figures, the sizes it ran with, and notes
    (anything the table cannot hold: breakdowns, memory, warnings)."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    sizes: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(results: list[Result]) -> list[str]:
    """The results as one aligned table: path, figure, baseline, ratio, goal."""
    rows = [("bench", "path", "now", "baseline in the same run", "ratio", "goal")]
    for result in results:
        for f in result.figures:
            ratio = f.ratio
            rows.append(
                (
                    result.name,
                    f.path,
                    f"{_number(f.value)} {f.unit}",
                    "—"
                    if f.baseline is None
                    else f"{f.baseline}: {_number(f.baseline_value or 0.0)}",
                    "—" if ratio is None else f"{ratio:.2f}×",
                    f.goal or "—",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return [line.rstrip() for line in lines]


def print_result(result: Result, **context: Any) -> None:
    """A benchmark's own entry point (`python -m bench.x`): its table and notes."""
    print()
    if context:
        print("; ".join(f"{k}: {v}" for k, v in context.items()))
    print(f"sizes: {result.sizes}")
    for line in table([result]):
        print(line)
    for note in result.notes:
        print(f"  {note}")
