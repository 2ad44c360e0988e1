"""Notebook 03, metric learning: the embedding network, its semi-hard triplet training, ROC and threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cbir import config
from cbir.data.images import ImageSet
from cbir.data.pipeline import to_array
from cbir.data.splits import split
from cbir.evaluation.retrieval import metric_label
from cbir.evaluation.verification import choose_threshold, confusion_at_threshold, make_pairs, pair_scores, roc_report
from cbir.experiments.common import gem_features, retrieval_table
from cbir.experiments.model_store import find_model, save_model, training_data_fingerprint
from cbir.models.backbones import get_backbone
from cbir.models.embedding import build_embedding_model, build_projection_head, build_siamese_model
from cbir.models.losses import ActiveTripletFraction, TripletSemiHardLoss
from cbir.models.sampling import pk_dataset
from cbir.testing import make_tiny_imagenet_fixture
from cbir.viz.plots import plot_embedding_map
from cbir.viz.projector import export_projector, tsne_2d

EMBEDDINGS = {"untrained": "untrained embedding", "backbone": "{backbone} GeM features", "trained": "trained embedding"}
"""The embeddings compared, by role (the suffix of their metric keys: ``roc_auc_trained``), and
their display names: the randomly initialised embedding, the pretrained backbone's GeM features
(the projection head's input), the trained embedding."""
ROC_COLUMNS = {"roc_auc": "ROC AUC", "tpr_at_fpr_1pct": "TPR@FPR=1%", "tpr_at_fpr_01pct": "TPR@FPR=0.1%"}
"""`roc_report` key → the column of `roc_comparison`'s table."""


def embedding_name(role: str, backbone: str) -> str:
    """The display name of an embedding role of `EMBEDDINGS` (``"backbone"`` → ``"efficientnet_lite0 GeM features"``).

    Raises:
        ValueError: an unknown role.
    """
    if role not in EMBEDDINGS:
        raise ValueError(f"unknown embedding role {role!r}; expected one of {sorted(EMBEDDINGS)}")
    return EMBEDDINGS[role].format(backbone=backbone)


def tiny_imagenet_fixture(seed: int = 0) -> Path:
    """A generated miniature of Tiny ImageNet in its published layout (`make_tiny_imagenet_fixture`:
    4 classes, 24 training and 12 validation images each), under ``CACHE_DIR/fixtures``, for smoke runs."""
    root = config.CACHE_DIR / "fixtures" / "tiny-imagenet-200"
    return make_tiny_imagenet_fixture(root, n_classes=4, train_per_class=24, val_per_class=12, seed=seed)


def build_embedding(
    mode: str,
    features: Mapping[str, np.ndarray],
    image_sets: Mapping[str, ImageSet],
    *,
    backbone: str,
    input_size: int,
    embedding_dim: int = 128,
    hidden_units: int = 512,
    trainable_layers: int = 0,
) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """The embedding network of a training mode, and its inputs for each split.

    ``"features"``: a projection head (`build_projection_head`) on the cached backbone features,
    which are its inputs (CPU). ``"end_to_end"``: augmentation, the `backbone` (last
    `trainable_layers` fine-tuned), GeM and the head (`build_embedding_model`) on the images,
    resized to `input_size` and held in memory (GPU).

    Args:
        features: split name → float32 backbone features (n, dim).
        image_sets: the same split names → their images.
    Returns:
        (model, inputs): the Keras model, (batch, input) → unit vectors (batch, embedding_dim);
        split name → its input array (features, or uint8 images (n, input_size, input_size, 3)).
    Raises:
        ValueError: an unknown mode.
    """
    if mode == "features":
        model = build_projection_head(next(iter(features.values())).shape[1], embedding_dim, hidden_units)
        return model, dict(features)
    if mode == "end_to_end":
        model = build_embedding_model(
            get_backbone(backbone, input_size=input_size),
            embedding_dim,
            augment=True,
            trainable_layers=trainable_layers,
            hidden_units=hidden_units,
        )
        return model, {name: to_array(s, (input_size, input_size)) for name, s in image_sets.items()}
    raise ValueError(f"mode must be 'features' or 'end_to_end', got {mode!r}")


def embed(
    model: keras.Model, inputs: Mapping[str, np.ndarray], splits: Sequence[str] = ("validation", "held_out")
) -> dict[str, np.ndarray]:
    """The embeddings of each of `splits` (``model.predict``, batches of 256): split name → float32
    (n, embedding_dim), unit rows for the models of `build_embedding`."""
    return {name: model.predict(inputs[name], batch_size=256, verbose=0) for name in splits}


def train_embedding(
    model: keras.Model,
    inputs: Mapping[str, np.ndarray],
    train: ImageSet,
    validation: ImageSet,
    *,
    margin: float = 0.2,
    distance: str = "squared-L2",
    epochs: int = 12,
    steps_per_epoch: int = 150,
    learning_rate: float = 1e-3,
    pk_batch: Sequence[int] = (10, 16),
    seed: int = 0,
) -> dict[str, list[float]]:
    """Train `model` with the semi-hard triplet loss on class-balanced P×K batches (FaceNet).

    Batches hold K images of each of P classes, (P, K) = `pk_batch` (P at most the number of
    classes) (`pk_dataset`, seeded with `seed`; validation with `seed + 1`, a tenth as many
    steps); Adam; the active-triplet fraction is logged beside the loss (`ActiveTripletFraction`).

    Args:
        inputs: ``"train"`` and ``"validation"`` → model inputs, row-aligned with `train` / `validation`.
        margin, distance: of `TripletSemiHardLoss`.
    Returns:
        Keras ``History.history``: ``loss``, ``active_triplets`` and their ``val_`` versions per epoch.
    Raises:
        ValueError: a negative margin or an unknown distance.
    """
    p_classes, k_per_class = pk_batch
    p = min(p_classes, len(train.class_names))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=TripletSemiHardLoss(margin=margin, distance_metric=distance),
        metrics=[ActiveTripletFraction(margin=margin, distance_metric=distance)],
    )
    history = model.fit(
        pk_dataset(inputs["train"], train.labels, p, k_per_class, seed=seed),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        validation_data=pk_dataset(inputs["validation"], validation.labels, p, k_per_class, seed=seed + 1),
        validation_steps=max(1, steps_per_epoch // 10),
        shuffle=False,  # P×K batches are already random
        verbose=2,
    )
    return history.history


def evaluation_pairs(image_sets: Mapping[str, ImageSet], n_pairs: int, seed: int = 0) -> dict[str, tuple]:
    """Balanced positive / negative pairs drawn within each split (`make_pairs`, seeded), at most
    min(`n_pairs`, 2 × the split's size), so that no image is shared between splits.

    Returns:
        split name → (first, second, is_match): int64, int64 and bool arrays, shape (n_pairs,).
    Raises:
        ValueError: a split has too few distinct positive or negative pairs.
    """
    return {name: make_pairs(s.labels, min(n_pairs, len(s) * 2), seed=seed) for name, s in image_sets.items()}


def roc_comparison(
    vectors: Mapping[str, np.ndarray], pairs: tuple, backbone: str
) -> tuple[pd.DataFrame, dict[str, dict]]:
    """ROC of several embeddings on the same pairs, scored ``(1 + cos) / 2`` (`pair_scores`, `roc_report`).

    Args:
        vectors: role (a key of `EMBEDDINGS`) → float (n, dim), the rows the pairs index.
        pairs: (first, second, is_match) from `make_pairs`.
        backbone: the backbone's name, for the display names.
    Returns:
        (table, reports): one row per embedding, indexed by role, columns ``embedding`` (display
        name) and the `ROC_COLUMNS` (ROC AUC, TPR at FPR 1 % and 0.1 %); each role's `roc_report`.
    Raises:
        ValueError: an unknown role.
    """
    first, second, is_match = pairs
    reports = {role: roc_report(pair_scores(v, first, second), is_match) for role, v in vectors.items()}
    rows = {
        role: {"embedding": embedding_name(role, backbone), **{ROC_COLUMNS[k]: report[k] for k in ROC_COLUMNS}}
        for role, report in reports.items()
    }
    return pd.DataFrame.from_dict(rows, orient="index"), reports


def retrieval_comparison(
    candidates: Mapping[str, tuple[np.ndarray, np.ndarray]],
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    backbone: str,
    ks: Sequence[int] = (1, 10),
) -> pd.DataFrame:
    """Retrieval quality of embeddings (`cbir.experiments.common.retrieval_table`), indexed by role.

    Args:
        candidates: role (a key of `EMBEDDINGS`) → (query vectors, database vectors).
    Returns:
        one row per role: ``embedding`` (display name), ``dim``, ``mAP`` and ``P@k``.
    Raises:
        ValueError: an unknown role.
    """
    table, _ = retrieval_table(candidates, query_labels, database_labels, ks=ks)
    table = table.set_index("name").rename_axis(None)
    return table.assign(embedding=[embedding_name(role, backbone) for role in table.index])[
        ["embedding", *table.columns]
    ]


def check_siamese(
    embedding_model: keras.Model, inputs: np.ndarray, vectors: np.ndarray, pairs: tuple, n: int = 256
) -> float:
    """Check that the Siamese model around `embedding_model` (`build_siamese_model`: the same
    network applied to both inputs) scores the first `n` pairs as `pair_scores` of its embeddings does.

    Args:
        inputs: the embedding's inputs for the split the pairs index; vectors: its embeddings (n, dim).
    Returns:
        the largest absolute difference.
    Raises:
        ValueError: a difference above 1e-4 (one network, so the two must agree).
    """
    first, second, _ = pairs
    first, second = first[:n], second[:n]
    predicted = build_siamese_model(embedding_model).predict([inputs[first], inputs[second]], verbose=0)[:, 0]
    difference = float(np.max(np.abs(predicted - pair_scores(vectors, first, second)), initial=0.0))
    if difference > 1e-4:
        raise ValueError(
            f"Siamese scores differ from the embedding's pair scores by {difference:.2e} (expected ≤ 1e-4)"
        )
    return difference


def validation_threshold(
    vectors: Mapping[str, np.ndarray], pairs: Mapping[str, tuple]
) -> tuple[float, np.ndarray, float]:
    """The match threshold maximising Youden's J on the ``"validation"`` pairs, applied to the
    ``"held_out"`` pairs.

    Args:
        vectors, pairs: split name → embeddings (n, dim) / (first, second, is_match) of that split.
    Returns:
        (threshold in [0, 1], 2×2 int confusion matrix of the held-out pairs (rows true
        [non-match, match], columns predicted), held-out pair accuracy).
    """
    first, second, is_match = pairs["validation"]
    threshold = choose_threshold(pair_scores(vectors["validation"], first, second), is_match, "youden")
    first, second, is_match = pairs["held_out"]
    matrix = confusion_at_threshold(pair_scores(vectors["held_out"], first, second), is_match, threshold)
    return threshold, matrix, float(np.trace(matrix) / matrix.sum())


def embedding_views(
    vectors: np.ndarray,
    image_set: ImageSet,
    rng: np.random.Generator,
    directory: str | Path,
    tsne_points: int = 2000,
    projector_points: int = 1000,
    seed: int = 0,
) -> tuple[plt.Figure, Path]:
    """A t-SNE map (`tsne_2d`) of at most `tsne_points` embeddings drawn with `rng`, and the first
    `projector_points` of them exported for the Embedding Projector (`export_projector`, with thumbnails).

    Args:
        vectors: float (n, dim), row-aligned with `image_set`.
    Returns:
        (figure, directory of the projector files).
    """
    shown = np.sort(rng.choice(len(image_set), min(tsne_points, len(image_set)), replace=False))
    points = tsne_2d(vectors[shown], seed=seed)
    figure = plot_embedding_map(points, image_set.labels[shown], image_set.class_names)
    exported = shown[:projector_points]
    names = [image_set.class_names[c] for c in image_set.labels[exported]]
    return figure, export_projector(directory, vectors[exported], names, images=image_set.load_images(exported))


def summary_metrics(
    reports: Mapping[str, dict], retrieval: pd.DataFrame, threshold: float, accuracy: float, n_test_pairs: int
) -> dict[str, float]:
    """The numbers notebook 03 records: held-out ROC AUC of each role (``roc_auc_trained``,
    ``roc_auc_untrained``, ``roc_auc_backbone``), TPR at FPR 1 % and 0.1 % of the trained
    embedding, the validation threshold and held-out pair accuracy, retrieval mAP and P@1 of the
    trained embedding and mAP of the backbone features, and the number of held-out pairs.

    Args:
        reports: from `roc_comparison`; retrieval: from `retrieval_comparison`.
    """
    return {
        **{f"roc_auc_{role}": reports[role]["roc_auc"] for role in ("trained", "untrained", "backbone")},
        "tpr_at_fpr_1pct_trained": reports["trained"]["tpr_at_fpr_1pct"],
        "tpr_at_fpr_01pct_trained": reports["trained"]["tpr_at_fpr_01pct"],
        "pair_accuracy_trained": float(accuracy),
        "threshold": threshold,
        "map_trained": float(retrieval.loc["trained", metric_label("map")]),
        "p1_trained": float(retrieval.loc["trained", metric_label("p1")]),
        "map_backbone": float(retrieval.loc["backbone", metric_label("map")]),
        "n_test_pairs": int(n_test_pairs),
    }


EMBEDDING_DEFAULTS = {
    "head": {"embedding_dim": 128, "hidden_units": 512},
    "triplet": {"margin": 0.2, "distance": "squared-L2"},
    "training": {"epochs": 12, "steps_per_epoch": 150, "learning_rate": 1e-3},
}
"""The defaults of `build_embedding` (head) and `train_embedding` (triplet loss, training) that
`embedding_settings` fills in: a setting left out is recorded with the value training uses."""


def embedding_settings(
    train: ImageSet,
    backbone: str,
    input_size: int,
    *,
    mode: str = "features",
    trainable_layers: int = 0,
    head: Mapping | None = None,
    triplet: Mapping | None = None,
    pk_batch: Sequence[int] = (10, 16),
    training: Mapping | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """What notebook 03's trained embedding depends on: the key it is saved under (`cbir.experiments.model_store`).

    Args:
        train: the training images before the validation split (fingerprinted with their labels).
        the rest: notebook 03's parameters of the same names (``head``: `build_embedding`'s
            embedding_dim / hidden_units; ``triplet``: margin / distance; ``training``: epochs /
            steps_per_epoch / learning_rate), each dict completed with `EMBEDDING_DEFAULTS`.
    """
    return {
        "data": training_data_fingerprint(train),
        "n_train": len(train),
        "backbone": backbone,
        "input_size": input_size,
        "mode": mode,
        "trainable_layers": trainable_layers,
        "head": {**EMBEDDING_DEFAULTS["head"], **(head or {})},
        "triplet": {**EMBEDDING_DEFAULTS["triplet"], **(triplet or {})},
        "training": {**EMBEDDING_DEFAULTS["training"], **(training or {})},
        "pk_batch": list(pk_batch),
        "val_fraction": val_fraction,
        "seed": seed,
    }


def save_embedding(model: keras.Model, settings: Mapping) -> Path:
    """Save a trained embedding under its `embedding_settings`; returns the ``.keras`` path."""
    return save_model(model, "triplet_embedding", settings)


def load_or_train_embedding(
    train: ImageSet, backbone: str, input_size: int, **options
) -> tuple[keras.Model, Path, dict, bool]:
    """The newest ``mode="features"`` embedding saved for `train`'s images and labels and these
    features (by notebook 03, whatever its other settings), or one trained now and saved.

    Trained as notebook 03 trains it, in the same order of random draws: the Keras seed, the
    backbone's GeM features of `train` (`gem_features`), the stratified validation split, the
    projection head (`build_embedding`) and `train_embedding`; so the weights are those 03 gets
    with the same settings.

    Args:
        options: keyword arguments of `embedding_settings` (head, triplet, pk_batch, training,
            val_fraction, seed; its defaults are notebook 03's).
    Returns:
        (model: cached features (n, dim) → unit embeddings; its path; its settings; True when loaded).
    Raises:
        ValueError: options with another mode than ``"features"``.
    """
    settings = embedding_settings(train, backbone, input_size, **options)
    if settings["mode"] != "features":
        raise ValueError(f"only a 'features' embedding can be trained here, got mode {settings['mode']!r}")
    match = {key: settings[key] for key in ("data", "n_train", "backbone", "input_size", "mode")}
    model, path, found = find_model("triplet_embedding", match)
    if model is not None:
        return model, path, found, True
    keras.utils.set_random_seed(settings["seed"])
    (features,) = gem_features(backbone, input_size, train)
    parts = split(train.labels, val_fraction=settings["val_fraction"], test_fraction=0.0, seed=settings["seed"])
    inputs = {"train": features[parts["train"]], "validation": features[parts["val"]]}
    sets = {"train": train.subset(parts["train"]), "validation": train.subset(parts["val"])}
    model, inputs = build_embedding(
        "features", inputs, sets, backbone=backbone, input_size=input_size, **settings["head"]
    )
    train_embedding(
        model,
        inputs,
        sets["train"],
        sets["validation"],
        pk_batch=settings["pk_batch"],
        seed=settings["seed"],
        **settings["triplet"],
        **settings["training"],
    )
    return model, save_embedding(model, settings), settings, False
