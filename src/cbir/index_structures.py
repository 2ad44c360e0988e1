"""The search structure of a folder index: exact search, or an ANN index kept beside the features.

``cbir index --index flat|hnsw|ivfpq|binary`` chooses it. The features (`FeatureIndex` shards) stay the
source of truth; an ANN index is a derived file attached to the index (`FeatureIndex.attach`, name
``"ann"``) whose ``meta`` records its kind, its parameters and the SHA-256 of every shard it was built
from. A search uses it only when those shards are still the index's; otherwise (an interrupted run, an
index updated by an older cbir) it falls back to exact search and says so.

Kinds (`cbir.retrieval.indexes`): ``hnsw`` (faiss HNSW graph, Malkov & Yashunin 2018), ``ivfpq``
(inverted file + product quantisation with exact re-ranking of a refine list, Jégou et al. 2011),
``binary`` (the project's two-phase search: ITQ codes, a Hamming shortlist re-ranked exactly; Lin et
al. 2015, Gong & Lazebnik 2011). Defaults adapt to the number of vectors so that small folders work.

Features ranked by a distance the ANN index does not support are indexed in a space it does, and its
candidate list of ``max(10 k, 100)`` is re-ranked exactly with the features' own distance: histogram
descriptors (χ² or intersection) through the Hellinger map (square root, then L2 normalisation: χ² and
Hellinger distances rank alike to first order); Euclidean features (HOG) under ``binary``, whose
two-phase search is cosine's, after L2 normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from cbir.retrieval.distances import get_distance, pairwise_distances
from cbir.retrieval.exact import exact_search
from cbir.retrieval.feature_index import FeatureIndex
from cbir.retrieval.indexes import load_index, make_index
from cbir.retrieval.indexes.faiss_indexes import pq_subquantizers
from cbir.retrieval.ranking import l2_normalize, top_k

STRUCTURES = {"flat": None, "hnsw": "hnsw", "ivfpq": "ivfpq", "binary": "two_phase"}
"""``--index`` choice → the kind of `cbir.retrieval.indexes` (None: exact search, no ANN file)."""

Log = Callable[[str], None]


def default_params(structure: str, n: int, dim: int) -> tuple[dict, dict]:
    """Construction and search parameters of a structure for `n` vectors of dimension `dim`.

    hnsw: M = 32, ef_construction = 200, ef_search = 128. ivfpq: nlist ≈ 4 √n (at least 39 training
    vectors per list, faiss's minimum), m = the largest divisor of dim ≤ 64 sub-quantisers, 8 bits per
    code (fewer when n < 256), nprobe = min(nlist, 16), refine = 10 (10 k candidates re-ranked exactly).
    binary: ITQ codes of min(128, dim, n) bits, a shortlist of 1 000 (capped at n).

    Raises:
        ValueError: an unknown structure.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"unknown index structure {structure!r}; expected one of {sorted(STRUCTURES)}")
    if structure == "hnsw":
        return {"M": 32, "ef_construction": 200}, {"ef_search": 128}
    if structure == "ivfpq":
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        build = {"nlist": nlist, "m": pq_subquantizers(dim), "nbits": max(1, min(8, int(math.log2(n))))}
        return build, {"nprobe": min(nlist, 16), "refine": 10}
    if structure == "binary":
        return {"encoder": "itq", "bits": max(1, min(128, dim, n))}, {"shortlist": min(1000, n)}
    return {}, {}


def _direct(metric: str, kind: str) -> bool:
    """Whether the ANN index ranks by `metric` itself (else: candidates, re-ranked exactly)."""
    return metric == "cosine" or (metric == "euclidean" and kind != "two_phase")


def _ann_space(features: np.ndarray, metric: str, kind: str) -> tuple[np.ndarray, str]:
    """Features as the ANN index sees them, and the metric it uses."""
    if _direct(metric, kind):
        return features, metric
    if metric == "euclidean":  # two-phase re-ranks by cosine: it shortlists, the exact re-ranking decides
        return l2_normalize(features), "cosine"
    return l2_normalize(np.sqrt(np.maximum(features, 0.0))), "cosine"  # Hellinger map of histograms


def _shard_digests(index: FeatureIndex) -> list[str]:
    return [shard["sha256"] for shard in index.shards]


