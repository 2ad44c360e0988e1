"""Binary codes: binarisation, packing into uint64 words, Hamming distances and Hamming top-k.

Codes are packed into little-endian uint64 words, bit j of a code in word j // 64 at position
j % 64 (8 bytes per 64-bit code), and Hamming distances are population counts of XORs — never
one byte per bit on the search path. `hamming_distances` gives the whole matrix with NumPy
(`np.bitwise_count`); `hamming_top_k`, the search path, runs a compiled kernel
(`cbir.retrieval._hamming_kernels`) that needs no such matrix.
"""

from __future__ import annotations

import numba
import numpy as np

from cbir.retrieval._hamming_kernels import GROUP, hamming_top_k_kernel


def binarize(activations: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Latent activations (n, bits) in [0, 1] → bool codes, bit = activation ≥ threshold."""
    return np.asarray(activations) >= threshold


def pack_codes(codes: np.ndarray) -> np.ndarray:
    """Pack bool / {0, 1} codes (n, bits) into uint64 words (n, ceil(bits / 64)).

    Bit j goes to word j // 64, bit position j % 64 (little-endian); unused high bits are 0.
    """
    codes = np.asarray(codes).astype(bool)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (n, bits), got {codes.shape}")
    n, bits = codes.shape
    words = -(-bits // 64)
    padded = np.zeros((n, words * 64), dtype=bool)
    padded[:, :bits] = codes
    packed = np.packbits(padded, axis=1, bitorder="little")  # (n, words * 8) bytes
    return np.ascontiguousarray(packed).view("<u8").reshape(n, words)


def unpack_codes(words: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of `pack_codes`: uint64 (n, words) → bool (n, bits). For inspection, not search."""
    words = np.ascontiguousarray(np.asarray(words, dtype="<u8"))
    unpacked = np.unpackbits(words.view(np.uint8).reshape(len(words), -1), axis=1, bitorder="little")
    return unpacked[:, :bits].astype(bool)


def hamming_distances(query_words: np.ndarray, database_words: np.ndarray) -> np.ndarray:
    """All Hamming distances between packed codes: popcount(q XOR d) summed over words.

    Args:
        query_words: uint64 (n_queries, words); database_words: uint64 (n_database, words).
    Returns:
        uint8 (n_queries, n_database) for codes of up to 255 bits, else uint16. Memory is
        n_queries × n_database × itemsize: chunk the queries for large databases. For the
        nearest codes only, `hamming_top_k` is faster and needs no such matrix.
    """
    query_words, database_words = _packed_alike(query_words, database_words)
    words = query_words.shape[1]
    total = np.zeros((len(query_words), len(database_words)), _distance_dtype(words))
    scratch = np.empty((len(query_words), min(len(database_words), _BLOCK)), np.uint64)
    counts = np.empty(scratch.shape, np.uint8)
    # Blocks of the database keep the XOR scratch small (cache-friendly, no large temporaries).
    for start in range(0, len(database_words), _BLOCK):
        stop = min(start + _BLOCK, len(database_words))
        xor, popcount = scratch[:, : stop - start], counts[:, : stop - start]
        for w in range(words):
            np.bitwise_xor(query_words[:, w, None], database_words[None, start:stop, w], out=xor)
            if words == 1:  # the common case (≤ 64 bits): count straight into the result
                np.bitwise_count(xor, out=total[:, start:stop])
            else:
                np.bitwise_count(xor, out=popcount)
                np.add(total[:, start:stop], popcount, out=total[:, start:stop], casting="unsafe")
    return total


_BLOCK = 1 << 15  # database codes per block in `hamming_distances`


def _packed_alike(query_words: np.ndarray, database_words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both code arrays as C-contiguous uint64 (n, words) with the same number of words."""
    query_words = np.ascontiguousarray(query_words, dtype=np.uint64)
    database_words = np.ascontiguousarray(database_words, dtype=np.uint64)
    if query_words.ndim != 2 or database_words.ndim != 2 or query_words.shape[1] != database_words.shape[1]:
        raise ValueError(f"codes must be packed (n, words) alike; got {query_words.shape} and {database_words.shape}")
    return query_words, database_words


def _distance_dtype(words: int) -> type:
    """The smallest unsigned integer type that holds a Hamming distance between codes of `words` words."""
    return np.uint8 if words * 64 <= 255 else np.uint16


def hamming_top_k(
    query_words: np.ndarray, database_words: np.ndarray, k: int, n_threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest codes in Hamming distance, ties by lower database index.

    A compiled kernel (`cbir.retrieval._hamming_kernels`, Numba): per group of 8 queries, one
    cache-blocked pass of XOR and population count over the database; per query, a guess at the
    k-th distance from a sample, one pass collecting the codes at or below it, and a counting
    sort of those only — O(n_database) per query, no sort of the n distances. Groups run in
    parallel on `n_threads` threads (default: `numba.get_num_threads()`, one per CPU unless set), each with
    16 × n_database bytes of scratch (24 × for codes over 255 bits).

    Args:
        query_words: uint64 (n_queries, words); database_words: uint64 (n_database, words).
        k: results per query (capped at n_database).
        n_threads: threads to use (capped at the CPUs available); 1 for a single-threaded run.
    Returns:
        (distances, indices): int32 and int64, each (n_queries, min(k, n_database)), nearest first.
    Raises:
        ValueError: codes not packed alike, or k < 1.
    """
    query_words, database_words = _packed_alike(query_words, database_words)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(database_words))
    out_distances = np.empty((len(query_words), k), np.int32)
    out_indices = np.empty((len(query_words), k), np.int64)
    if k == 0 or len(query_words) == 0:
        return out_distances, out_indices
    previous = numba.get_num_threads()
    # Default: Numba's current thread count, so that a caller's numba.set_num_threads(1) holds here too.
    threads = max(1, min(n_threads or numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    try:
        n_chunks = min(threads, -(-len(query_words) // GROUP))  # one run of query groups per thread
        hamming_top_k_kernel(
            query_words,
            database_words,
            k,
            out_distances,
            out_indices,
            np.empty((n_chunks, GROUP, len(database_words)), _distance_dtype(query_words.shape[1])),
            np.empty((n_chunks, len(database_words)), np.int64),
        )
    finally:
        numba.set_num_threads(previous)
    return out_distances, out_indices


def k_smallest(distances: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest small-integer `distances` (n,), by distance then index.

    No sort of the n values: a bound on the k-th smallest value is read off a regular sample of
    4096 values (its k/n quantile, one standard deviation high so that it is rarely too low), one
    pass collects the candidates at or below it — or, when they are fewer than k, at or below the
    exact k-th value (`kth_smallest_value`) — and only those are sorted, by a stable sort of their
    distances: NumPy's radix sort for 8- and 16-bit integers, which keeps the candidates'
    increasing index order among equal distances. O(n) per query.
    """
    n = len(distances)
    k = min(k, n)
    if k == n:
        return np.argsort(distances, kind="stable")
    sample = distances[:: max(1, n // 4096)]
    expected_rank = k / n * len(sample)
    rank = min(len(sample) - 1, int(np.ceil(expected_rank + np.sqrt(expected_rank))))
    candidates = np.flatnonzero(distances <= np.partition(sample, rank)[rank])
    if len(candidates) < k:  # the sample under-estimated the k-th distance
        candidates = np.flatnonzero(distances <= kth_smallest_value(distances, k))
    return candidates[np.argsort(distances[candidates], kind="stable")[:k]]


def kth_smallest_value(distances: np.ndarray, k: int) -> int:
    """The k-th smallest of n non-negative integer `distances` (1 ≤ k ≤ n): the least b with at
    least k values ≤ b, read off the cumulative histogram of the values.

    Raises:
        ValueError: k outside [1, n].
    """
    n = len(distances)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    return int(np.searchsorted(np.cumsum(np.bincount(distances)), k))
