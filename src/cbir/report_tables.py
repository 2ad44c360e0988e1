"""Markdown tables of a run's numbers: the number format of the README's results, and a notebook's Summary
table of this run's headline numbers beside the published ones (`summary_table`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real


def _format(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 1000:  # 43,200 rather than 4.32e+04
        return f"{value:,.0f}"
    return f"{value:.4g}"


def summary_table(metrics: Mapping[str, float], rows: Sequence[tuple[str, str, float | str | None]]) -> str:
    """A notebook's Summary as Markdown: this run's headline numbers beside the published ones.

    Numbers are written as in the README's results (`render_results`): integers with thousands
    separators (``70,000``), other numbers from 1 000 up to the unit (``43,204``), the rest to 4
    significant digits (``0.5204``). A ``|`` in a text
    is escaped so that it cannot split a cell.

    Args:
        metrics: the mapping the notebook passes to `record_metrics` (metric name → finite number,
            without the notebook stem; NumPy scalars accepted), so that the table shows exactly what
            ``metrics.json`` receives.
        rows: ``(metric name, label, published)`` per table row, in order. `published` is a number
            comparable with ours (formatted the same way), a text (the paper's setting where it has
            no comparable figure), or None (shown as ``—``).
    Returns:
        ``| result | this run | published |`` and one line per row, ending in a newline. A row whose
        metric is not in `metrics` (a configuration that could not run, a dataset without that
        number) is left out; when no row is left, a one-line note says so instead of a table.
    Raises:
        ValueError: a value to show is not a finite real number (bools too).
    """

    def number(value: float, name: str) -> str:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ValueError(f"summary_table: {name} must be a finite number, got {value!r}")
        return _format(int(value) if isinstance(value, Integral) else float(value))

    def text(value: str) -> str:
        return value.replace("|", "\\|")

    present = [(key, label, published) for key, label, published in rows if key in metrics]
    if not present:
        return "_None of the headline numbers was recorded in this run: see the tables above._\n"
    lines = ["| result | this run | published |", "|---|---:|---|"]
    for key, label, published in present:
        if published is None:
            theirs = "—"
        else:
            theirs = text(published) if isinstance(published, str) else number(published, f"published {key}")
        lines.append(f"| {text(label)} | {number(metrics[key], key)} | {theirs} |")
    return "\n".join(lines) + "\n"
