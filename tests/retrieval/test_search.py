import json
import tracemalloc

import numpy as np
import pytest

from cbir.retrieval import exact
from cbir.retrieval.exact import exact_search
from cbir.retrieval.feature_index import FeatureIndex
from cbir.retrieval.ranking import cosine_to_score, top_k
from cbir.retrieval.storage import IndexFormatError


def _brute_force(queries, database, k):
    """Every (query, item) dot product in exact integer arithmetic; ties broken by lower index."""
    dot = [[int(np.dot(q.astype(np.int64), d.astype(np.int64))) for d in database] for q in queries]
    order = np.array([sorted(range(len(database)), key=lambda j: (-row[j], j))[:k] for row in dot])
    return np.take_along_axis(np.array(dot, float), order, axis=1), order


def test_exact_search_matches_brute_force_across_chunkings():
    # Small integers keep every dot product exact in float32, so ties are real ties.
    rng = np.random.default_rng(0)
    database = rng.integers(-1, 2, size=(500, 6)).astype(np.float32) / 4
    database[250:] = database[:250]  # exact duplicates: every score is tied with another row
    queries = rng.integers(-1, 2, size=(37, 6)).astype(np.float32) / 4
    expected_dot, expected_indices = _brute_force(queries * 4, database * 4, 9)
    expected_scores = np.clip((1 + expected_dot / 16) / 2, 0, 1)  # score = (1 + similarity) / 2
    for query_chunk, database_chunk in ((1024, 16384), (5, 64), (1, 7)):
        scores, indices = exact_search(
            queries, database, k=9, query_chunk=query_chunk, database_chunk=database_chunk, normalize=False
        )
        np.testing.assert_array_equal(indices, expected_indices)  # ties by lower index, whatever the chunks
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    assert scores.dtype == np.float32 and indices.dtype == np.int64


def test_exact_search_agrees_with_faiss():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    database = rng.normal(size=(2000, 32)).astype(np.float32)
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    index = faiss.IndexFlatIP(32)
    normalized = database / np.linalg.norm(database, axis=1, keepdims=True)
    index.add(normalized)
    cosine, reference = index.search(queries / np.linalg.norm(queries, axis=1, keepdims=True), 10)
    scores, indices = exact_search(queries, database, k=10, database_chunk=300)
    np.testing.assert_array_equal(indices, reference)
    np.testing.assert_allclose(scores, (1 + cosine) / 2, atol=1e-6)


def test_score_mapping_by_hand():
    np.testing.assert_allclose(cosine_to_score(np.array([1.0, 0.0, -1.0, 1.0000001])), [1.0, 0.5, 0.0, 1.0])
    scores, _ = exact_search(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]), k=3)
    np.testing.assert_allclose(scores, [[1.0, 0.5, 0.0]])


def test_memory_stays_bounded_for_a_large_database():
    """20 000 × 20 000 similarities would need 1.6 GB; the chunked search must stay far below."""
    rng = np.random.default_rng(2)
    database = rng.normal(size=(20000, 64)).astype(np.float32)
    queries = rng.normal(size=(20000, 64)).astype(np.float32)
    tracemalloc.start()
    exact_search(queries, database, k=5, query_chunk=512, database_chunk=4096, normalize=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200e6, f"peak {peak / 1e6:.0f} MB"


def test_top_k_ties_and_caps():
    values, columns = top_k(np.array([[1.0, 3.0, 3.0, 2.0, 3.0]]), 2)
    np.testing.assert_array_equal(columns, [[1, 2]])
    values, columns = top_k(np.array([[1.0, 2.0]]), 5)
    np.testing.assert_array_equal(columns, [[1, 0]])


def test_exact_search_rejects_bad_input():
    with pytest.raises(ValueError, match="query dim 3 != database dim 4"):
        exact_search(np.ones((2, 3)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        exact_search(np.ones((2, 3)), np.ones((5, 3)), k=0)


SETTINGS = {
    "backbone": "efficientnet_lite0",
    "weights": "imagenet",
    "layer": "head_activation",
    "pooling": "gem",
    "pooling_options": {"p": 3.0},
    "input_size": [224, 224],
}


def test_feature_index_round_trip_and_atomic_replacement(tmp_path):
    rng = np.random.default_rng(3)
    first = FeatureIndex(
        SETTINGS,
        [{"path": f"/x/{i}.jpg", "size": i, "mtime_ns": i} for i in range(4)],
        rng.normal(size=(4, 6)).astype(np.float32),
    )
    first.save(tmp_path)
    loaded = FeatureIndex.load(tmp_path, expected_settings=SETTINGS)
    np.testing.assert_array_equal(loaded.features, first.features)
    assert loaded.entries == first.entries and loaded.settings == SETTINGS
    second = FeatureIndex(SETTINGS, first.entries[:2], first.features[:2])
    second.save(tmp_path)
    assert len(list(tmp_path.glob("features-*.npy"))) == 1  # the superseded matrix is gone
    assert len(FeatureIndex.load(tmp_path).entries) == 2
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_feature_index_rejects_mismatch_newer_format_and_garbage(tmp_path):
    FeatureIndex(SETTINGS, [], np.empty((0, 6), np.float32)).save(tmp_path)
    with pytest.raises(IndexFormatError, match="backbone: index has 'efficientnet_lite0', requested 'vgg16'"):
        FeatureIndex.load(tmp_path, expected_settings={"backbone": "vgg16"})
    manifest = json.loads((tmp_path / "index.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="index format 99 is newer"):
        FeatureIndex.load(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="unreadable index manifest"):
        FeatureIndex.load(tmp_path)
    with pytest.raises(IndexFormatError, match="not a cbir index"):
        FeatureIndex.load(tmp_path / "elsewhere")


def test_subset_inner_products_against_a_numpy_loop():
    rng = np.random.default_rng(5)
    database = rng.normal(size=(300, 20)).astype(np.float32)
    queries = rng.normal(size=(6, 20)).astype(np.float32)
    candidates = rng.integers(0, 300, (6, 45))
    expected = np.array([[queries[i] @ database[j] for j in row] for i, row in enumerate(candidates)])
    np.testing.assert_allclose(
        exact.subset_inner_products(queries, database, candidates), expected, rtol=1e-5, atol=1e-5
    )
    assert exact.subset_inner_products(queries, database, candidates[:, :0]).shape == (6, 0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 300\), got \[.*, 300\]"):
        exact.subset_inner_products(queries, database, np.where(candidates == candidates.max(), 300, candidates))
    with pytest.raises(ValueError, match="must lie in"):
        exact.subset_inner_products(queries, database, -candidates - 1)
    with pytest.raises(ValueError, match=r"candidates must be \(n_queries=6, m\)"):
        exact.subset_inner_products(queries, database, candidates[:5])
