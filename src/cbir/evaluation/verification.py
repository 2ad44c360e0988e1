"""Verification metrics: balanced pairs, ROC AUC, TPR at fixed FPR, threshold choice, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cbir.retrieval.distances import get_distance
from cbir.retrieval.ranking import cosine_to_score, l2_normalize


def make_pairs(labels: np.ndarray, n_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced positive / negative pairs of distinct images from one split.

    Half the pairs share a label, half do not; no image is paired with itself and no pair
    appears twice. Indices refer to `labels`, so pairs built from separate splits cannot leak.

    Args:
        labels: int array, shape (n,), at least one class with two images and two classes.
        n_pairs: total number of pairs (even; odd numbers are rounded down).
    Returns:
        (first, second, is_match): int64, int64 and bool arrays of shape (n_pairs // 2 * 2,).
    Raises:
        ValueError: not enough distinct positive or negative pairs exist.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    half = n_pairs // 2
    classes, counts = np.unique(labels, return_counts=True)
    n_positive_available = int((counts * (counts - 1) // 2).sum())
    n_negative_available = int((len(labels) ** 2 - (counts**2).sum()) // 2)
    if half > n_positive_available or half > n_negative_available:
        raise ValueError(
            f"{half} positive and negative pairs requested; {n_positive_available} positive and "
            f"{n_negative_available} negative distinct pairs exist"
        )
    members = {c: np.flatnonzero(labels == c) for c in classes}
    weights = counts * (counts - 1) / max(n_positive_available * 2, 1)

    def draw(positive: bool, count: int) -> set[tuple[int, int]]:
        chosen: set[tuple[int, int]] = set()
        while len(chosen) < count:
            need = count - len(chosen)
            if positive:
                picked = rng.choice(classes, size=need, p=weights / weights.sum())
                for c in picked:
                    i, j = rng.choice(members[c], size=2, replace=False)
                    chosen.add((min(i, j), max(i, j)))
            else:
                i, j = rng.integers(0, len(labels), need), rng.integers(0, len(labels), need)
                for a, b in zip(i, j):
                    if labels[a] != labels[b]:
                        chosen.add((min(a, b), max(a, b)))
        return set(list(chosen)[:count])

    pairs = [(i, j, True) for i, j in sorted(draw(True, half))] + [(i, j, False) for i, j in sorted(draw(False, half))]
    order = rng.permutation(len(pairs))
    first = np.array([pairs[o][0] for o in order], np.int64)
    second = np.array([pairs[o][1] for o in order], np.int64)
    is_match = np.array([pairs[o][2] for o in order], bool)
    return first, second, is_match


def pair_scores(vectors: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Match scores ``(1 + cos) / 2`` ∈ [0, 1] of the pairs (first[i], second[i]) of rows of `vectors` (n, dim)."""
    unit = l2_normalize(vectors)
    return cosine_to_score(np.sum(unit[first] * unit[second], axis=1))


def _tpr_key(fpr: float) -> str:
    """``tpr_at_fpr_1pct`` for 0.01, ``tpr_at_fpr_01pct`` for 0.001, ``tpr_at_fpr_5pct`` for 0.05."""
    return f"tpr_at_fpr_{100 * fpr:g}pct".replace(".", "")


def pair_distances(
    features: np.ndarray, first: np.ndarray, second: np.ndarray, metric: str, chunk_size: int = 32
) -> np.ndarray:
    """Registry distance between the rows first[i] and second[i] of `features` (n, dim): float64 (n_pairs,).

    Computed as the diagonals of `chunk_size` × `chunk_size` blocks, so a compiled kernel is called
    n_pairs / chunk_size times rather than once per pair.

    Raises:
        ValueError: unknown metric, or `first` and `second` of different lengths.
    """
    distance = get_distance(metric)
    if len(first) != len(second):
        raise ValueError(f"need as many first as second rows, got {len(first)} and {len(second)}")
    features = np.asarray(features, np.float64)
    out = np.empty(len(first), np.float64)
    for start in range(0, len(first), chunk_size):
        a, b = first[start : start + chunk_size], second[start : start + chunk_size]
        out[start : start + len(a)] = np.diagonal(distance.pairwise(features[a], features[b]))
    return out


def distance_roc_auc(is_match: np.ndarray, distances: np.ndarray) -> float:
    """ROC AUC of matches scored by −distance (`roc_auc_score`); a NaN distance (e.g. Dice of two
    all-zero codes) counts as farther than every finite one."""
    from sklearn.metrics import roc_auc_score

    distances = np.asarray(distances, np.float64)
    finite = distances[np.isfinite(distances)]
    distances = np.where(np.isnan(distances), (finite.max() if finite.size else 0.0) + 1.0, distances)
    return float(roc_auc_score(is_match, -distances))


def pair_roc_auc(features: np.ndarray, labels: np.ndarray, metric: str, n_pairs: int = 2000, seed: int = 0) -> float:
    """ROC AUC of "same label" pairs against "different label" pairs (`make_pairs`), scored by −distance.

    Raises:
        ValueError: unknown metric, or too few images for the pairs (see `make_pairs`).
    """
    first, second, is_match = make_pairs(labels, n_pairs, seed=seed)
    return distance_roc_auc(is_match, pair_distances(features, first, second, metric))


def roc_report(scores: np.ndarray, is_match: np.ndarray, target_fprs: Sequence[float] = (0.01, 0.001)) -> dict:
    """ROC curve, ROC AUC (`sklearn.metrics.roc_auc_score`) and TPR at fixed FPRs.

    Args:
        scores: float (n_pairs,), larger = more likely a match.
        is_match: bool (n_pairs,).
    Returns:
        ``roc_auc``; ``fpr``, ``tpr``, ``thresholds`` (from `sklearn.metrics.roc_curve`); and
        ``tpr_at_fpr_<p>pct``: the highest TPR whose FPR does not exceed f = p % (``tpr_at_fpr_1pct``
        for 0.01, ``tpr_at_fpr_01pct`` for 0.001, as in ``metrics.json``).
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, thresholds = roc_curve(is_match, scores)
    report = {"roc_auc": float(roc_auc_score(is_match, scores)), "fpr": fpr, "tpr": tpr, "thresholds": thresholds}
    for target in target_fprs:
        report[_tpr_key(target)] = float(tpr[fpr <= target].max(initial=0.0))
    return report


def choose_threshold(scores: np.ndarray, is_match: np.ndarray, method: str | float = "youden") -> float:
    """A decision threshold chosen on validation pairs (predict a match when score ≥ threshold).

    Args:
        method: "youden" (maximise TPR − FPR, Youden's J) or a float target FPR (the threshold
            with the highest TPR whose FPR ≤ target).
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(is_match, scores)
    finite = np.isfinite(thresholds)
    if method == "youden":
        best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    else:
        allowed = finite & (fpr <= float(method))
        if not allowed.any():
            raise ValueError(f"no threshold reaches FPR <= {method}")
        best = int(np.flatnonzero(allowed)[np.argmax(tpr[allowed])])
    return float(thresholds[best])


def confusion_at_threshold(scores: np.ndarray, is_match: np.ndarray, threshold: float) -> np.ndarray:
    """2×2 confusion matrix (`sklearn.metrics.confusion_matrix`), rows true [non-match, match],
    columns predicted, predicting a match when score ≥ `threshold`."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(is_match, bool), np.asarray(scores) >= threshold, labels=[False, True])
