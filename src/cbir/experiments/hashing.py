"""Notebook 02, deep binary hashing (DLBHC): one head per code length, its evaluation, search latency."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.data.splits import split
from cbir.evaluation.retrieval import precision_within_radius, retrieval_metrics
from cbir.experiments.common import gem_features, metric_columns
from cbir.experiments.model_store import find_model, save_model, training_data_fingerprint
from cbir.models.dlbhc import build_hashing_head, classifier_view, encode
from cbir.retrieval.hamming import binarize, hamming_distances, pack_codes
from cbir.retrieval.hash_index import HashIndex
from cbir.viz.plots import plot_map_by_bits

PUBLISHED_MAP = {"QSMIH": {12: 0.842, 24: 0.873, 36: 0.863, 48: 0.860}}
"""mAP over the whole ranking on Fashion-MNIST (60 000 database / 10 000 queries), as published by QSMIH."""
PUBLISHED_CIFAR10_MAP1000 = {"DLBHC": {48: 0.8973}}
"""mAP@1000 on CIFAR-10 (Lin et al. 2015, fine-tuned AlexNet)."""
RANKINGS = {"Hamming": "hamming", "two-phase": "two_phase"}
"""Display name → the name in metric keys and `HashIndex.search` modes."""


@dataclass(frozen=True)
class HashRun:
    """One trained DLBHC head and what it gives.

    Attributes:
        bits: code length.
        model: the hashing head (`build_hashing_head`).
        history: Keras ``History.history`` of its classifier training.
        database_latent: float32 (n_database, bits), sigmoid activations in [0, 1].
        index: the database's packed codes and last-hidden-layer features (`HashIndex`).
        query_codes: uint64 (n_queries, ceil(bits / 64)), packed codes of the queries.
        query_hidden: float32 (n_queries, hidden_units[-1]), the queries' re-ranking features.
    """

    bits: int
    model: keras.Model
    history: dict[str, list[float]]
    database_latent: np.ndarray
    index: HashIndex
    query_codes: np.ndarray
    query_hidden: np.ndarray


def train_hash_heads(
    database: ImageSet,
    database_features: np.ndarray,
    query_features: np.ndarray,
    bits_list: Sequence[int],
    *,
    hidden_units: Sequence[int] = (1024,),
    dropout: float = 0.3,
    epochs: int = 12,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
    settings: Mapping | None = None,
) -> dict[int, HashRun]:
    """Train one DLBHC head per code length on cached backbone features, and encode everything.

    Each head (dense ReLU `hidden_units`, a sigmoid latent layer of `bits` units, softmax over
    the database's classes) is trained as a classifier only (cross-entropy, Adam) on the database
    but a stratified `val_fraction` that monitors training (`cbir.data.splits.split`), from the
    same seed (`keras.utils.set_random_seed(seed)` before each). Codes are the latent activations
    ≥ 0.5, the re-ranking features those of the last hidden layer (`cbir.models.dlbhc.encode`).

    Args:
        database: the database images, for their labels and class names.
        database_features: float32 (n_database, dim), row-aligned with `database`.
        query_features: float32 (n_queries, dim).
        settings: stored with each index (e.g. the backbone), together with ``bits``.
    Returns:
        bits → `HashRun`, in the order of `bits_list`.
    Raises:
        ValueError: a code length out of [1, 1024], an empty `hidden_units`, or a class too small
            to split.
    """
    runs = {}
    for bits in bits_list:
        model, history = train_hash_head(
            database,
            database_features,
            bits,
            hidden_units=hidden_units,
            dropout=dropout,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            val_fraction=val_fraction,
            seed=seed,
        )
        database_latent, database_hidden = encode(model, database_features)
        query_latent, query_hidden = encode(model, query_features)
        index = HashIndex(
            pack_codes(binarize(database_latent)), database_hidden, bits, {**(settings or {}), "bits": bits}
        )
        runs[bits] = HashRun(
            bits, model, history, database_latent, index, pack_codes(binarize(query_latent)), query_hidden
        )
    return runs


def train_hash_head(
    database: ImageSet,
    database_features: np.ndarray,
    bits: int,
    *,
    hidden_units: Sequence[int] = (1024,),
    dropout: float = 0.3,
    epochs: int = 12,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[keras.Model, dict[str, list[float]]]:
    """One DLBHC head of `bits` bits, trained as `train_hash_heads` trains each (its arguments):
    ``keras.utils.set_random_seed(seed)``, then the classifier on the database but a stratified
    `val_fraction`. The same arguments give the same weights, whatever was trained before.

    Returns:
        (the hashing head, Keras ``History.history``).
    """
    parts = split(database.labels, val_fraction=val_fraction, test_fraction=0.0, seed=seed)
    train_rows, val_rows = parts["train"], parts["val"]
    keras.utils.set_random_seed(seed)
    model = build_hashing_head(database_features.shape[1], bits, hidden_units, len(database.class_names), dropout)
    classifier = classifier_view(model)
    classifier.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history = classifier.fit(
        database_features[train_rows],
        database.labels[train_rows],
        validation_data=(database_features[val_rows], database.labels[val_rows]),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    return model, history.history


def hash_head_settings(
    database: ImageSet,
    backbone: str,
    input_size: int,
    bits: int,
    *,
    hidden_units: Sequence[int] = (1024,),
    dropout: float = 0.3,
    epochs: int = 12,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """What a DLBHC head's weights depend on: the key it is saved under (`cbir.experiments.model_store`).

    Args:
        database: the training images (fingerprinted with their labels).
        backbone, input_size: of the GeM features it is trained on.
        the rest: the keyword arguments of `train_hash_head`, with its defaults.
    """
    options = {
        "hidden_units": list(hidden_units),
        "dropout": dropout,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "val_fraction": val_fraction,
        "seed": seed,
    }
    return {
        "data": training_data_fingerprint(database),
        "n_train": len(database),
        "backbone": backbone,
        "input_size": input_size,
        "pooling": "gem",
        "bits": bits,
        **options,
    }


def save_hash_heads(runs: Mapping[int, HashRun], settings_by_bits: Mapping[int, Mapping]) -> dict[int, Path]:
    """Save each run's head under its settings (`hash_head_settings`): bits → the ``.keras`` path."""
    return {bits: save_model(run.model, "dlbhc", settings_by_bits[bits]) for bits, run in runs.items()}


def load_or_train_hash_head(
    database: ImageSet, backbone: str, input_size: int, bits: int, **options
) -> tuple[keras.Model, Path, dict, bool]:
    """The newest DLBHC head of `bits` bits saved for `database`'s images and labels and these
    features (by notebook 02, whatever its other settings), or one trained now and saved.

    Training takes the backbone's GeM features of `database` (`gem_features`, cached) and
    `train_hash_head` with `options` (its keyword arguments; the rest its defaults, which are
    notebook 02's), which seeds itself: the weights are those notebook 02 gets with the same settings.

    Returns:
        (head: features (n, dim) → ``latent`` and ``class_probabilities``; its path; its settings
        (`hash_head_settings`); True when it was loaded).
    Raises:
        TypeError: an option `train_hash_head` does not take.
    """
    settings = hash_head_settings(database, backbone, input_size, bits, **options)
    match = {key: settings[key] for key in ("data", "n_train", "backbone", "input_size", "pooling", "bits")}
    model, path, found = find_model("dlbhc", match)
    if model is not None:
        return model, path, found, True
    (features,) = gem_features(backbone, input_size, database)
    model, _ = train_hash_head(database, features, bits, **{key: settings[key] for key in _HEAD_ARGUMENTS})
    return model, save_model(model, "dlbhc", settings), settings, False


_HEAD_ARGUMENTS = ("hidden_units", "dropout", "epochs", "batch_size", "learning_rate", "val_fraction", "seed")


def near_binary_fraction(activations: np.ndarray, margin: float = 0.1) -> float:
    """Fraction of sigmoid activations within `margin` of 0 or 1 (below `margin` or above 1 − `margin`)."""
    activations = np.asarray(activations)
    return float(np.mean((activations < margin) | (activations > 1 - margin)))


@dataclass(frozen=True)
class CodeLengthEvaluation:
    """The rankings of every code length, evaluated on the whole database.

    Attributes:
        table: one row per code length: ``bits``, mAP / 11-pt mAP / mAP@1000 of the Hamming
            ranking, mAP of the two-phase ranking, ``P(r≤2)`` and the exhaustive-cosine mAP.
        results: ranking ("Hamming", "two-phase") → bits → `retrieval_metrics` result.
        cosine: `retrieval_metrics` of exhaustive cosine search on the backbone features.
        shortlist: L, the two-phase shortlist.
        ks: the precision@k cut-offs evaluated.
    """

    table: pd.DataFrame
    results: dict[str, dict[int, dict]]
    cosine: dict
    shortlist: int
    ks: tuple[int, ...]

    def figure(self, focus_bits: int, published: Mapping[str, Mapping[int, float]] | None = None) -> plt.Figure:
        """mAP by code length and precision@k at `focus_bits` (`plot_map_by_bits`)."""
        names = {"Hamming": "Hamming ranking", "two-phase": f"two-phase (L = {self.shortlist})"}
        rankings = {names[r]: {bits: result["map"] for bits, result in self.results[r].items()} for r in names}
        at_focus = {**{r: self.results[r][focus_bits] for r in names}, "cosine": self.cosine}
        precision = {name: {k: result[f"p{k}"] for k in self.ks} for name, result in at_focus.items()}
        reference = ("exhaustive cosine, backbone features", self.cosine["map"])
        return plot_map_by_bits(rankings, reference, precision, focus_bits, published)


def evaluate_code_lengths(
    runs: Mapping[int, HashRun],
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    query_features: np.ndarray,
    database_features: np.ndarray,
    shortlist: int,
    ks: Sequence[int] = (1, 10, 100),
) -> CodeLengthEvaluation:
    """Evaluate the Hamming and two-phase rankings of every code length over the whole database.

    Hamming: every database code ranked by Hamming distance, equal distances tied. Two-phase:
    the `shortlist` nearest codes re-ranked by cosine of the hidden features, then the rest in
    Hamming order (`HashIndex.ranking_levels`). Reference: exhaustive cosine of the backbone
    features. Metrics from `retrieval_metrics` (ks, and mAP@1000), plus the precision within
    Hamming radius 2.

    Args:
        runs: from `train_hash_heads`.
        query_features, database_features: float32 backbone features, (n_queries, dim), (n_database, dim).
    """
    ks = tuple(ks)
    rows, results = [], {"Hamming": {}, "two-phase": {}}
    for bits, run in runs.items():
        hamming, two_phase = code_rankings(run, query_labels, database_labels, shortlist, ks)
        results["Hamming"][bits], results["two-phase"][bits] = hamming, two_phase
        rows.append(
            {
                "bits": bits,
                **metric_columns(hamming, ("map", "map11", "map1000"), "Hamming"),
                **metric_columns(two_phase, ("map",), "two-phase"),
                "P(r≤2)": precision_within_radius(run.query_codes, query_labels, run.index.codes, database_labels, 2),
            }
        )
    cosine = retrieval_metrics(query_features, query_labels, database_features, database_labels, ks=ks, map_at=(1000,))
    table = pd.DataFrame(rows).assign(**{"mAP cosine (backbone)": cosine["map"]})
    return CodeLengthEvaluation(table, results, cosine, shortlist, ks)


def code_rankings(
    run: HashRun, query_labels: np.ndarray, database_labels: np.ndarray, shortlist: int, ks: tuple[int, ...]
) -> tuple[dict, dict]:
    """`retrieval_metrics` of one run's Hamming ranking and two-phase ranking (`shortlist` re-ranked by the
    hidden features), computed from integer levels. Returns (Hamming result, two-phase result)."""
    index, codes, hidden = run.index, run.query_codes, run.query_hidden
    options = {"ks": ks, "map_at": (1000,)}
    hamming = retrieval_metrics(
        None,
        query_labels,
        None,
        database_labels,
        levels_fn=lambda rows: hamming_distances(codes[rows], index.codes),
        n_levels=run.bits + 1,
        **options,
    )
    two_phase = retrieval_metrics(
        None,
        query_labels,
        None,
        database_labels,
        levels_fn=lambda rows: index.ranking_levels(codes[rows], hidden[rows], shortlist),
        n_levels=shortlist + run.bits + 1,
        **options,
    )
    return hamming, two_phase


def time_search_modes(
    index: HashIndex,
    query_codes: np.ndarray,
    query_features: np.ndarray,
    shortlist: int,
    n_queries: int = 1000,
    k: int = 10,
) -> pd.DataFrame:
    """Wall-clock time per query of each `HashIndex.search` mode, after a warm-up search of two
    queries (which loads the compiled Hamming kernel).

    Args:
        query_codes, query_features: packed codes (n, words) and float features (n, dim) of the queries.
        n_queries: the first min(n_queries, n) queries are searched in one batch per mode.
    Returns:
        DataFrame with one row per mode (``hamming``, ``two_phase``, ``cosine``), columns ``mode``
        and ``ms / query`` (milliseconds, float).
    """
    timed = np.arange(min(n_queries, len(query_codes)))
    rows = []
    for mode, options in (("hamming", {}), ("two_phase", {"shortlist": shortlist}), ("cosine", {})):
        index.search(query_codes[:2], query_features[:2], k=k, mode=mode, **options)
        start = time.perf_counter()
        index.search(query_codes[timed], query_features[timed], k=k, mode=mode, **options)
        rows.append({"mode": mode, "ms / query": (time.perf_counter() - start) / len(timed) * 1000})
    return pd.DataFrame(rows)


def summary_metrics(evaluation: CodeLengthEvaluation, near_binary: float, latency: pd.DataFrame) -> dict[str, float]:
    """The numbers notebook 02 records: ``map_cosine``, ``near_binary_fraction``, ``shortlist``; per
    code length ``map_hamming_<bits>``, ``map11_hamming_<bits>``, ``map1000_hamming_<bits>``,
    ``map_two_phase_<bits>``, ``precision_r2_<bits>``; per search mode ``latency_ms_<mode>``."""
    summary = {
        "map_cosine": evaluation.cosine["map"],
        "near_binary_fraction": near_binary,
        "shortlist": evaluation.shortlist,
    }
    for ranking, keys in (("Hamming", ("map", "map11", "map1000")), ("two-phase", ("map",))):
        for bits, result in evaluation.results[ranking].items():
            summary.update({f"{key}_{RANKINGS[ranking]}_{bits}": result[key] for key in keys})
    summary.update({f"precision_r2_{row['bits']}": row["P(r≤2)"] for row in evaluation.table.to_dict("records")})
    summary.update({f"latency_ms_{row['mode']}": row["ms / query"] for row in latency.to_dict("records")})
    return summary


def summary_text(evaluation: CodeLengthEvaluation, dataset: str, n_queries: int, n_database: int) -> str:
    """The closing lines of notebook 02: mAP per code length beside the published values of
    the same protocol (QSMIH on Fashion-MNIST, DLBHC's mAP@1000 on CIFAR-10)."""
    published = PUBLISHED_MAP if dataset == "fashion_mnist" else {}
    lines = [f"{dataset}, {n_queries:,} queries × {n_database:,} database images, mAP over the whole ranking:"]
    for bits, hamming in evaluation.results["Hamming"].items():
        two_phase = evaluation.results["two-phase"][bits]
        theirs = "; ".join(f"{name} {values[bits]:.3f}" for name, values in published.items() if bits in values)
        lines.append(
            f"  {bits:>3} bits: Hamming {hamming['map']:.4f}, two-phase {two_phase['map']:.4f}"
            + (f"  (published: {theirs})" if theirs else "")
        )
    lines.append(f"  exhaustive cosine on backbone features: {evaluation.cosine['map']:.4f}")
    for name, values in PUBLISHED_CIFAR10_MAP1000.items() if dataset == "cifar10" else ():
        for bits, value in values.items():
            if bits in evaluation.results["Hamming"]:
                ours = evaluation.results["Hamming"][bits]["map1000"]
                lines.append(f"  CIFAR-10 mAP@1000 at {bits} bits: ours {ours:.4f}, {name} (published) {value:.4f}")
    return "\n".join(lines)
