"""Every index type against brute force at its exact setting, recall at a non-exact one, save / load."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cbir.retrieval.indexes import INDEX_TYPES, load_index, make_index
from cbir.retrieval.storage import IndexFormatError

N, DIM, K = 2000, 32, 10
# The parameters at which each kind must be exact: every list probed, a refine list or shortlist covering
# the database, an HNSW queue as large as the database, LSH with 2-bit tables so every bucket is probed.
EXACT = {
    "flat": ({}, {}),
    "kdtree": ({"leaf_size": 20}, {}),
    "balltree": ({"leaf_size": 20}, {}),
    "lsh": ({"tables": 4, "bits": 1}, {"probes": 1}),
    "ivf_flat": ({"nlist": 16}, {"nprobe": 16}),
    "pq": ({"m": 8, "nbits": 8}, {"refine": N}),
    "ivfpq": ({"nlist": 16, "m": 8, "nbits": 8}, {"nprobe": 16, "refine": N}),
    "hnsw": ({"M": 16}, {"ef_search": N}),
    "two_phase": ({"bits": 32}, {"shortlist": N}),
}
BINARY = {
    "binary_hnsw": ({"bits": 32, "M": 16}, {"ef_search": N}),
    "binary_ivf": ({"bits": 32, "nlist": 8}, {"nprobe": 8}),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, DIM)).astype(np.float32), rng.standard_normal((25, DIM)).astype(np.float32)


def _reference(database, queries, metric):
    if metric == "cosine":
        distances = cdist(queries.astype(np.float64), database.astype(np.float64), "cosine")
        scores = 1.0 - distances / 2.0  # (1 + cos) / 2
    else:
        distances = cdist(queries.astype(np.float64), database.astype(np.float64), "euclidean")
        scores = 1.0 / (1.0 + distances)
    order = np.argsort(distances, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(scores, order, axis=1), order


def test_every_kind_is_tested():
    assert set(EXACT) | set(BINARY) == set(INDEX_TYPES)


@pytest.mark.parametrize("kind", sorted(EXACT))
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_setting_returns_the_exact_neighbours(data, kind, metric):
    if kind == "two_phase" and metric == "euclidean":
        pytest.skip("two_phase re-ranks by cosine only (tested to refuse euclidean below)")
    database, queries = data
    build, search = EXACT[kind]
    index = make_index(kind, DIM, metric=metric, **build).build(database)
    index.set_search_params(**search)
    scores, indices = index.search(queries, K)
    reference_scores, reference_indices = _reference(database, queries, metric)
    np.testing.assert_array_equal(indices, reference_indices)
    np.testing.assert_allclose(scores, reference_scores, atol=1e-5)
    assert scores.dtype == np.float32 and indices.dtype == np.int64


def _hamming_to_found(index, database, queries, indices):
    unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (database, queries)]  # as the index sees them
    codes, query_codes = index.encoder.encode(unit[0]), index.encoder.encode(unit[1])
    hamming = (query_codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    return np.take_along_axis(hamming, indices, axis=1), np.sort(hamming, axis=1)[:, :K]


def test_binary_ivf_probing_every_list_ranks_like_brute_force_hamming(data):
    database, queries = data
    build, search = BINARY["binary_ivf"]
    index = make_index("binary_ivf", DIM, **build).build(database)
    index.set_search_params(**search)
    scores, indices = index.search(queries, K)
    found, expected = _hamming_to_found(index, database, queries, indices)
    np.testing.assert_array_equal(found, expected)  # faiss breaks Hamming ties its own way: compare distances
    np.testing.assert_allclose(scores, 1.0 - expected / 32)


def test_binary_hnsw_with_a_large_queue_ranks_like_brute_force_hamming(data):
    database, queries = data
    build, search = BINARY["binary_hnsw"]
    index = make_index("binary_hnsw", DIM, **build).build(database)
    index.set_search_params(**search)
    scores, indices = index.search(queries, K)
    found, expected = _hamming_to_found(index, database, queries, indices)
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, 1.0 - expected / 32)


def test_binary_index_over_given_codes(data):
    database, queries = data
    rng = np.random.default_rng(1)
    codes, query_codes = rng.random((N, 16)) < 0.5, rng.random((5, 16)) < 0.5
    index = make_index("two_phase", DIM, bits=16).build_from_codes(codes, database)
    index.set_search_params(shortlist=0)  # Hamming ranking alone: ties by lower index
    _, indices = index.search_codes(query_codes, K)
    hamming = (query_codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(indices, np.argsort(hamming, axis=1, kind="stable")[:, :K])


def test_approximate_settings_still_find_most_neighbours():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((20, DIM))
    database = (centres[rng.integers(0, 20, N)] + 0.3 * rng.standard_normal((N, DIM))).astype(np.float32)
    queries = (centres[rng.integers(0, 20, 50)] + 0.3 * rng.standard_normal((50, DIM))).astype(np.float32)
    _, truth = _reference(database, queries, "cosine")
    for kind, build, search, floor in [
        ("hnsw", {"M": 16}, {"ef_search": 16}, 0.8),
        ("ivf_flat", {"nlist": 20}, {"nprobe": 3}, 0.6),
        ("ivfpq", {"nlist": 20, "m": 8, "nbits": 6}, {"nprobe": 3, "refine": 5}, 0.6),
    ]:
        index = make_index(kind, DIM, **build).build(database)
        index.set_search_params(**search)
        _, indices = index.search(queries, K)
        recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(indices, truth)])
        assert floor <= recall < 1.0 or recall == 1.0, (kind, recall)
        assert recall >= floor, (kind, recall)


@pytest.mark.parametrize("kind", sorted(EXACT) + sorted(BINARY))
def test_save_load_round_trip_and_kind_check(data, tmp_path, kind):
    database, queries = data
    build, search = {**EXACT, **BINARY}[kind]
    index = make_index(kind, DIM, **build).build(database[:500])
    index.set_search_params(**{name: min(value, 500) for name, value in search.items()})
    path = index.save(tmp_path / f"{kind}.npz")
    loaded = load_index(path)
    assert type(loaded) is type(index) and loaded.search_params() == index.search_params()
    assert loaded.ntotal == 500 and loaded.params == index.params
    for found, expected in zip(loaded.search(queries, K), index.search(queries, K)):
        np.testing.assert_array_equal(found, expected)
    other = "hnsw" if kind != "hnsw" else "flat"
    with pytest.raises(IndexFormatError, match=f"{kind}.npz: expected a '{other}' index, found '{kind}'"):
        load_index(path, kind=other)
    with pytest.raises(IndexFormatError, match="expected a"):
        type(make_index(other, DIM)).load(path)


def test_bad_files_and_arguments(tmp_path, data):
    database, queries = data
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(IndexFormatError, match="other.npz: not an index file"):
        load_index(tmp_path / "other.npz")
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    with pytest.raises(IndexFormatError, match="garbage.npz"):
        load_index(tmp_path / "garbage.npz")
    with pytest.raises(IndexFormatError, match="no such index file"):
        load_index(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="unknown index kind 'annoy'"):
        make_index("annoy", DIM)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['ef'\]"):
        make_index("hnsw", DIM, ef=3)
    index = make_index("hnsw", DIM).build(database[:100])
    with pytest.raises(ValueError, match=r"unknown search parameter\(s\) \['nprobe'\]"):
        index.set_search_params(nprobe=3)
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.search(queries[:, :8], K)
    with pytest.raises(ValueError, match="metric must be 'cosine'"):
        make_index("two_phase", DIM, metric="euclidean")
    with pytest.raises(ValueError, match="divisible by 8"):
        make_index("binary_hnsw", DIM, bits=12)
    with pytest.raises(ValueError, match="must divide the dimension"):
        make_index("pq", DIM, m=5).build(database)


def test_fewer_results_than_k_are_padded(data):
    database, queries = data
    index = make_index("flat", DIM).build(database[:3])
    scores, indices = index.search(queries[:2], 5)
    assert indices.shape == (2, 5) and (indices[:, 3:] == -1).all() and (scores[:, 3:] == 0).all()
    lsh = make_index("lsh", DIM, tables=1, bits=20).build(database[:50])  # 20-bit buckets: mostly empty
    scores, indices = lsh.search(queries, K)
    assert (indices == -1).any() and (scores[indices == -1] == 0).all()
