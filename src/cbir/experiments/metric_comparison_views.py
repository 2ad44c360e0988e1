"""Notebook 04's views of the triplet scores (`cbir.experiments.metric_comparison`): the regions of the
rank plane and their galleries, the grid of rank histograms, the heatmaps, and the summary.

Regions (Efrat & Semiat 2017), from two rank thresholds, near < far: **A** p+ near and p− far (the
metric agrees with the labels), **B** both near, **D** both far (the metric cannot tell), **C** p+ far
and p− near (it contradicts them). "Near" is a rank below `near_rank`, "far" at or above `far_rank`;
triplets between the thresholds belong to no region.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.experiments.metric_comparison import METRICS, TripletScores
from cbir.viz.comparison import plot_metric_heatmap, plot_rank_histograms, plot_triplet_gallery

REGIONS = {"A": "p+ near, p− far", "B": "both near", "C": "p+ far, p− near", "D": "both far"}
STUDY = (
    "Efrat & Semiat (2017), after Wang et al. (CVPR 2014): VGG16 (ImageNet) with sqeuclidean and hamming "
    "best, about 60 % of triplets succeeding when ranking all images"
)
"""The published finding this notebook is compared with."""
ALL_ARCHITECTURES_METRICS = ("sqeuclidean", "hamming")
"""The metrics shown for every architecture in the rank grid (the default architecture shows all)."""


def assign_regions(positive_rank: np.ndarray, negative_rank: np.ndarray, near_rank: int, far_rank: int) -> np.ndarray:
    """The region of each triplet: ``"A"``, ``"B"``, ``"C"``, ``"D"`` (see the module docstring), or
    ``""`` when a rank lies between the thresholds.

    Args:
        positive_rank, negative_rank: int, (n_triplets,).
        near_rank: a rank below it is near; far_rank: a rank at or above it is far.
    Returns:
        str array ``<U1``, (n_triplets,).
    Raises:
        ValueError: unless 0 < near_rank ≤ far_rank.
    """
    if not 0 < near_rank <= far_rank:
        raise ValueError(f"need 0 < near_rank <= far_rank, got {near_rank} and {far_rank}")
    positive_rank, negative_rank = np.asarray(positive_rank), np.asarray(negative_rank)
    near_p, far_p = positive_rank < near_rank, positive_rank >= far_rank
    near_n, far_n = negative_rank < near_rank, negative_rank >= far_rank
    regions = np.full(len(positive_rank), "", "<U1")
    for name, mask in (("A", near_p & far_n), ("B", near_p & near_n), ("C", far_p & near_n), ("D", far_p & far_n)):
        regions[mask] = name
    return regions


def rank_panels(scores: TripletScores, default_architecture: str) -> list[tuple[str, str]]:
    """The (architecture, metric) panels of the rank grid: every metric of `default_architecture`,
    then `ALL_ARCHITECTURES_METRICS` of every other architecture (those that were scored)."""
    panels = [(default_architecture, m) for m in scores.metrics if (default_architecture, m) in scores.ranks]
    for architecture in scores.architectures:
        if architecture != default_architecture:
            panels += [(architecture, m) for m in ALL_ARCHITECTURES_METRICS if (architecture, m) in scores.ranks]
    return panels


def region_table(
    scores: TripletScores, panels: Sequence[tuple[str, str]], near_rank: int, far_rank: int, difficulty: str
) -> pd.DataFrame:
    """The share of triplets in each region (`assign_regions`) per (architecture, metric) panel.

    Returns:
        columns ``architecture``, ``metric``, ``A``, ``B``, ``C``, ``D`` and ``none`` (shares summing to 1).
    """
    rows = []
    for architecture, metric in panels:
        ranks = scores.ranks[(architecture, metric)][difficulty]
        regions = assign_regions(ranks.positive_rank, ranks.negative_rank, near_rank, far_rank)
        shares = {name: float(np.mean(regions == name)) for name in REGIONS}
        rows.append({"architecture": architecture, "metric": metric, **shares, "none": float(np.mean(regions == ""))})
    return pd.DataFrame(rows)


def rank_grid_figure(scores: TripletScores, panels: Sequence[tuple[str, str]], difficulty: str) -> plt.Figure:
    """`plot_rank_histograms` of the panels, each titled with its architecture, metric and success rate."""
    histograms = {}
    for architecture, metric in panels:
        ranks = scores.ranks[(architecture, metric)][difficulty]
        title = f"{architecture}\n{metric}: {ranks.success.mean():.1%}"
        histograms[title] = (ranks.positive_rank, ranks.negative_rank)
    title = f"Rank of p+ against rank of p−, {difficulty} triplets (above the line: success)"
    return plot_rank_histograms(histograms, scores.n_database, title=title)


def heatmap_figures(table: pd.DataFrame, difficulty: str) -> dict[str, plt.Figure]:
    """Heatmaps architecture × metric of a `comparison_table`: ``"success"`` (of `difficulty`,
    annotated with its interval), ``"roc_auc"`` and ``"map"``."""
    architectures = list(dict.fromkeys(table["architecture"]))
    metrics = [m for m in METRICS if m in set(table["metric"])]

    def grid(column: str) -> pd.DataFrame:
        return table.pivot(index="architecture", columns="metric", values=column).loc[architectures, metrics]

    success, low, high = grid(f"success {difficulty}"), grid(f"low {difficulty}"), grid(f"high {difficulty}")
    text = (
        success.map(lambda v: f"{v:.3f}")
        + "\n["
        + low.map(lambda v: f"{v:.3f}")
        + ", "
        + high.map(lambda v: f"{v:.3f}")
        + "]"
    )
    return {
        "success": plot_metric_heatmap(
            success, f"Success rate, {difficulty} triplets (95 % interval)", text, "success"
        ),
        "roc_auc": plot_metric_heatmap(grid("ROC AUC"), "Pair ROC AUC", label="ROC AUC"),
        "map": plot_metric_heatmap(grid("mAP"), "mAP (whole database)", label="mAP"),
    }


def region_gallery_figure(
    scores: TripletScores,
    queries: ImageSet,
    database: ImageSet,
    architecture: str,
    metric: str,
    difficulty: str,
    near_rank: int,
    far_rank: int,
    per_region: int = 3,
    seed: int = 0,
) -> plt.Figure:
    """`per_region` triplets drawn (seeded) from each region of one architecture × metric, shown as
    query, p+ and p− with their ranks (`plot_triplet_gallery`)."""
    ranks, triplets = scores.ranks[(architecture, metric)][difficulty], scores.triplets[difficulty]
    regions = assign_regions(ranks.positive_rank, ranks.negative_rank, near_rank, far_rank)
    rng = np.random.default_rng(seed)
    groups = {}
    for name, meaning in REGIONS.items():
        members = np.flatnonzero(regions == name)
        chosen = np.sort(rng.choice(members, min(per_region, len(members)), replace=False))
        groups[f"{name}: {meaning}"] = [
            (
                [
                    queries.load_images([triplets.queries[t]])[0],
                    *database.load_images([triplets.positives[t], triplets.negatives[t]]),
                ],
                ["query", f"p+ rank {ranks.positive_rank[t]:,}", f"p− rank {ranks.negative_rank[t]:,}"],
            )
            for t in chosen
        ]
    title = f"{architecture} · {metric}, {difficulty} triplets (near: rank < {near_rank:,}, far: ≥ {far_rank:,})"
    return plot_triplet_gallery(groups, title)


def summary_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The numbers notebook 04 records, per architecture × metric of a `comparison_table`:
    ``success_<arch>_<metric>`` (hard triplets), ``success_easy_<arch>_<metric>``,
    ``roc_auc_<arch>_<metric>`` and ``map_<arch>_<metric>`` (those the table has)."""
    summary = {}
    for row in table.to_dict("records"):
        key = f"{row['architecture']}_{row['metric']}"
        for name, column in (
            ("success", "success hard"),
            ("success_easy", "success easy"),
            ("roc_auc", "ROC AUC"),
            ("map", "mAP"),
        ):
            if column in row and pd.notna(row[column]):
                summary[f"{name}_{key}"] = float(row[column])
    return summary