def refresh_structure(
    index: FeatureIndex,
    directory: Path,
    structure: str,
    params: Mapping | None = None,
    log: Log = lambda message: None,
) -> str:
    """Make the index's ANN attachment match `structure` and the current features; call under the lock.

    ``flat`` removes the attachment; another structure (re)builds it unless the attached one already has
    this kind, these parameters and these shards.

    Args:
        params: construction parameters overriding `default_params`.
    Returns:
        what was done: ``"exact"``, ``"kept"`` or ``"built"``.
    Raises:
        ValueError: an unknown structure or parameter.
    """
    kind = STRUCTURES.get(structure, "unknown")
    if kind == "unknown":
        raise ValueError(f"unknown index structure {structure!r}; expected one of {sorted(STRUCTURES)}")
    if kind is None or not len(index):
        index.detach(directory, "ann")
        return "exact"
    if structure == "ivfpq" and len(index) < 2:
        log("warning: one image: --index ivfpq needs two to train its quantisers; searching exactly")
        index.detach(directory, "ann")
        return "exact"
    build, _ = default_params(structure, len(index), index.features.shape[1])
    build.update(params or {})
    metric = index.settings.get("metric", "cosine")
    meta = {"structure": structure, "kind": kind, "params": build, "metric": metric, "shards": _shard_digests(index)}
    if index.attachments.get("ann", {}).get("meta") == meta:
        return "kept"
    features, space = _ann_space(index.features, metric, kind)
    log(f"building the {structure} index over {len(index)} vectors ({build})")
    ann = make_index(kind, features.shape[1], metric=space, **build).build(features)
    index.attach(directory, "ann", ann.save, meta)
    return "built"


def search_index(
    index: FeatureIndex,
    directory: Path,
    query_features: np.ndarray,
    k: int,
    search_params: Mapping | None = None,
    exact: bool = False,
    log: Log = lambda message: None,
) -> tuple[np.ndarray, np.ndarray]:
    """Search `query_features` with the index's ANN structure when it is current, else exactly.

    Args:
        query_features: float32 (n_queries, dim), made with the index's settings.
        search_params: overriding the structure's default search parameters (e.g. ``ef_search``).
        exact: ignore the ANN structure.
    Returns:
        (scores float32 in [0, 1], indices int64), each (n_queries, min(k, len(index))), best first.
    Raises:
        IndexFormatError: the ANN file is corrupt; ValueError: an unknown search parameter.
    """
    metric = index.settings.get("metric", "cosine")
    k = min(k, len(index))
    meta = index.attachments.get("ann", {}).get("meta", {})
    if exact or not meta:
        if search_params:
            raise ValueError(f"search parameters {sorted(search_params)} need an ANN index (this one is flat)")
        return exact_search(query_features, index.features, k=k, metric=metric, normalize=metric == "cosine")
    if meta.get("shards") != _shard_digests(index):
        log("warning: the ANN index is older than the features (interrupted indexing?); searching exactly")
        return exact_search(query_features, index.features, k=k, metric=metric, normalize=metric == "cosine")
    ann = load_index(index.attachment_path(directory, "ann"), kind=meta["kind"])
    _, search = default_params(meta["structure"], len(index), index.features.shape[1])
    ann.set_search_params(**{**search, **(search_params or {})})
    queries, _ = _ann_space(np.asarray(query_features, np.float32), metric, meta["kind"])
    if _direct(metric, meta["kind"]):
        return ann.search(queries, k)
    _, candidates = ann.search(queries, min(len(index), max(10 * k, 100)))
    return _rerank(query_features, index.features, candidates, k, metric)


def _rerank(
    query_features: np.ndarray, database: np.ndarray, candidates: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """The k best candidates of each query under `metric` (exact), scored by the registry; −1 pads."""
    distance = get_distance(metric)
    scores = np.zeros((len(query_features), k), np.float32)
    indices = np.full((len(query_features), k), -1, np.int64)
    for row, (query, found) in enumerate(zip(query_features, candidates)):
        found = found[found >= 0]
        values = pairwise_distances(query[None], database[found], metric)[0]
        closeness = -values if distance.smaller_is_closer else values
        _, best = top_k(closeness[None], k)
        best = best[0]
        indices[row, : len(best)] = found[best]
        scores[row, : len(best)] = distance.to_score(values[best])
    return scores, indices
