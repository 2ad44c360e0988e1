"""Figures of the metric × architecture comparison (notebook 04): the grid of rank(p+) against rank(p−)
histograms (Efrat & Semiat 2017, Table 1), annotated heatmaps, triplet galleries. Each function returns a
matplotlib Figure and only draws what it is given (save it with `cbir.viz.plots.save_figure`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import LogNorm

from cbir.viz.plots import _frame, _show


def plot_rank_histograms(
    panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
    n_database: int,
    columns: int = 6,
    bins: int = 40,
    title: str = "Rank of p+ against rank of p−",
) -> plt.Figure:
    """A grid of 2-D histograms of (rank of p+, rank of p−), one panel per method, on one
    logarithmic colour scale; the line x = y separates the successes (above it: p+ nearer) from
    the failures (below).

    Args:
        panels: panel title → (positive ranks, negative ranks), int arrays of equal length, each in
            [0, n_database).
        n_database: the number of items ranked (the axes' extent).
        columns: panels per row; bins: bins per axis.
    Raises:
        ValueError: no panel.
    """
    if not panels:
        raise ValueError("no panel to draw")
    edges = np.linspace(0, max(n_database, 1), bins + 1)
    counts = {name: np.histogram2d(p, n, bins=[edges, edges])[0].T for name, (p, n) in panels.items()}
    peak = max(1.0, max(float(c.max()) for c in counts.values()))
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns + 1, 2.3 * rows + 0.6), squeeze=False)
    mesh = None
    for ax, (name, count) in zip(axes.flat, counts.items()):
        mesh = ax.pcolormesh(edges, edges, np.ma.masked_less(count, 1), norm=LogNorm(1, peak), cmap="viridis")
        ax.plot([0, n_database], [0, n_database], color="tab:red", linewidth=0.8)
        ax.set_title(name, fontsize=7)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
    for ax in axes.flat[len(counts) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("rank of p+", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("rank of p−", fontsize=7)
    figure.colorbar(mesh, ax=axes.ravel().tolist(), label="triplets (log scale)", shrink=0.6)
    figure.suptitle(title)
    return figure


def plot_metric_heatmap(
    values: pd.DataFrame,
    title: str,
    annotations: pd.DataFrame | None = None,
    label: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
) -> plt.Figure:
    """Heatmap of one score per architecture (rows) × metric (columns), each cell annotated with
    its value (3 decimals) or with the given `annotations` (strings of the same shape, e.g. intervals)."""
    rows, columns = values.shape
    figure, ax = plt.subplots(figsize=(1.05 * columns + 2.5, 0.62 * rows + 1.6))
    annotated = values.map(lambda v: f"{v:.3f}") if annotations is None else annotations
    sns.heatmap(
        values.astype(float),
        annot=annotated.to_numpy(),
        fmt="",
        cmap="viridis",
        vmin=vmin,
        vmax=vmax,
        ax=ax,
        annot_kws={"fontsize": 6},
        cbar_kws={"label": label or title},
    )
    ax.set_xlabel("metric")
    ax.set_ylabel("architecture")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    ax.tick_params(axis="y", rotation=0, labelsize=8)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_triplet_gallery(
    groups: Mapping[str, Sequence[tuple[Sequence[np.ndarray], Sequence[str]]]],
    title: str = "Triplets",
) -> plt.Figure:
    """One row per group (e.g. a region of the rank plane) of triplets, each shown as query, p+
    (framed green) and p− (framed red) with a title each.

    Args:
        groups: row label → triplets, each ((query, positive, negative) uint8 images, three titles);
            an empty group is drawn as a row saying so.
    Raises:
        ValueError: no group.
    """
    if not groups:
        raise ValueError("no group to draw")
    per_row = max(1, max(len(triplets) for triplets in groups.values()))
    figure, axes = plt.subplots(
        len(groups), 3 * per_row, figsize=(3 * per_row * 1.25, len(groups) * 1.5), squeeze=False
    )
    for row, (name, triplets) in enumerate(groups.items()):
        for ax in axes[row]:
            ax.axis("off")
        for index, (images, titles) in enumerate(triplets):
            for offset, (image, caption, colour) in enumerate(zip(images, titles, ("black", "tab:green", "tab:red"))):
                ax = axes[row, 3 * index + offset]
                ax.axis("on")
                _show(ax, image, caption)
                _frame(ax, colour)
        first = axes[row, 0]
        if not triplets:  # an empty frame that carries the row label
            first.axis("on")
            first.set_xticks([])
            first.set_yticks([])
            first.text(0.5, 0.5, "none", ha="center", va="center", fontsize=8, transform=first.transAxes)
        first.set_ylabel(name.replace(": ", "\n", 1), rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
