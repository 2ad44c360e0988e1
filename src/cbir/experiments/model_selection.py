"""Parameters chosen on validation data only, and the run-to-run spread of what is reported.

A setting is chosen by a score on validation pairs or images, never on the test split that reports the
result; the winner is then evaluated once on the test split. Trained results are reported as mean ±
standard deviation over seeds, because two trainings of the same setting differ by more than the
differences between many settings (issue 12). Used by notebooks 02 (DLBHC) and 03 (triplet embedding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.evaluation.retrieval import metric_label
from cbir.evaluation.verification import pair_scores, roc_report
from cbir.experiments import hashing, metric_learning
from cbir.experiments.common import retrieval_table


def embedding_factory(mode: str, features, image_sets, **options) -> Callable[[], keras.Model]:
    """A function that builds a fresh, untrained embedding network each time it is called: the model of
    `metric_learning.build_embedding` (same arguments), for `select_on_validation` and `embedding_seed_spread`."""
    return lambda: metric_learning.build_embedding(mode, features, image_sets, **options)[0]


def loss_grid(distances: Sequence[str], margins: Sequence[float]) -> list[dict]:
    """Every (distance, margin) setting of `TripletSemiHardLoss` to compare: ``{"distance", "margin"}`` dicts,
    distances outermost."""
    return [{"distance": distance, "margin": float(margin)} for distance in distances for margin in margins]


def setting_key(setting: Mapping) -> str:
    """The metric-key suffix of a loss setting: ``squared-L2_0.2``."""
    return f"{setting['distance']}_{setting['margin']:g}"


@dataclass
class Selection:
    """The outcome of `select_on_validation`.

    Attributes:
        table: one row per setting (grid order): ``distance``, ``margin``, ``val_roc_auc``,
            ``val_tpr_at_fpr_1pct``, ``active_triplets`` (last epoch), ``chosen`` (bool).
        setting: the chosen ``{"distance", "margin"}``; model: its trained embedding; history: its training history.
    """

    table: pd.DataFrame
    setting: dict
    model: keras.Model
    history: dict


def select_on_validation(
    build: Callable[[], keras.Model],
    inputs: Mapping[str, np.ndarray],
    train: ImageSet,
    validation: ImageSet,
    validation_pairs: tuple,
    grid: Sequence[Mapping],
    *,
    seed: int = 0,
    **training,
) -> Selection:
    """Model selection that never sees the test pairs: one embedding per loss setting of `grid`, each built
    fresh by `build` after seeding Keras with `seed` (the same initial weights and batches for every
    setting), trained by `metric_learning.train_embedding`, and scored by ROC AUC on the *validation* pairs;
    the highest wins (the first of equal scores).

    Args:
        build: makes an untrained embedding network (e.g. ``lambda: build_embedding(...)[0]``).
        inputs, train, validation: as `metric_learning.train_embedding`; validation_pairs: (first, second, is_match)
            indexing the validation rows (`evaluation_pairs`).
        grid: ``{"distance", "margin"}`` settings (`loss_grid`); training: the rest of `train_embedding`'s
            keyword arguments (epochs, steps_per_epoch, learning_rate, pk_batch).
    Returns:
        a `Selection`.
    Raises:
        ValueError: an empty grid (and whatever `train_embedding` raises for a bad setting).
    """
    if not grid:
        raise ValueError("the grid of loss settings is empty")
    first, second, is_match = validation_pairs
    rows, best = [], None
    for setting in grid:
        keras.utils.set_random_seed(seed)
        model = build()
        history = metric_learning.train_embedding(model, inputs, train, validation, seed=seed, **setting, **training)
        vectors = metric_learning.embed(model, inputs, ("validation",))["validation"]
        report = roc_report(pair_scores(vectors, first, second), is_match)
        rows.append(
            {
                **setting,
                "val_roc_auc": report["roc_auc"],
                "val_tpr_at_fpr_1pct": report["tpr_at_fpr_1pct"],
                "active_triplets": history["active_triplets"][-1],
            }
        )
        if best is None or report["roc_auc"] > best[0]:
            best = (report["roc_auc"], dict(setting), model, history)
    table = pd.DataFrame(rows)
    table["chosen"] = [row["distance"] == best[1]["distance"] and row["margin"] == best[1]["margin"] for row in rows]
    return Selection(table, best[1], best[2], best[3])


def embedding_seed_spread(
    build: Callable[[], keras.Model],
    inputs: Mapping[str, np.ndarray],
    train: ImageSet,
    validation: ImageSet,
    held_out_labels: np.ndarray,
    held_out_pairs: tuple,
    setting: Mapping,
    seeds: Sequence[int],
    trained: Mapping[int, keras.Model] | None = None,
    **training,
) -> pd.DataFrame:
    """Run-to-run spread of one loss setting: the held-out pair ROC AUC and the retrieval mAP (held-out
    queries against the training rows) of an embedding trained with each of `seeds`.

    Args:
        build, inputs, train, validation, training: as `select_on_validation`.
        held_out_labels: labels of the ``"held_out"`` rows; held_out_pairs: (first, second, is_match) indexing them.
        setting: ``{"distance", "margin"}``; seeds: one training per seed (Keras seeded with it, and the
            P×K batches).
        trained: seed → an embedding already trained with this setting and seed (not trained again).
    Returns:
        one row per seed: ``seed``, ``roc_auc``, ``map``.
    """
    first, second, is_match = held_out_pairs
    rows = []
    for seed in seeds:
        model = (trained or {}).get(seed)
        if model is None:
            keras.utils.set_random_seed(seed)
            model = build()
            metric_learning.train_embedding(model, inputs, train, validation, seed=seed, **setting, **training)
        vectors = metric_learning.embed(model, inputs, ("held_out", "train"))
        report = roc_report(pair_scores(vectors["held_out"], first, second), is_match)
        table, _ = retrieval_table({"trained": (vectors["held_out"], vectors["train"])}, held_out_labels, train.labels)
        rows.append({"seed": seed, "roc_auc": report["roc_auc"], "map": float(table[metric_label("map")].iloc[0])})
    return pd.DataFrame(rows)


def selection_metrics(selection: Selection, spread: pd.DataFrame, prefix: str = "trained") -> dict[str, float]:
    """The numbers a notebook records about its choice and spread: ``val_roc_auc_<distance>_<margin>`` per
    setting, ``chosen_margin``, ``n_seeds``, and ``roc_auc_<prefix>_mean`` / ``_std`` and ``map_<prefix>_mean`` /
    ``_std`` over `spread`'s seeds (`embedding_seed_spread`; standard deviation with ddof = 1, 0 for one seed)."""
    metrics = {f"val_roc_auc_{setting_key(row)}": row["val_roc_auc"] for row in selection.table.to_dict("records")}
    metrics |= {"chosen_margin": selection.setting["margin"], "n_seeds": len(spread)}
    for column in ("roc_auc", "map"):
        std = float(spread[column].std(ddof=1)) if len(spread) > 1 else 0.0
        metrics |= {f"{column}_{prefix}_mean": float(spread[column].mean()), f"{column}_{prefix}_std": std}
    return metrics


