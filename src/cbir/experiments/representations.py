"""Notebook 04's representations: each architecture's features of the queries and the database, with
a binary version for the set-based metrics (hamming, jaccard, dice).

Pretrained backbones give GeM-pooled features of their last convolutional output (a vector layer such
as VGG16 ``fc2`` as it is); the learned models of notebooks 02 and 03 — the DLBHC head and the semi-hard
triplet embedding — are loaded from `cbir.experiments.model_store` (or trained through the same
functions when missing) and applied to the cached features of their backbone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.experiments.hashing import load_or_train_hash_head
from cbir.experiments.metric_learning import load_or_train_embedding
from cbir.features import FeatureExtractor
from cbir.models.backbones import get_backbone
from cbir.models.dlbhc import encode
from cbir.models.efficientnet_lite import WeightsUnavailableError

BINARY_METRICS = ("hamming", "jaccard", "dice")
"""The registry distances computed on the binary version of a representation."""
ARCHITECTURE_KEYS = ("name", "backbone", "weights", "layer", "input_size")
"""What an architecture configuration may say; only ``backbone`` is required (weights default
``"imagenet"``, layer the last convolutional output, input size the ImageNet size, name the backbone,
``_random`` appended for random weights)."""


@dataclass(frozen=True)
class Representation:
    """One architecture's features of the queries and the database.

    Attributes:
        name: its name in tables and metric keys (``efficientnet_lite1``, ``dlbhc48``).
        description: what it is, in words (backbone, weights, layer, pooling, input size, dimension).
        query, database: float32, (n_queries, dim) and (n_database, dim), row-aligned with the image sets.
        binary_query, binary_database: bool, (n_queries, bits) and (n_database, bits).
        binarised: how the binary version was made.
    """

    name: str
    description: str
    query: np.ndarray
    database: np.ndarray
    binary_query: np.ndarray
    binary_database: np.ndarray
    binarised: str = "each dimension > its median over the database"

    def features(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(query, database) features to compare with `metric`: the binary version for `BINARY_METRICS`."""
        if metric in BINARY_METRICS:
            return self.binary_query, self.binary_database
        return self.query, self.database


