"""Compiled (Numba) kernel for exact Hamming top-k over packed codes.

The NumPy path (`cbir.retrieval.hamming.hamming_distances`, then `k_smallest`) writes and re-reads a
uint64 XOR array and a distance array per query, and its selection calls back into Python.
Here, in parallel over groups of queries: one vectorised, cache-blocked pass of XOR and
population count into a byte per distance; then per query a guess at the k-th smallest distance
from a regular sample, one pass collecting the rows at or below the guess, and a counting sort
of those candidates only. Same answer as the NumPy path — nearest first, ties by lower database
index — which the tests check against a brute-force bit loop.
"""

from __future__ import annotations

import numba
import numpy as np

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(inline="always")
def _popcount(x):
    """Bits set in a uint64: the SWAR count of Hacker's Delight §5-1, which LLVM compiles to
    the POPCNT instruction where the CPU has one."""
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return (x * _H01) >> np.uint64(56)


GROUP = 8  # queries that share each pass over the database
_BLOCK = 4096  # database codes per block: 32 KiB of 64-bit codes, reused from L1 by every query of a group


@numba.njit(cache=True, nogil=True)
def _distances(queries, database, out):  # pragma: no cover - compiled
    """Hamming distances of each packed query (g, words) to every row of `database` (n, words),
    into out[:g]. For one-word codes the database is read in blocks, each block serving every
    query of the group while it is in L1 cache, in a loop simple enough for LLVM to vectorise."""
    n, words = database.shape
    if words == 1:
        column = database.reshape(n)
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            block = column[start:stop]
            for r in range(queries.shape[0]):
                query = queries[r, 0]
                row = out[r, start:stop]
                for j in range(stop - start):
                    row[j] = _popcount(query ^ block[j])
    else:
        for r in range(queries.shape[0]):
            for j in range(n):
                d = np.uint64(0)
                for w in range(words):
                    d += _popcount(queries[r, w] ^ database[j, w])
                out[r, j] = d


@numba.njit(cache=True, nogil=True)
def _bound_from_sample(distances, k, size):  # pragma: no cover - compiled
    """A guess at the k-th smallest distance: the k/n quantile of 4096 regularly spaced
    distances, one standard deviation high so that it is rarely too low."""
    n = len(distances)
    step = max(1, n // 4096)
    counts = np.zeros(size, np.int64)
    m = 0
    for j in range(0, n, step):
        counts[distances[j]] += 1
        m += 1
    expected = k / n * m
    target = min(m, int(np.ceil(expected + np.sqrt(expected))))
    bound, seen = 0, counts[0]
    while seen < target:
        bound += 1
        seen += counts[bound]
    return bound


@numba.njit(cache=True, nogil=True)
def _place(distances, candidates, count, k, size, out_distances, out_indices):  # pragma: no cover - compiled
    """Write the k smallest of distances[candidates[:count]] (candidates in increasing index
    order, holding every index whose distance is at most the k-th smallest) by counting sort."""
    histogram = np.zeros(size, np.int64)
    for i in range(count):
        histogram[distances[candidates[i]]] += 1
    bound, below = 0, 0
    while below + histogram[bound] < k:  # the k-th smallest distance
        below += histogram[bound]
        bound += 1
    position = np.empty(bound + 1, np.int64)
    position[0] = 0
    for d in range(bound):
        position[d + 1] = position[d] + histogram[d]
    for i in range(count):  # in increasing index order: ties go to the lower index
        j = candidates[i]
        d = distances[j]
        if d <= bound:
            p = position[d]
            if p < k:
                out_distances[p] = d
                out_indices[p] = j
            position[d] = p + 1


@numba.njit(parallel=True, cache=True, nogil=True)
def hamming_top_k_kernel(
    queries, database, k, out_distances, out_indices, scratch_distances, scratch_candidates
):  # pragma: no cover - compiled
    """For each query row of uint64 `queries` (n_queries, words) write the `k` nearest rows of
    `database` (n, words) into `out_distances` (n_queries, k) int32 and `out_indices` int64.

    Groups of `GROUP` queries are shared out among `n_chunks` threads, each with its own scratch:
    `scratch_distances` (n_chunks, GROUP, n), uint8 up to 255 bits else uint16, and
    `scratch_candidates` (n_chunks, n) int64, allocated by the caller (NumPy backs large arrays
    with huge pages; fresh buffers per group would be paged in and zeroed by the OS every time,
    at about the cost of the distances themselves). Per group, one cache-blocked pass computes
    all the distances; then per query, a guess at the k-th distance from a sample, one pass
    collecting the indices at or below the guess (every index when the guess proves too low),
    and a counting sort of those candidates only.
    """
    n_queries, words = queries.shape
    n = database.shape[0]
    size = 64 * words + 1
    n_groups = (n_queries + GROUP - 1) // GROUP
    n_chunks = scratch_distances.shape[0]
    for chunk in numba.prange(n_chunks):
        distances, candidates = scratch_distances[chunk], scratch_candidates[chunk]
        for group in range(chunk * n_groups // n_chunks, (chunk + 1) * n_groups // n_chunks):
            first = group * GROUP
            last = min(first + GROUP, n_queries)
            _distances(queries[first:last], database, distances)
            for r in range(last - first):
                row = distances[r]
                bound = _bound_from_sample(row, k, size)
                count = 0
                for j in range(n):
                    if row[j] <= bound:
                        candidates[count] = j
                        count += 1
                if count < k:  # the guess was too low: every index is a candidate
                    for j in range(n):
                        candidates[j] = j
                    count = n
                _place(row, candidates, count, k, size, out_distances[first + r], out_indices[first + r])