def hashing_seed_spread(
    database: ImageSet,
    database_features: np.ndarray,
    query_features: np.ndarray,
    query_labels: np.ndarray,
    bits: int,
    seeds: Sequence[int],
    shortlist: int,
    trained: Mapping[int, hashing.HashRun] | None = None,
    **options,
) -> pd.DataFrame:
    """Run-to-run spread of DLBHC at one code length: a head trained with each of `seeds` (`train_hash_heads`
    with `options`), its Hamming and two-phase mAP over the whole database (`evaluate_code_lengths`).

    Args:
        database, database_features, query_features, query_labels: as `train_hash_heads` / `evaluate_code_lengths`.
        trained: seed → a run already trained at `bits` with that seed and these options (not trained again).
    Returns:
        one row per seed: ``seed``, ``map_hamming``, ``map_two_phase``.
    """
    rows = []
    for seed in seeds:
        run = (trained or {}).get(seed)
        if run is None:
            runs = hashing.train_hash_heads(database, database_features, query_features, [bits], seed=seed, **options)
            run = runs[bits]
        hamming, two_phase = hashing.code_rankings(run, query_labels, database.labels, shortlist, (1,))
        rows.append({"seed": seed, "map_hamming": hamming["map"], "map_two_phase": two_phase["map"]})
    return pd.DataFrame(rows)
