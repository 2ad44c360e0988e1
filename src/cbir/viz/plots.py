"""Figures shared by the notebooks. Each function returns a matplotlib Figure; `save_figure`
writes it atomically. Nothing here computes results: it only draws what it is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from cbir._io import atomic_path
from cbir.data.images import ImageSet


def save_figure(figure: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save `figure` to `path` (format from the extension) atomically and return the path."""
    path = Path(path)
    with atomic_path(path, suffix=path.suffix) as temporary:
        figure.savefig(temporary, dpi=dpi, bbox_inches="tight")
    return path


def _show(ax: plt.Axes, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _frame(ax: plt.Axes, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(2.5)


def plot_class_distribution(image_sets: Mapping[str, ImageSet]) -> plt.Figure:
    """Bar chart of images per class, one bar group per split (labelled images only)."""
    import pandas as pd

    rows = []
    for split_name, image_set in image_sets.items():
        for class_name, count in zip(image_set.class_names, image_set.class_counts()):
            rows.append({"class": class_name, "split": split_name, "images": int(count)})
    table = pd.DataFrame(rows)
    n_classes = table["class"].nunique()
    figure, ax = plt.subplots(figsize=(max(6, 0.45 * n_classes + 2), 4))
    if n_classes > 40:  # too many bars to read: show the distribution of counts instead
        sns.histplot(data=table, x="images", hue="split", ax=ax, multiple="dodge")
        ax.set_xlabel("images per class")
    else:
        sns.barplot(data=table, x="class", y="images", hue="split", ax=ax)
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    ax.set_title("Class distribution")
    figure.tight_layout()
    return figure


def plot_sample_grid(image_set: ImageSet, per_class: int = 8, max_classes: int = 20, seed: int = 0) -> plt.Figure:
    """A grid with one row per class (at most `max_classes`) and `per_class` random samples."""
    rng = np.random.default_rng(seed)
    classes = [c for c in range(len(image_set.class_names)) if np.any(image_set.labels == c)][:max_classes]
    figure, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 1.1, len(classes) * 1.15), squeeze=False)
    for row, class_index in enumerate(classes):
        members = np.flatnonzero(image_set.labels == class_index)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        images = image_set.load_images(chosen)
        for column in range(per_class):
            ax = axes[row, column]
            if column < len(images):
                _show(ax, images[column])
            else:
                ax.axis("off")
        axes[row, 0].set_ylabel(image_set.class_names[class_index], rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(f"Samples per class: {image_set.name}")
    figure.tight_layout()
    return figure


def plot_image_statistics(statistics) -> plt.Figure:
    """Histograms of image height/width and channel means from `cbir.experiments.exploration.image_statistics`."""
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    sizes = statistics.melt(value_vars=["height", "width"], var_name="dimension", value_name="pixels")
    sns.histplot(data=sizes, x="pixels", hue="dimension", ax=axes[0], discrete=True, multiple="dodge")
    axes[0].set_title("Image size")
    channel_means = statistics.melt(
        value_vars=["mean_r", "mean_g", "mean_b"], var_name="channel", value_name="channel mean"
    )
    sns.histplot(
        data=channel_means,
        x="channel mean",
        hue="channel",
        ax=axes[1],
        element="step",
        bins=40,
        palette={"mean_r": "tab:red", "mean_g": "tab:green", "mean_b": "tab:blue"},
    )
    axes[1].set_title("Per-image channel mean (0–255)")
    sns.histplot(data=statistics, x="std", ax=axes[2], bins=40)
    axes[2].set_title("Per-image pixel standard deviation")
    figure.tight_layout()
    return figure


def plot_split_sizes(sizes: Mapping[str, int]) -> plt.Figure:
    """Horizontal bars: number of images in each split, labelled with the count."""
    figure, ax = plt.subplots(figsize=(6, 0.5 * len(sizes) + 1))
    names, counts = list(sizes), [int(sizes[name]) for name in sizes]
    bars = ax.barh(names, counts, color=sns.color_palette("deep", len(names)))
    ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title("Split sizes")
    ax.set_xlim(0, max(counts + [1]) * 1.2)
    figure.tight_layout()
    return figure


def plot_augmentation_preview(images: Sequence[np.ndarray], augmented: Sequence[Sequence[np.ndarray]]) -> plt.Figure:
    """Each row: an original image, then its augmented variants.

    Args:
        images: n original uint8 images.
        augmented: n lists of variants (float or uint8, 0–255).
    """
    columns = 1 + max(len(v) for v in augmented)
    figure, axes = plt.subplots(len(images), columns, figsize=(columns * 1.3, len(images) * 1.35), squeeze=False)
    for row, (original, variants) in enumerate(zip(images, augmented)):
        _show(axes[row, 0], original, "original" if row == 0 else None)
        for column, variant in enumerate(variants, start=1):
            _show(
                axes[row, column],
                np.clip(np.asarray(variant), 0, 255).astype(np.uint8),
                f"augmented {column}" if row == 0 else None,
            )
    figure.tight_layout()
    return figure


THUMBNAIL_SIDE = 256  # pixels: image files are shrunk to this while decoding for figures (bounded memory)


def plot_search_results(queries: ImageSet, database: ImageSet, scores: np.ndarray, indices: np.ndarray) -> plt.Figure:
    """One row per query: the query, then its results best first, each titled with its score.

    A query is titled with its class name (first 14 characters) when both sets are labelled,
    else with its file name ("query" for an unlabelled in-memory image). When both are labelled,
    each result is framed green if it shares the query's class, red if not. Image files are
    decoded at most `THUMBNAIL_SIDE` pixels a side, so huge files cost little memory.

    Args:
        queries: the n queries shown, e.g. ``image_set.subset(rows)``.
        database: the set that was searched; `indices` point into it.
        scores: float (n, k), in [0, 1], best first, as a search returns them.
        indices: int (n, k) into `database`.
    Returns:
        a Figure of n rows and k + 1 columns.
    Raises:
        ValueError: `scores` and `indices` differ in shape, or do not have one row per query.
    """
    scores, indices = np.asarray(scores), np.asarray(indices)
    if scores.shape != indices.shape or scores.ndim != 2 or len(indices) != len(queries):
        raise ValueError(f"need scores and indices of shape ({len(queries)}, k), got {scores.shape}, {indices.shape}")
    n, k = indices.shape
    labelled = bool(np.all(queries.labels >= 0) and np.all(database.labels[indices] >= 0))
    relevant = database.labels[indices] == queries.labels[:, None]
    figure, axes = plt.subplots(n, k + 1, figsize=(1.45 * (k + 1), 1.6 * n), squeeze=False)
    for row, query in enumerate(queries.load_images(max_side=THUMBNAIL_SIDE)):
        if labelled:
            title = queries.class_names[queries.labels[row]][:14]
        else:
            title = Path(queries.paths[row]).name if queries.is_files else "query"
        _show(axes[row, 0], query, title)
        _frame(axes[row, 0], "black")
        for column, image in enumerate(database.load_images(indices[row], max_side=THUMBNAIL_SIDE)):
            _show(axes[row, column + 1], image, f"{scores[row, column]:.3f}")
            if labelled:
                _frame(axes[row, column + 1], "tab:green" if relevant[row, column] else "tab:red")
    figure.tight_layout()
    return figure


def plot_similarity_matrix(
    similarity: np.ndarray, labels: Sequence[str] | None = None, title: str = "Similarity score"
) -> plt.Figure:
    """Heatmap of an (n, n) similarity-score matrix, rows and columns labelled."""
    n = len(similarity)
    figure, ax = plt.subplots(figsize=(0.32 * n + 2.5, 0.32 * n + 1.5))
    sns.heatmap(
        similarity,
        ax=ax,
        cmap="viridis",
        square=True,
        xticklabels=labels or False,
        yticklabels=labels or False,
        cbar_kws={"label": title},
    )
    ax.tick_params(labelsize=6)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_precision_recall(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "Precision–recall"
) -> plt.Figure:
    """Interpolated precision–recall curves, one line per method: {name: (recall, precision)}."""
    figure, ax = plt.subplots(figsize=(6, 4.5))
    for name, (recall, precision) in curves.items():
        ax.plot(recall, precision, marker=".", label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("interpolated precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_training_curves(history: Mapping[str, Sequence[float]], title: str = "Training") -> plt.Figure:
    """One panel per metric of a Keras ``History.history``; ``val_<name>`` drawn with ``<name>``."""
    names = [name for name in history if not name.startswith("val_")]
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.3), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], marker=".", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker=".", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], title: str = "ROC") -> plt.Figure:
    """ROC curves {name: (fpr, tpr, auc)} on linear and logarithmic FPR axes."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, (fpr, tpr, auc) in curves.items():
        for ax in axes:
            ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
    axes[0].plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes[1].set_xscale("log")
    axes[1].set_xlim(1e-4, 1)
    for ax in axes:
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], title: str = "Confusion matrix") -> plt.Figure:
    """Heatmap of a confusion matrix with counts and row percentages."""
    figure, ax = plt.subplots(figsize=(4.6, 3.8))
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    annotations = np.array([[f"{c:,}\n{s:.1%}" for c, s in zip(row_c, row_s)] for row_c, row_s in zip(matrix, share)])
    sns.heatmap(
        share,
        annot=annotations,
        fmt="",
        cmap="Blues",
        vmin=0,
        vmax=1,
        xticklabels=labels,
        yticklabels=labels,
        ax=ax,
        cbar=False,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_embedding_map(
    points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str = "t-SNE of the embedding"
) -> plt.Figure:
    """Scatter of 2-D points coloured by class."""
    figure, ax = plt.subplots(figsize=(7.5, 6.5))
    palette = sns.color_palette("tab20" if len(class_names) > 10 else "tab10", len(class_names))
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            ax.scatter(points[mask, 0], points[mask, 1], s=4, color=palette[c % len(palette)], label=name)
    if len(class_names) <= 20:
        ax.legend(markerscale=4, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    figure.tight_layout()
    return figure


def plot_score_bars(values: Mapping[str, float], title: str, xlabel: str = "mAP") -> plt.Figure:
    """Horizontal bars of scores in [0, 1], one per method ({name: score}, drawn top to bottom), labelled."""
    import pandas as pd

    table = pd.DataFrame({"method": [str(name) for name in values.keys()], xlabel: list(values.values())})
    figure, ax = plt.subplots(figsize=(8, 0.35 * len(table) + 1.5))
    sns.barplot(data=table, y="method", x=xlabel, ax=ax, color="tab:blue")
    ax.bar_label(ax.containers[0], fmt="%.3f", padding=2, fontsize=8)
    ax.set_title(title)
    ax.set_xlim(0, 1)
    figure.tight_layout()
    return figure


def plot_latent_activations(activations: np.ndarray, threshold: float = 0.5) -> plt.Figure:
    """Sigmoid activations of a hashing layer, float (n, bits) in [0, 1]: their histogram, and the
    bit balance (the fraction of the n codes with each bit ≥ `threshold`, ideally 0.5)."""
    activations = np.asarray(activations)
    bits = activations.shape[1]
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    sns.histplot(activations.ravel(), bins=50, ax=axes[0], stat="probability")
    axes[0].set_title(f"Latent activations, {bits} bits ({activations.size:,} values)")
    axes[0].set_xlabel("sigmoid activation")
    axes[1].bar(np.arange(bits), (activations >= threshold).mean(axis=0), color="tab:blue")
    axes[1].axhline(0.5, color="grey", linestyle=":")
    axes[1].set_title("Bit balance: fraction of database codes with bit = 1")
    axes[1].set_xlabel("bit")
    figure.tight_layout()
    return figure


def plot_map_by_bits(
    map_by_bits: Mapping[str, Mapping[int, float]],
    reference: tuple[str, float],
    precision_at_k: Mapping[str, Mapping[int, float]],
    focus_bits: int,
    published: Mapping[str, Mapping[int, float]] | None = None,
) -> plt.Figure:
    """Left: mAP against code length, one line per ranking ({name: {bits: mAP}}), a dashed line
    for the `reference` (name, mAP) and dotted squares for `published` values. Right: precision@k
    against k at `focus_bits`, one line per ranking ({name: {k: precision}}), log-scaled k."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4))
    for name, values in map_by_bits.items():
        axes[0].plot(list(values), list(values.values()), marker="o", label=name)
    axes[0].axhline(reference[1], color="grey", linestyle="--", label=reference[0])
    for name, values in (published or {}).items():
        axes[0].plot(list(values), list(values.values()), marker="s", linestyle=":", label=f"{name} (published)")
    bits = sorted({b for values in map_by_bits.values() for b in values})
    axes[0].set_xscale("log", base=2)
    axes[0].set_xticks(bits, [str(b) for b in bits])
    axes[0].set(xlabel="bits", ylabel="mAP (whole ranking)", title="mAP by code length")
    for name, values in precision_at_k.items():
        axes[1].plot(list(values), list(values.values()), marker=".", label=name)
    axes[1].set_xscale("log")
    axes[1].set(xlabel="k", ylabel="precision@k", title=f"Precision@k, {focus_bits} bits")
    for ax in axes:
        ax.legend(fontsize=8)
    figure.tight_layout()
    return figure
