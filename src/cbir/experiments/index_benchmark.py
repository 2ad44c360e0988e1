"""Index structures measured as ann-benchmarks measures them: recall@k against exact search vs queries
per second on one thread, over a sweep of each index's parameters; build time and memory per vector;
and the KD-tree's query time against dimension (the curse of dimensionality).

Used by notebook 05 and ``benchmarks/bench_indexes.py``. A sweep is data: a list of
``{"kind": ..., "name": ..., "build": {...}, "search": [{...}, ...], "queries": n}`` entries, one index
built per entry and searched once per search setting (``queries`` caps the queries of slow kinds:
queries/s is a rate, recall a mean, both estimated on the first `n` queries).

Timing: every index searches the whole query batch in one call, single-threaded (BLAS, faiss's
OpenMP and Numba limited to one thread: `single_thread`), after one untimed warm-up search (Numba's
compiled kernels load on first use), and the best of `repeats` runs is kept, as ann-benchmarks keeps
the best of several runs. Ground truth: `cbir.retrieval.exact.exact_search`.

Recall here matches results by index: with exact duplicates in the data, an exact method may return a
duplicate in place of the listed neighbour and lose recall, where ann-benchmarks (which counts every
result within the k-th true distance + 10⁻³) would not. ``lsh`` is this project's NumPy implementation
(bucket look-ups vectorised per table in Python): its queries/s measures that, not what a C++ LSH would reach.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import faiss
import matplotlib.pyplot as plt
import numba
import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.neighbors import KDTree
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from cbir.evaluation.ann import knn_recall, pareto_frontier
from cbir.retrieval.exact import exact_search
from cbir.retrieval.indexes import make_index
from cbir.retrieval.indexes.faiss_indexes import pq_subquantizers
from cbir.retrieval.ranking import l2_normalize

SWEEP_COLUMNS = ["index", "kind", "build", "search", "recall", "qps", "build_s", "bytes_per_vector", "queries"]


@contextmanager
def single_thread() -> Iterator[None]:
    """Limit BLAS, OpenMP (faiss) and Numba to one thread inside the block, then restore them."""
    faiss_threads, numba_threads = faiss.omp_get_max_threads(), numba.get_num_threads()
    faiss.omp_set_num_threads(1)
    numba.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        faiss.omp_set_num_threads(faiss_threads)
        numba.set_num_threads(numba_threads)


def ground_truth(database: np.ndarray, queries: np.ndarray, k: int = 10, metric: str = "cosine") -> np.ndarray:
    """int64 (n_queries, k): the exact k nearest database rows of each query (all threads)."""
    return exact_search(queries, database, k=k, metric=metric, normalize=metric == "cosine")[1]


def default_sweep(n: int, dim: int, seed: int = 0, large: bool = False) -> list[dict]:
    """The sweep of notebook 05 and ``benchmarks/bench_indexes.py`` for `n` vectors of dimension `dim`.

    Every kind of `cbir.retrieval.indexes`, sized to train in seconds on 2 cores: IVF with √n lists probed
    1 … 128 at a time (fewer lists than the faiss wiki's 4 √n … 16 √n, which would take minutes to train here),
    PQ with m = the largest divisor of dim ≤ 64 bytes and a refine list of 1 … 100 × k exact re-rankings,
    HNSW with M = 16 and 32 (ef_construction 100) searched at ef = 10 … 512 (Malkov & Yashunin 2020),
    LSH with 8 tables of 12 bits and 32 of 16 bits, without and with multi-probe, ITQ codes of 64 … 256 bits
    in two phases with shortlists of 100 … 10 000, and faiss's binary HNSW / IVF over 128-bit ITQ codes.
    Trees are timed on 100 queries. With `large` (10⁶ vectors, to fit notebook 05 in 20 minutes on 2 cores):
    trees left out (hopeless there), one HNSW (M = 16, ef_construction 64: it builds in about 140 s instead of
    210 s and still reaches recall@10 0.99 at ef = 512 on notebook 05's 10⁶ set, where ef_construction 40
    stops at 0.92; a build-time budget probed once on that set and its queries, not a setting tuned for
    the reported recall), one LSH, no binary HNSW (Hamming ranking alone, whose recall against float search
    notebook 05 shows on the deep features), PQ timed on 100 queries.
    """
    nlist = max(1, int(np.sqrt(n)))
    m = pq_subquantizers(dim)
    probes = [p for p in (1, 2, 4, 8, 16, 32, 64, 128) if p <= nlist]
    sweep = [
        {"kind": "flat", "name": "exact"},
        {"kind": "ivf_flat", "name": "ivf_flat", "build": {"nlist": nlist}, "search": [{"nprobe": p} for p in probes]},
        {
            "kind": "pq",
            "name": "pq",
            "build": {"m": m, "nbits": 8},
            "search": [{"refine": r} for r in (1, 2, 5, 10, 20, 50, 100)],
            "queries": 100 if large else None,
        },
        {
            "kind": "ivfpq",
            "name": "ivfpq",
            "build": {"nlist": nlist, "m": m, "nbits": 8},
            "search": [{"nprobe": p, "refine": r} for p in probes[2:] for r in (10, 50)],
        },
        *(
            {
                "kind": "hnsw",
                "name": f"hnsw_m{links}",
                "build": {"M": links, "ef_construction": 64 if large else 100},
                "search": [{"ef_search": ef} for ef in (10, 20, 40, 80, 160, 320, 512)],
            }
            for links in ((16,) if large else (16, 32))
        ),
        *(
            {
                "kind": "lsh",
                "name": f"lsh_{tables}x{bits}",
                "build": {"tables": tables, "bits": bits, "seed": seed},
                "search": [{"probes": p} for p in (0, 1)],
                "queries": 200,
            }
            for tables, bits in (((8, 12),) if large else ((8, 12), (32, 16)))
        ),
        *(
            {
                "kind": "two_phase",
                "name": f"itq{bits}_two_phase",
                "build": {"encoder": "itq", "bits": bits, "seed": seed},
                "search": [{"shortlist": s} for s in (100, 300, 1000, 3000, 10000) if s <= n],
            }
            for bits in (64, 128, 256)
            if bits <= dim
        ),
        *(
            []
            if large
            else [
                {
                    "kind": "binary_hnsw",
                    "name": "itq_binary_hnsw",
                    "build": {"encoder": "itq", "bits": min(128, dim // 8 * 8), "M": 32, "seed": seed},
                    "search": [{"ef_search": ef} for ef in (16, 64, 256)],
                }
            ]
        ),
        {
            "kind": "binary_ivf",
            "name": "itq_binary_ivf",
            "build": {"encoder": "itq", "bits": min(128, dim // 8 * 8), "nlist": nlist, "seed": seed},
            "search": [{"nprobe": p} for p in probes],
        },
    ]
    if not large:
        sweep += [
            {"kind": "kdtree", "name": "kdtree", "build": {"leaf_size": 40}, "queries": 100},
            {"kind": "balltree", "name": "balltree", "build": {"leaf_size": 40}, "queries": 100},
        ]
    return sweep


def _label(entry: Mapping) -> str:
    if entry.get("name"):
        return str(entry["name"])
    build = ",".join(f"{key}={value}" for key, value in entry.get("build", {}).items())
    return f"{entry['kind']}({build})" if build else str(entry["kind"])


def _timed_search(index, queries: np.ndarray, k: int, repeats: int) -> tuple[np.ndarray, float]:
    index.search(queries[:8], k)  # untimed warm-up: compiled kernels and caches load here
    best, indices = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        _, indices = index.search(queries, k)
        best = min(best, time.perf_counter() - start)
    return indices, best


def run_sweep(
    database: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    sweep: Sequence[Mapping],
    k: int = 10,
    metric: str = "cosine",
    repeats: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """Build every index of `sweep` on `database` and search `queries` at each of its search settings.

    Args:
        database: float32 (n, dim); queries: float32 (m, dim); truth: int (m, ≥ k) from `ground_truth`.
        sweep: entries as in the module docstring; ``kind`` is a key of `cbir.retrieval.indexes.INDEX_TYPES`.
        k: neighbours per query; recall is recall@k.
        metric: ``"cosine"`` or ``"euclidean"``, passed to every index.
        repeats: search runs per setting; the fastest is kept.
    Returns:
        one row per (index, search setting): ``index`` (its label), ``kind``, ``build`` and ``search``
        (the parameters, as text), ``recall``, ``qps`` (queries per second, one thread), ``build_s``
        (seconds, every core), ``bytes_per_vector`` (the index's `memory_bytes` / n) and ``queries``.
    Raises:
        ValueError: an unknown kind or parameter (from `make_index` / `set_search_params`).
    """
    rows = []
    entries = tqdm(sweep, desc="index sweep", unit="index", disable=not progress)
    for entry in entries:
        label, n_queries = _label(entry), int(entry.get("queries") or len(queries))
        entries.set_postfix_str(label)
        index = make_index(entry["kind"], database.shape[1], metric=metric, **entry.get("build", {}))
        start = time.perf_counter()
        index.build(database)  # every core: build time is not what ann-benchmarks compares
        build_s = time.perf_counter() - start
        bytes_per_vector = index.memory_bytes() / len(database)  # once: faiss serialises to measure
        with single_thread():
            for search in entry.get("search") or [{}]:
                index.set_search_params(**search)
                found, seconds = _timed_search(index, queries[:n_queries], k, repeats)
                rows.append(
                    {
                        "index": label,
                        "kind": entry["kind"],
                        "build": _text(entry.get("build", {})),
                        "search": _text(search),
                        "recall": knn_recall(found, truth[:n_queries], k),
                        "qps": n_queries / seconds,
                        "build_s": build_s,
                        "bytes_per_vector": bytes_per_vector,
                        "queries": n_queries,
                    }
                )
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def _text(params: Mapping) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items())


def qps_at_recall(results: pd.DataFrame, target: float) -> pd.Series:
    """The best queries/s of each index label among its settings reaching recall ≥ `target` (NaN if none)."""
    reached = results[results["recall"] >= target]
    best = reached.groupby("index")["qps"].max()
    return best.reindex(results["index"].unique())


def build_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per index: kind, build parameters, build seconds, bytes per vector, best recall."""
    grouped = results.groupby("index", sort=False)
    return grouped.agg(
        kind=("kind", "first"),
        build=("build", "first"),
        build_s=("build_s", "first"),
        bytes_per_vector=("bytes_per_vector", "first"),
        best_recall=("recall", "max"),
    )


def pareto_figure(results: pd.DataFrame, title: str, k: int = 10) -> plt.Figure:
    """Recall@k (x) against queries/s (log y): each index's Pareto frontier as ann-benchmarks draws it."""
    figure, ax = plt.subplots(figsize=(8, 5.5))
    markers = "os^vD<>ph*X"
    for i, (label, group) in enumerate(results.groupby("index", sort=False)):
        frontier = group.iloc[pareto_frontier(group["recall"].to_numpy(), group["qps"].to_numpy())]
        ax.plot(frontier["recall"], frontier["qps"], marker=markers[i % len(markers)], label=label)
    ax.set_yscale("log")
    ax.set_xlabel(f"recall@{k} (against exact search)")
    ax.set_ylabel("queries per second (1 thread, log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    return figure


def kdtree_vs_dimension(
    database: np.ndarray,
    queries: np.ndarray,
    dims: Sequence[int],
    k: int = 10,
    leaf_size: int = 40,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Query time of a KD-tree and of exact (BLAS) search after PCA to each dimension, one thread.

    The KD-tree prunes a cell when the ball around the query's current k-th distance does not reach
    it; in high dimension nearly every ball reaches nearly every cell, so it visits most leaves and
    loses to a brute-force matrix product (Weber et al., VLDB 1998). PCA is fitted on the database.

    Args:
        database: float (n, dim); queries: float (m, dim); dims: target dimensions (≤ dim, ≤ n).
    Returns:
        one row per dimension: ``dim``, ``explained_variance``, ``kdtree_ms`` and ``exact_ms`` (per query),
        ``kdtree_over_exact`` (their ratio) and ``kdtree_build_s``.
    Raises:
        ValueError: a dimension above the features' or the database size.
    """
    rows = []
    for dim in tqdm(dims, desc="KD-tree vs dimension", unit="dim", disable=not progress):
        if not 1 <= dim <= min(database.shape):
            raise ValueError(f"PCA dimension must be in [1, {min(database.shape)}], got {dim}")
        pca = PCA(n_components=dim, random_state=seed).fit(database)
        reduced_database, reduced_queries = (pca.transform(x).astype(np.float32) for x in (database, queries))
        with single_thread():
            start = time.perf_counter()
            tree = KDTree(reduced_database, leaf_size=leaf_size)
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            tree.query(reduced_queries, k=k)
            kdtree_s = time.perf_counter() - start
            start = time.perf_counter()
            exact_search(reduced_queries, reduced_database, k=k, metric="euclidean", normalize=False)
            exact_s = time.perf_counter() - start
        rows.append(
            {
                "dim": dim,
                "explained_variance": float(pca.explained_variance_ratio_.sum()),
                "kdtree_ms": 1000 * kdtree_s / len(queries),
                "exact_ms": 1000 * exact_s / len(queries),
                "kdtree_over_exact": kdtree_s / exact_s,
                "kdtree_build_s": build_s,
            }
        )
    return pd.DataFrame(rows)


def kdtree_figure(table: pd.DataFrame) -> plt.Figure:
    """Per-query time of the KD-tree and of exact search against the PCA dimension (log–log)."""
    figure, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(table["dim"], table["kdtree_ms"], "o-", label="KD-tree (scikit-learn)")
    ax.plot(table["dim"], table["exact_ms"], "s-", label="exact search (BLAS)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dimension after PCA")
    ax.set_ylabel("ms per query (1 thread, log)")
    ax.set_title("The curse of dimensionality: a KD-tree against brute force")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure


def unit_rows(*arrays: np.ndarray) -> list[np.ndarray]:
    """Each array as float32 with L2-normalised rows (the cosine sweeps' input, normalised once)."""
    return [l2_normalize(array) for array in arrays]
