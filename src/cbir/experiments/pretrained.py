"""Notebook 01, pretrained-CNN search: features of every backbone × pooling, their comparison, a similarity matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.evaluation.retrieval import metric_label
from cbir.experiments.common import retrieval_table
from cbir.features import FeatureExtractor
from cbir.models.backbones import get_backbone
from cbir.models.efficientnet_lite import WeightsUnavailableError
from cbir.retrieval.ranking import cosine_to_score, l2_normalize
from cbir.retrieval.whitening import PCAWhitening
from cbir.viz.plots import plot_similarity_matrix

CONFIGURATION_KEYS = ("backbone", "weights", "layer", "input_size", "poolings")
"""What a configuration may say; only ``backbone`` and ``poolings`` are required (weights default
``"imagenet"``, layer the backbone's last convolutional output, input size its ImageNet size)."""

FEATURE_SET = ("backbone", "layer", "pooling", "input")
"""The parts of a feature set's key: backbone label (``_random`` for random weights), layer, pooling
(the layer's name for a vector output, ``gem+pcaw`` for PCA-whitened GeM), input size in pixels."""

FeatureSets = dict[tuple[str, str, str, int], tuple[np.ndarray, np.ndarray]]


def extract_configurations(
    configurations: Sequence[Mapping],
    queries: ImageSet,
    database: ImageSet,
    whitening_dim: int = 0,
    leave_one_out: bool = False,
    batch_size: int = 64,
) -> tuple[FeatureSets, list[tuple[str, str, str]]]:
    """Features of the queries and the database for every backbone × layer × pooling.

    One forward pass per configuration computes all its poolings (`FeatureExtractor`, cached on
    disk). A configuration whose ImageNet weights cannot be had is skipped and reported. With
    `whitening_dim`, every configuration that has GeM also gets PCA-whitened GeM (`PCAWhitening`
    fit on the database, at most min(whitening_dim, dim, n_database) components).

    Args:
        configurations: mappings with keys from `CONFIGURATION_KEYS`, e.g. ``{"backbone": "vgg16",
            "weights": None, "layer": "block5_conv3", "input_size": 32, "poolings": ["gem"]}``;
            ``poolings: [None]`` for a layer that outputs a vector (VGG16 ``fc2``).
        leave_one_out: the queries are the database; their features are not computed twice.
    Returns:
        (features, unavailable): (backbone label, layer, pooling, input size) → (query features
        (n_queries, dim), database features (n_database, dim)), float32; and (label, layer,
        reason) for each configuration skipped.
    Raises:
        ValueError: a configuration with an unknown key, without backbone or poolings, or with
            a name the backbone / pooling registries do not know.
    """
    features: FeatureSets = {}
    unavailable = []
    for configuration in configurations:
        unknown = set(configuration) - set(CONFIGURATION_KEYS)
        if unknown or not {"backbone", "poolings"} <= set(configuration):
            raise ValueError(
                f"configuration {dict(configuration)}: needs backbone and poolings, keys in {CONFIGURATION_KEYS}"
            )
        weights = configuration.get("weights", "imagenet")
        label = configuration["backbone"] + ("" if weights else "_random")
        try:
            backbone = get_backbone(
                configuration["backbone"],
                layer=configuration.get("layer"),
                weights=weights,
                input_size=configuration.get("input_size"),
            )
        except WeightsUnavailableError as error:
            unavailable.append((label, configuration.get("layer"), str(error).splitlines()[0]))
            continue
        poolings = list(configuration["poolings"])
        vector = poolings == [None]
        extractor = FeatureExtractor(backbone, pooling=None if vector else poolings, batch_size=batch_size)
        names = [backbone.layer] if vector else poolings
        query_parts = {} if leave_one_out else _by_name(extractor.extract(queries), names)
        database_parts = _by_name(extractor.extract(database), names)
        query_parts = database_parts if leave_one_out else query_parts
        size = backbone.input_size[0]
        for name in names:
            features[(label, backbone.layer, name, size)] = (query_parts[name], database_parts[name])
        if whitening_dim and "gem" in names:
            dim = min(whitening_dim, database_parts["gem"].shape[1], len(database))
            whitening = PCAWhitening(dim).fit(database_parts["gem"])
            features[(label, backbone.layer, "gem+pcaw", size)] = (
                whitening.transform(query_parts["gem"]),
                whitening.transform(database_parts["gem"]),
            )
    return features, unavailable


def _by_name(extracted: np.ndarray | dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    """`FeatureExtractor.extract`'s result as {name: features}, also for a single array."""
    return extracted if isinstance(extracted, dict) else {names[0]: extracted}


def compare_configurations(
    features: FeatureSets,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    exclude_self: bool = False,
    ks: Sequence[int] = (1, 10, 100),
) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Retrieval quality of every feature set (`retrieval_table`), best first.

    Args:
        features: from `extract_configurations`.
        exclude_self: leave-one-out (the queries are the database).
    Returns:
        (table, curves): one row per feature set sorted by decreasing mAP, columns
        `FEATURE_SET`, ``dim``, ``mAP`` and ``P@k`` for each k; and the interpolated
        precision–recall curves keyed ``"<backbone> <pooling>"``.
    """
    table, curves = retrieval_table(features, query_labels, database_labels, ks=ks, exclude_self=exclude_self)
    keys = pd.DataFrame(table.pop("name").tolist(), columns=list(FEATURE_SET))
    table = pd.concat([keys, table], axis=1).sort_values(metric_label("map"), ascending=False).reset_index(drop=True)
    return table, {f"{key[0]} {key[2]}": curve for key, curve in curves.items()}


def feature_set(features: FeatureSets, row: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The (query, database) features of one row of `compare_configurations`' table."""
    return features[tuple(row[part] for part in FEATURE_SET)]


def similarity_figure(
    query_features: np.ndarray, queries: ImageSet, per_class: int, rng: np.random.Generator, max_images: int = 20
) -> plt.Figure:
    """The score matrix ``(1 + cos) / 2`` of a few queries (`plot_similarity_matrix`), ordered by class.

    Args:
        query_features: float (len(queries), dim), row-aligned with `queries`.
        per_class: images drawn (with `rng`, without replacement) from each class that has as
            many; smaller classes are left out.
        max_images: at most this many, the first classes first.
    Returns:
        a heatmap Figure, rows and columns labelled with the class names (12 characters).
    """
    labels = queries.labels
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in range(len(queries.class_names))
            if (labels == c).sum() >= per_class
        ][:max_images]
    )
    small = l2_normalize(query_features[chosen])
    names = [queries.class_names[labels[i]][:12] for i in chosen]
    return plot_similarity_matrix(cosine_to_score(small @ small.T), names)