def summary_text(
    table: pd.DataFrame,
    tests: pd.DataFrame,
    skipped: Sequence[tuple[str, str]],
    learned: pd.DataFrame,
    n_queries: int,
    n_database: int,
) -> str:
    """The closing lines of notebook 04: the best architecture × metric with its numbers; how the
    study's winners (sqeuclidean, hamming) place for that architecture, with the Holm-adjusted
    McNemar p-value against its best metric (`tests`: `mcnemar_table` of the headline difficulty);
    the study's finding; the best metric of every architecture; the learned models and what was skipped."""
    difficulty = "hard" if "success hard" in table.columns else "easy"
    column = f"success {difficulty}"
    best = table.iloc[0]
    lines = [
        f"{n_queries:,} queries, {n_database:,} database images ranked for every triplet.",
        f"Best on {difficulty} triplets: {best['architecture']} with {best['metric']}: success {best[column]:.1%} "
        f"[{best[f'low {difficulty}']:.1%}, {best[f'high {difficulty}']:.1%}], pair ROC AUC {best['ROC AUC']:.4f}, "
        f"mAP {best['mAP']:.4f}.",
    ]
    if "success easy" in table.columns and difficulty == "hard":
        easiest = table.sort_values("success easy", ascending=False, kind="stable").iloc[0]
        lines.append(
            f"Best on easy triplets: {easiest['architecture']} with {easiest['metric']}: {easiest['success easy']:.1%}."
        )
    own = table[table["architecture"] == best["architecture"]].reset_index(drop=True)
    compared = tests[tests["architecture"] == best["architecture"]]
    against = compared.set_index("other")["p Holm"]
    placed = []
    for metric in ALL_ARCHITECTURES_METRICS:
        place = own.index[own["metric"] == metric]
        if len(place):
            test = (
                f"McNemar vs {compared['best'].iloc[0]}: p Holm {against[metric]:.2g}" if metric in against else "best"
            )
            placed.append(f"{metric} {own.loc[place[0], column]:.1%} ({place[0] + 1} of {len(own)}; {test})")
    if placed:
        lines.append(f"The study's winners for {best['architecture']}: " + ", ".join(placed) + ".")
    lines.append(
        f"Study: {STUDY}. Here the triplets follow labels, not human judgement: the level differs, compare "
        "which metrics win and by how much."
    )
    best_by_architecture = table.groupby("architecture", sort=False).first()
    lines.append(
        "Best metric per architecture: "
        + "; ".join(f"{a} {r['metric']} {r[column]:.1%}" for a, r in best_by_architecture.iterrows())
        + "."
    )
    lines += [f"Learned model {r['name']}: {r['source']} ({r['path']})." for r in learned.to_dict("records")]
    lines += [f"Skipped {name}: {reason}" for name, reason in skipped]
    return "\n".join(lines)
