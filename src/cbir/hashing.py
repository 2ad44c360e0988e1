"""Deep binary hash codes (Lin, Yang, Hsiao & Chen, "Deep learning of binary hash codes for fast
image retrieval", CVPR Workshops 2015 — DLBHC) and their packed Hamming-distance search.

Model: a pretrained topless CNN, dense ReLU layers, a *latent* layer of H sigmoid units, then a
softmax classifier. Trained as a classifier, the latent activations become binary-like; a
threshold at 0.5 gives an H-bit code per image. Retrieval is two-phase (`cbir.search.HashIndex`):
a Hamming shortlist, then re-ranking by cosine similarity of real-valued features.

Codes are packed into little-endian uint64 words, bit j of a code in word j // 64 at position
j % 64 (8 bytes per 64-bit code), and Hamming distances are population counts of XORs — never
one byte per bit on the search path. `hamming_distances` gives the whole matrix with NumPy
(`np.bitwise_count`); `hamming_top_k`, the search path, runs a compiled kernel
(`cbir._hamming_kernels`) that needs no such matrix.
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import layers

from cbir.backbones import Backbone, set_trainable_layers
from cbir.pooling import GlobalPooling

__all__ = ["SUPPORTED_BITS", "binarize", "classifier_view", "build_hashing_head", "build_hashing_model", "hamming_distances",
           "hamming_top_k", "k_smallest", "kth_smallest_value", "pack_codes", "precision_within_radius", "unpack_codes"]

SUPPORTED_BITS = (12, 16, 24, 32, 36, 48, 64, 128)


def _check_bits(bits: int) -> None:
    if bits <= 0 or bits > 1024:
        raise ValueError(f"bits must be in [1, 1024], got {bits} (the paper's lengths: {SUPPORTED_BITS})")


def _top(x, bits: int, hidden_units: Sequence[int], num_classes: int, dropout: float):
    for index, units in enumerate(hidden_units):
        x = layers.Dense(units, activation="relu", name=f"hidden_{index}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dropout_{index}")(x)
    latent = layers.Dense(bits, activation="sigmoid", name="latent")(x)
    probabilities = layers.Dense(num_classes, activation="softmax", name="class_probabilities")(latent)
    return {"latent": latent, "class_probabilities": probabilities}


def build_hashing_head(input_dim: int, bits: int = 48, hidden_units: Sequence[int] = (1024,), num_classes: int = 10,
                       dropout: float = 0.3, name: str = "hashing_head") -> keras.Model:
    """The DLBHC top on cached backbone features: (batch, input_dim) → named outputs.

    Outputs:
        ``latent``: float32 (batch, bits), sigmoid activations in [0, 1];
        ``class_probabilities``: float32 (batch, num_classes), softmax.
    Raises:
        ValueError: bits out of range or non-positive sizes.
    """
    _check_bits(bits)
    if input_dim <= 0 or num_classes < 2:
        raise ValueError(f"need input_dim > 0 and num_classes >= 2, got {input_dim}, {num_classes}")
    inputs = keras.Input((input_dim,), name="features")
    return keras.Model(inputs, _top(inputs, bits, hidden_units, num_classes, dropout), name=name)


def build_hashing_model(backbone: Backbone, bits: int = 48, hidden_units: Sequence[int] = (1024,),
                        num_classes: int = 10, trainable_layers: int = 0, dropout: float = 0.3,
                        name: str = "dlbhc") -> keras.Model:
    """The full DLBHC network from images: backbone (frozen but for its last `trainable_layers`
    weighted layers; BatchNormalization stays frozen), GeM pooling when the backbone outputs a
    map (VGG16 ``fc2`` is used as is), dense ReLU layers, the sigmoid latent layer, softmax.

    Input / outputs:
        float32 RGB images in [0, 255], shape (batch, *backbone.input_size, 3) →
        ``{"latent": (batch, bits), "class_probabilities": (batch, num_classes)}``.
    Raises:
        ValueError: bits out of range or `trainable_layers` < 0.
    """
    _check_bits(bits)
    network = backbone.model
    set_trainable_layers(network, trainable_layers)
    inputs = keras.Input((*backbone.input_size, 3), name="image")
    x = network(layers.Lambda(backbone.preprocess, name="preprocess")(inputs), training=False)
    if backbone.is_convolutional:
        x = GlobalPooling("gem", name="gem_pooling")(x)
    return keras.Model(inputs, _top(x, bits, hidden_units, num_classes, dropout), name=name)


def classifier_view(model: keras.Model) -> keras.Model:
    """The hashing model seen as a plain classifier (same weights): what DLBHC trains.

    Keras' compiled metrics want a target for every output of a multi-output model; the latent
    output has none, so training goes through this single-output view.
    """
    return keras.Model(model.input, model.output["class_probabilities"], name=f"{model.name}_classifier")


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


def hamming_top_k(query_words: np.ndarray, database_words: np.ndarray, k: int,
                  n_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest codes in Hamming distance, ties by lower database index.

    A compiled kernel (`cbir._hamming_kernels`, Numba): per group of 8 queries, one
    cache-blocked pass of XOR and population count over the database; per query, a guess at the
    k-th distance from a sample, one pass collecting the codes at or below it, and a counting
    sort of those only — O(n_database) per query, no sort of the n distances. Groups run in
    parallel on `n_threads` threads (default: all of Numba's, one per CPU), each with
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
    import numba

    from cbir._hamming_kernels import GROUP, hamming_top_k_kernel

    query_words, database_words = _packed_alike(query_words, database_words)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, len(database_words))
    out_distances = np.empty((len(query_words), k), np.int32)
    out_indices = np.empty((len(query_words), k), np.int64)
    if k == 0 or len(query_words) == 0:
        return out_distances, out_indices
    previous = numba.get_num_threads()
    threads = max(1, min(n_threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    try:
        n_chunks = min(threads, -(-len(query_words) // GROUP))  # one run of query groups per thread
        hamming_top_k_kernel(query_words, database_words, k, out_distances, out_indices,
                             np.empty((n_chunks, GROUP, len(database_words)), _distance_dtype(query_words.shape[1])),
                             np.empty((n_chunks, len(database_words)), np.int64))
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


def precision_within_radius(query_words: np.ndarray, query_labels: np.ndarray, database_words: np.ndarray,
                            database_labels: np.ndarray, radius: int = 2, query_chunk: int = 256) -> float:
    """Mean precision of the codes within Hamming `radius` of each query (DLBHC, Table 1 of many
    hashing papers). A query that retrieves nothing scores 0, the usual convention.

    Returns:
        float in [0, 1].
    """
    query_labels, database_labels = np.asarray(query_labels), np.asarray(database_labels)
    precisions = []
    for start in range(0, len(query_words), query_chunk):
        within = hamming_distances(query_words[start:start + query_chunk], database_words) <= radius
        relevant = query_labels[start:start + query_chunk, None] == database_labels[None, :]
        retrieved = within.sum(axis=1)
        precisions.append(np.where(retrieved > 0, (within & relevant).sum(axis=1) / np.maximum(retrieved, 1), 0.0))
    return float(np.mean(np.concatenate(precisions)))
