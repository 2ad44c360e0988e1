"""Steps every retrieval notebook shares: the database and query sets, metric tables and nearest neighbours."""

from __future__ import annotations

import platform
from collections.abc import Hashable, Mapping, Sequence

import keras
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.data.sources import load
from cbir.data.splits import retrieval_split
from cbir.evaluation.retrieval import metric_label, retrieval_metrics
from cbir.features import FeatureExtractor
from cbir.models.backbones import get_backbone
from cbir.retrieval.exact import exact_search


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`) and, with `deterministic`,
    ask TensorFlow for deterministic kernels (`tf.config.experimental.enable_op_determinism`): then a
    training run repeats bit for bit on the same machine and software, at some cost in speed. It does not
    make runs agree across machines, thread counts or library versions (floating-point sums are summed in
    another order there), and an op without a deterministic kernel raises instead of running."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def software_versions() -> str:
    """``"Python 3.11.9, TensorFlow 2.18.0, Keras 3.8.0, NumPy 2.1.3"``: what a notebook ran with."""
    import tensorflow as tf

    return (
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"NumPy {np.__version__}"
    )


def retrieval_sets(
    dataset: str, data_dir: str = "", n_database: int = 0, n_queries: int = 0, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """The (database, queries) of the retrieval protocol (`cbir.data.splits.retrieval_split`).

    The database is the training split and the queries the labelled held-out split, each a
    seeded random subset of `n_database` / `n_queries` images (0: all). For ``dataset="folder"``
    (a class-per-subfolder tree at `data_dir`) the queries *are* the database: every image
    queries all the others (leave-one-out; evaluate with ``exclude_self=True``).

    Returns:
        (database, queries) image sets; the same object twice for ``"folder"``.
    Raises:
        ValueError: an unknown dataset, or ``"folder"`` without `data_dir`.
        FileNotFoundError: the dataset is not found and cannot be downloaded.
    """
    if dataset == "folder":
        database = load("folder", data_dir or None)["all"].sample(n_database, seed)
        return database, database
    database, queries = retrieval_split(load(dataset, data_dir or None), seed=seed)
    return database.sample(n_database, seed), queries.sample(n_queries, seed)


def gem_features(backbone: str, input_size: int, *image_sets: ImageSet, batch_size: int = 64) -> list[np.ndarray]:
    """GeM-pooled features of a pretrained backbone (ImageNet weights, last convolutional output)
    for each image set, in order: the features notebooks 02 and 03 build on, cached on disk
    (`FeatureExtractor.extract`).

    Args:
        backbone: a name of `cbir.models.backbones.BACKBONES`; input_size: square input in pixels.
    Returns:
        one float32 array (len(image_set), channels) per image set.
    Raises:
        ValueError: an unknown backbone; WeightsUnavailableError: its weights cannot be had.
    """
    extractor = FeatureExtractor(get_backbone(backbone, input_size=input_size), pooling="gem", batch_size=batch_size)
    return [extractor.extract(image_set) for image_set in image_sets]


def metric_columns(result: Mapping[str, float], keys: Sequence[str], suffix: str = "") -> dict[str, float]:
    """``{display label: value}`` of the `keys` of a `retrieval_metrics` result, e.g. ``{"P@10": 0.8}``.

    Args:
        suffix: appended to every label after a space (``"Hamming"`` gives ``"mAP Hamming"``).
    Raises:
        ValueError: a key that is not a retrieval metric name; KeyError: one `result` lacks.
    """
    return {f"{metric_label(key)} {suffix}".rstrip(): float(result[key]) for key in keys}


def retrieval_table(
    candidates: Mapping[Hashable, tuple[np.ndarray, np.ndarray]],
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    ks: Sequence[int] = (1, 10),
    exclude_self: bool = False,
) -> tuple[pd.DataFrame, dict[Hashable, tuple[np.ndarray, np.ndarray]]]:
    """Retrieval quality of several feature sets on the same queries and database.

    Args:
        candidates: name → (query features (n_queries, dim), database features (n_database, dim)),
            ranked by cosine similarity; the names may be tuples.
        query_labels, database_labels: int (n_queries,), (n_database,); relevant = same label.
        ks: precision@k cut-offs.
        exclude_self: the queries are the database (leave-one-out).
    Returns:
        (table, curves): one row per candidate, in the given order, columns ``name``, ``dim``,
        ``mAP`` and ``P@k`` (`metric_label` of the keys ``map``, ``p<k>``); and each candidate's
        interpolated precision–recall curve, (recall levels, precision), for `plot_precision_recall`.
    """
    rows, curves = [], {}
    keys = ["map", *(f"p{k}" for k in ks)]
    for name, (query_features, database_features) in candidates.items():
        result = retrieval_metrics(
            query_features, query_labels, database_features, database_labels, ks=ks, exclude_self=exclude_self
        )
        rows.append({"name": name, "dim": database_features.shape[1], **metric_columns(result, keys)})
        curves[name] = result["pr_curve"]
    return pd.DataFrame(rows), curves


def nearest_neighbours(
    query_features: np.ndarray, database_features: np.ndarray, k: int = 5, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-k (`cbir.retrieval.exact.exact_search`), optionally leaving out one
    database item per query (the query itself, in a leave-one-out search).

    Args:
        query_features: float (n_queries, dim); database_features: float (n_database, dim).
        exclude: int (n_queries,), the database index to leave out of each query's results.
    Returns:
        (scores, indices): float32 in [0, 1] and int64, each (n_queries, min(k, n_database - 1 if
        exclude is given else n_database)), best first, ties by lower index.
    Raises:
        ValueError: as `exact_search`.
    """
    if exclude is None:
        return exact_search(query_features, database_features, k=k)
    scores, indices = exact_search(query_features, database_features, k=k + 1)
    keep = indices != np.asarray(exclude)[:, None]
    length = min(k, len(database_features) - 1)
    return (
        np.stack([row[mask][:length] for row, mask in zip(scores, keep)]),
        np.stack([row[mask][:length] for row, mask in zip(indices, keep)]),
    )