def summary_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``map_<backbone>_<pooling>``, ``p1_...`` and ``p10_...`` of every row of the comparison table
    (``+`` in a pooling name becomes ``_``: ``gem_pcaw``; a vector layer is named by the layer, ``fc2``).

    Raises:
        KeyError: the table lacks the P@1 or P@10 column.
    """
    summary = {}
    for row in table.to_dict("records"):
        name = row["pooling"].replace("+", "_")
        for key in ("map", "p1", "p10"):
            summary[f"{key}_{row['backbone']}_{name}"] = float(row[metric_label(key)])
    return summary


def summary_text(
    table: pd.DataFrame, unavailable: Sequence[tuple[str, str, str]], n_queries: int, n_database: int
) -> str:
    """The closing sentences of notebook 01: the best configuration, the random-weight floor and
    what could not run."""
    best = table.iloc[0]
    scores = ", ".join(f"{metric_label(key)} {best[metric_label(key)]:.4f}" for key in ("map", "p1", "p10"))
    lines = [
        f"{n_queries:,} queries x {n_database:,} database images. Best: {best['backbone']} {best['pooling']} {scores}."
    ]
    floor = table[table["backbone"].str.endswith("_random")]
    if len(floor):
        first, best_floor = floor.iloc[0], floor[metric_label("map")].max()
        lines.append(f"Random-weight floor ({first['backbone']} {first['pooling']}): mAP {best_floor:.4f}.")
    lines += [f"Not run: {label}/{layer} — {reason}" for label, layer, reason in unavailable]
    return "\n".join(lines)
