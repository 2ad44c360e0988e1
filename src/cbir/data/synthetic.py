"""Synthetic vector sets for index benchmarks: clustered unit vectors whose difficulty is a parameter.

Approximate nearest-neighbour methods look better than they are on easy data. With tight, well
separated clusters, any candidate list the size of one cluster already holds the true neighbours, so
recall is close to 1 whatever the method. `clustered_unit_vectors` draws cluster centres and noise of
chosen scales; how hard the set is depends on the noise, the dimension *and* the number of centres
against the number of IVF lists. Measured in 128-D: with 200 000 vectors around 1 000 centres, an IVF of
447 lists probing one list finds 98 % of the true 10 nearest neighbours at ``noise=1`` (too easy: the lists
are the clusters), 68 % at ``noise=1.5`` and 23 % at ``noise=2``. With as many lists as centres (10⁶
vectors, √n = 1 000 lists, 1 000 centres) k-means recovers the clusters and two lists reach recall@10 ≥ 0.95
even at ``noise=1.5``. With ten times more centres than lists (10⁶ vectors, 10 000 centres, ``noise=1``:
notebook 05 and ``benchmarks/bench_indexes.py``) one list finds 42 % and 64 lists 84 %.
"""

from __future__ import annotations

import numpy as np

from cbir.retrieval.ranking import l2_normalize


def clustered_unit_vectors(
    n: int,
    dim: int,
    n_centres: int = 1000,
    noise: float = 1.0,
    seed: int = 0,
    chunk: int = 65536,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` L2-normalised vectors around `n_centres` Gaussian centres.

    Each centre is drawn from N(0, I_dim); each vector is its centre plus N(0, noise² I_dim), then
    normalised. At ``noise=1`` the within-cluster spread equals the spread of the centres; at
    ``noise=0.1`` the clusters are tight and far apart (see the module docstring for difficulty).

    Args:
        n: number of vectors; dim: their dimension; n_centres: number of clusters (≥ 1).
        noise: standard deviation of the noise per coordinate, relative to the centres' (≥ 0).
        seed: the generator's seed: the same arguments give the same vectors.
        chunk: vectors generated at a time (bounds the float64 temporaries).
    Returns:
        (vectors float32 (n, dim) with unit rows, cluster int64 (n,)).
    Raises:
        ValueError: n, dim or n_centres < 1, or noise < 0.
    """
    if n < 1 or dim < 1 or n_centres < 1:
        raise ValueError(f"n, dim and n_centres must be >= 1, got {n}, {dim}, {n_centres}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    clusters = rng.integers(0, n_centres, size=n)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = centres[clusters[start:stop]] + noise * rng.standard_normal((stop - start, dim), dtype=np.float32)
        vectors[start:stop] = l2_normalize(block)
    return vectors, clusters.astype(np.int64)