def median_binarize(query: np.ndarray, database: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary codes: each dimension above its median over the database (the thresholds are fixed on
    the database and applied to both sides; a value equal to the median gives 0).

    Args:
        query, database: float, (n_queries, dim) and (n_database, dim).
    Returns:
        bool arrays of the same shapes.
    """
    thresholds = np.median(np.asarray(database), axis=0)
    return np.asarray(query) > thresholds, np.asarray(database) > thresholds


def _from_features(name: str, description: str, query: np.ndarray, database: np.ndarray) -> Representation:
    query, database = np.asarray(query, np.float32), np.asarray(database, np.float32)
    return Representation(name, description, query, database, *median_binarize(query, database))


def backbone_representations(
    configurations: Sequence[Mapping], queries: ImageSet, database: ImageSet, batch_size: int = 64
) -> tuple[dict[str, Representation], list[tuple[str, str]]]:
    """GeM features (a vector layer as it is) of the queries and the database for every configuration
    whose weights load; the others are skipped with the reason (the file to provide).

    Features are cached on disk (`FeatureExtractor.extract`).

    Args:
        configurations: mappings with keys from `ARCHITECTURE_KEYS`, e.g. ``{"backbone":
            "efficientnet_lite1", "input_size": 128}`` or ``{"name": "vgg16_fc2", "backbone": "vgg16",
            "layer": "fc2"}``.
    Returns:
        (representations by name, in the given order; (name, reason) of each configuration skipped).
    Raises:
        ValueError: an unknown key, no backbone, two configurations of the same name, or a name
            the backbone registry does not know.
    """
    representations: dict[str, Representation] = {}
    skipped = []
    for configuration in configurations:
        if set(configuration) - set(ARCHITECTURE_KEYS) or "backbone" not in configuration:
            raise ValueError(f"architecture {dict(configuration)}: needs backbone, keys in {ARCHITECTURE_KEYS}")
        weights = configuration.get("weights", "imagenet")
        name = architecture_name(configuration)
        if name in representations or name in (s[0] for s in skipped):
            raise ValueError(f"two architectures are named {name!r}: give them a 'name'")
        try:
            backbone = get_backbone(
                configuration["backbone"],
                layer=configuration.get("layer"),
                weights=weights,
                input_size=configuration.get("input_size"),
            )
        except WeightsUnavailableError as error:
            skipped.append((name, str(error).splitlines()[0].split(" (Keras' download failed")[0]))
            continue
        pooling = "gem" if backbone.is_convolutional else None
        extractor = FeatureExtractor(backbone, pooling=pooling, batch_size=batch_size)
        query, base = extractor.extract(queries), extractor.extract(database)
        described = (
            f"{backbone.name}, {'ImageNet' if weights else 'random'} weights, {backbone.layer}"
            f"{' + GeM' if pooling else ''}, {backbone.input_size[0]} px, {base.shape[1]}-D"
        )
        representations[name] = _from_features(name, described, query, base)
    return representations, skipped


def architecture_name(configuration: Mapping) -> str:
    """The name an architecture configuration is known by: its ``name``, else the backbone with
    ``_random`` appended for random weights."""
    weights = configuration.get("weights", "imagenet")
    return configuration.get("name") or configuration["backbone"] + ("" if weights else "_random")


def find_architecture(configurations: Sequence[Mapping], name: str) -> Mapping:
    """The configuration named `name` (`architecture_name`).

    Raises:
        ValueError: no configuration has that name (the message lists them).
    """
    for configuration in configurations:
        if architecture_name(configuration) == name:
            return configuration
    raise ValueError(f"no architecture named {name!r}; have {[architecture_name(c) for c in configurations]}")


def representation_table(
    representations: Mapping[str, Representation], skipped: Sequence[tuple[str, str]]
) -> pd.DataFrame:
    """One row per architecture: ``name``, ``description``, ``dim``, ``bits`` and ``binary`` (how
    the binary version was made) of each representation; then each skipped one with ``skipped``
    giving the reason."""
    rows = [
        {
            "name": r.name,
            "description": r.description,
            "dim": r.query.shape[1],
            "bits": r.binary_query.shape[1],
            "binary": r.binarised,
            "skipped": "",
        }
        for r in representations.values()
    ]
    rows += [
        {"name": name, "description": "", "dim": None, "bits": None, "binary": "", "skipped": reason}
        for name, reason in skipped
    ]
    table = pd.DataFrame(rows, columns=["name", "description", "dim", "bits", "binary", "skipped"])
    return table.astype({"dim": "Int64", "bits": "Int64"})


def learned_representations(
    train: ImageSet,
    backbone: str,
    input_size: int,
    query_features: np.ndarray,
    database_features: np.ndarray,
    dlbhc: Mapping | None = None,
    triplet_embedding: Mapping | None = None,
    seed: int = 0,
) -> tuple[dict[str, Representation], pd.DataFrame]:
    """The models of notebooks 02 and 03 applied to a backbone's GeM features: the newest saved for
    `train` and these features (`cbir.experiments.model_store.find_model`), else one trained here
    through the same functions with the given settings (and saved).

    DLBHC (``dlbhc<bits>``): the float representation is the latent layer's sigmoid activations, the
    binary one the codes as DLBHC makes them (activation ≥ 0.5). The triplet embedding
    (``triplet_embedding``): unit vectors, binarised at the database median like the backbones.

    Args:
        train: the images both were trained on (notebook 02's database, notebook 03's training split).
        backbone, input_size: of the GeM features they take.
        query_features, database_features: those features of the evaluation sets, (n, dim).
        dlbhc: ``bits`` and, for training here, keyword arguments of `train_hash_head`; None: left out.
        triplet_embedding: for training here, keyword arguments of `embedding_settings` (head,
            triplet, pk_batch, training, val_fraction); None: left out.
        seed: the training seed, unless the settings give one.
    Returns:
        (representations by name; a table of each model's ``name``, ``source`` ("loaded" or
        "trained here"), ``settings`` (those it was trained with, but the data fingerprint) and ``path``).
    Raises:
        TypeError: `dlbhc` without ``bits``, or a setting the training functions do not take.
    """
    representations, rows = {}, []
    if dlbhc is not None:
        options = {"seed": seed, **dlbhc}
        model, path, settings, loaded = load_or_train_hash_head(train, backbone, input_size, **options)
        (query_latent, _), (database_latent, _) = encode(model, query_features), encode(model, database_features)
        name = f"dlbhc{settings['bits']}"
        described = f"DLBHC head on {backbone} GeM ({input_size} px): {settings['bits']} sigmoid latent units"
        representations[name] = Representation(
            name,
            described,
            query_latent,
            database_latent,
            query_latent >= 0.5,
            database_latent >= 0.5,
            "DLBHC's codes: latent activation ≥ 0.5",
        )
        rows.append(_source(name, loaded, settings, path))
    if triplet_embedding is not None:
        options = {"seed": seed, **triplet_embedding}
        model, path, settings, loaded = load_or_train_embedding(train, backbone, input_size, **options)
        query, database = (model.predict(f, batch_size=256, verbose=0) for f in (query_features, database_features))
        described = f"semi-hard triplet embedding on {backbone} GeM ({input_size} px), {query.shape[1]}-D unit vectors"
        representations["triplet_embedding"] = _from_features("triplet_embedding", described, query, database)
        rows.append(_source("triplet_embedding", loaded, settings, path))
    return representations, pd.DataFrame(rows, columns=["name", "source", "settings", "path"])


def _source(name: str, loaded: bool, settings: Mapping, path) -> dict:
    shown = ", ".join(f"{key} {value}" for key, value in settings.items() if key != "data")
    return {"name": name, "source": "loaded" if loaded else "trained here", "settings": shown, "path": str(path)}
