import numpy as np
import pytest

from cbir.evaluation import retrieval
from cbir.retrieval import hamming
from cbir.retrieval import hash_index as index_module
from cbir.retrieval.exact import exact_search
from cbir.retrieval.hash_index import HashIndex
from cbir.retrieval.storage import IndexFormatError


def _bit_loop_distance(a, b):
    return sum(int(x) != int(y) for x, y in zip(a, b))


@pytest.mark.parametrize("bits", [12, 48, 64, 100, 128])
def test_packing_and_hamming_against_a_bit_loop(bits):
    rng = np.random.default_rng(bits)
    codes = rng.random((9, bits)) < 0.5
    words = hamming.pack_codes(codes)
    assert words.dtype == np.uint64 and words.shape == (9, -(-bits // 64))
    np.testing.assert_array_equal(hamming.unpack_codes(words, bits), codes)
    # bit j lives in word j // 64 at position j % 64
    j = bits - 1
    assert all(bool((int(words[i, j // 64]) >> (j % 64)) & 1) == codes[i, j] for i in range(9))
    distances = hamming.hamming_distances(words[:4], words)
    expected = [[_bit_loop_distance(codes[i], codes[k]) for k in range(9)] for i in range(4)]
    np.testing.assert_array_equal(distances, expected)


def test_binarize_at_half():
    np.testing.assert_array_equal(hamming.binarize(np.array([[0.2, 0.5, 0.51, 0.49]])), [[False, True, True, False]])


@pytest.mark.parametrize(
    ("bits", "k", "n_threads"), [(16, 25, 1), (16, 25, 3), (100, 40, 2), (128, 700, 2), (12, 1, 1)]
)
def test_hamming_top_k_against_brute_force_with_ties(bits, k, n_threads):
    rng = np.random.default_rng(bits)
    codes = rng.random((713, bits)) < 0.5
    codes[100:130] = codes[5]  # duplicate codes: ties at every distance
    database, queries = hamming.pack_codes(codes[:700]), hamming.pack_codes(codes[700:])
    distances, indices = hamming.hamming_top_k(queries, database, k=k, n_threads=n_threads)
    assert distances.shape == indices.shape == (13, min(k, 700))
    for row in range(13):
        bit_loop = [_bit_loop_distance(codes[700 + row], codes[j]) for j in range(700)]
        expected = sorted(range(700), key=lambda j: (bit_loop[j], j))[:k]
        np.testing.assert_array_equal(indices[row], expected)
        np.testing.assert_array_equal(distances[row], [bit_loop[j] for j in expected])


def test_hamming_top_k_rejects_bad_input():
    codes = hamming.pack_codes(np.zeros((5, 64), bool))
    with pytest.raises(ValueError, match="packed .* alike"):
        hamming.hamming_top_k(codes, hamming.pack_codes(np.zeros((5, 100), bool)), 2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        hamming.hamming_top_k(codes, codes, 0)


@pytest.fixture
def index_and_queries():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(6, 24))
    labels = rng.integers(0, 6, 400)
    features = (centres[labels] + rng.normal(scale=0.6, size=(400, 24))).astype(np.float32)
    projection = rng.normal(size=(24, 32))
    codes = hamming.pack_codes(features @ projection > 0)  # sign random projections: similar -> close codes
    query_features = features[:30] + rng.normal(scale=0.1, size=(30, 24)).astype(np.float32)
    query_codes = hamming.pack_codes(query_features @ projection > 0)
    return HashIndex(codes, features, bits=32, settings={"model": "test"}), query_codes, query_features


def test_two_phase_equals_exhaustive_cosine_when_the_shortlist_is_everything(index_and_queries):
    index, query_codes, query_features = index_and_queries
    expected_scores, expected_indices = exact_search(query_features, index.features, k=10)
    for options in ({"shortlist": len(index)}, {"radius": 32}):
        scores, indices = index.search(query_codes, query_features, k=10, mode="two_phase", **options)
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    cosine_scores, cosine_indices = index.search(query_codes, query_features, k=10, mode="cosine")
    np.testing.assert_array_equal(cosine_indices, expected_indices)


def test_two_phase_in_query_chunks_matches_one_chunk(index_and_queries, monkeypatch):
    index, query_codes, query_features = index_and_queries
    expected = index.search(query_codes, query_features, k=7, shortlist=40)
    monkeypatch.setattr(index_module, "_QUERY_CHUNK", 4)  # 30 queries: 8 chunks, the last one short
    chunked = index.search(query_codes, query_features, k=7, shortlist=40)
    np.testing.assert_array_equal(chunked[1], expected[1])
    np.testing.assert_array_equal(chunked[0], expected[0])


def test_two_phase_reranks_the_hamming_shortlist(index_and_queries):
    index, query_codes, query_features = index_and_queries
    _, shortlist = hamming.hamming_top_k(query_codes, index.codes, 50)
    scores, indices = index.search(query_codes, query_features, k=5, shortlist=50)
    for row in range(len(indices)):
        assert set(indices[row]) <= set(shortlist[row])
        cosine = index.features[shortlist[row]] @ (query_features[row] / np.linalg.norm(query_features[row]))
        np.testing.assert_array_equal(indices[row], shortlist[row][np.argsort(-cosine, kind="stable")[:5]])
    assert np.all(np.diff(scores, axis=1) <= 1e-7) and np.all((scores >= 0) & (scores <= 1))
    hamming_scores, hamming_indices = index.search(query_codes, k=5, mode="hamming")
    distances = hamming.hamming_distances(query_codes, index.codes)
    np.testing.assert_allclose(hamming_scores, 1 - np.take_along_axis(distances, hamming_indices, 1) / 32)


def test_radius_shortlist_fills_up_in_hamming_order(index_and_queries):
    index, query_codes, query_features = index_and_queries
    scores, indices = index.search(query_codes[:3], query_features[:3], k=20, radius=0)
    distances = hamming.hamming_distances(query_codes[:3], index.codes)
    for row in range(3):
        exact = np.flatnonzero(distances[row] == 0)
        assert set(indices[row][: len(exact)]) == set(exact[:20])
        rest = indices[row][len(exact) :]
        assert np.all(np.diff(distances[row][rest]) >= 0)  # filled by increasing Hamming distance


def test_ranking_levels_match_the_search(index_and_queries):
    index, query_codes, query_features = index_and_queries
    levels = index.ranking_levels(query_codes, query_features, shortlist=40)
    _, indices = index.search(query_codes, query_features, k=40, shortlist=40)
    for row in range(len(levels)):
        np.testing.assert_array_equal(np.argsort(levels[row], kind="stable")[:40], indices[row])
        outside = np.setdiff1d(np.arange(len(index)), indices[row])
        distances = hamming.hamming_distances(query_codes[row : row + 1], index.codes)[0]
        np.testing.assert_array_equal(levels[row, outside], 40 + distances[outside])


def test_hash_index_round_trip_and_rejections(index_and_queries, tmp_path):
    index, _, _ = index_and_queries
    path = index.save(tmp_path / "index.npz")
    loaded = HashIndex.load(path, expected_settings={"model": "test"})
    np.testing.assert_array_equal(loaded.codes, index.codes)
    np.testing.assert_allclose(loaded.features, index.features, rtol=1e-6, atol=1e-7)
    assert loaded.bits == 32 and loaded.codes.nbytes == 8 * len(index)  # 8 bytes per 32-bit code (one word)
    with pytest.raises(IndexFormatError, match="model: index has 'test', requested 'other'"):
        HashIndex.load(path, expected_settings={"model": "other"})
    with pytest.raises(IndexFormatError, match="not a readable hash index"):
        HashIndex.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="packed uint64"):
        HashIndex(index.codes[:, :0], index.features, bits=32)


def test_precision_within_radius_by_hand():
    codes = hamming.pack_codes(np.array([[0, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]], bool))
    labels = np.array([0, 0, 1, 1])
    # Query = code 0 (label 0): within radius 2 -> codes 0, 1 (label 0) and 3 (label 1): precision 2/3.
    assert retrieval.precision_within_radius(codes[:1], labels[:1], codes, labels, radius=2) == pytest.approx(2 / 3)
    # A query with nothing inside the radius scores 0.
    far = hamming.pack_codes(np.array([[1, 1, 1, 0]], bool))
    assert retrieval.precision_within_radius(far, np.array([0]), codes[:2], labels[:2], radius=1) == 0.0


@pytest.mark.parametrize("case", ["sample_overestimates", "sample_underestimates", "random"])
def test_k_smallest_against_a_full_sort(case):
    rng = np.random.default_rng(3)
    n = 100_000
    step = n // 4096
    if case == "sample_overestimates":  # the small values all sit between the sampled positions
        distances = np.full(n, 50, np.uint8)
        distances[np.arange(1, n, step)[:30]] = 3
    elif case == "sample_underestimates":  # every sampled position is 0, the rest far away
        distances = np.full(n, 30, np.uint8)
        distances[::step] = 0
    else:
        distances = rng.integers(0, 65, n).astype(np.uint8)
    for k in (1, 10, 5000, n):
        expected = np.lexsort((np.arange(n), distances))[:k]
        np.testing.assert_array_equal(hamming.k_smallest(distances, k), expected)
        assert hamming.kth_smallest_value(distances, k) == np.sort(distances)[k - 1]


def test_kth_smallest_value_on_wide_codes():
    """uint16 distances (codes over 255 bits) where the sample's guess is far off in both directions."""
    rng = np.random.default_rng(4)
    for low_fraction in (0.0001, 0.5):
        distances = rng.integers(400, 1000, 50_000).astype(np.uint16)
        low = rng.random(50_000) < low_fraction
        distances[low] = rng.integers(0, 30, low.sum())
        for k in (1, 3, 2000, 49_999):
            assert hamming.kth_smallest_value(distances, k) == np.sort(distances)[k - 1], (low_fraction, k)
    with pytest.raises(ValueError, match=r"k must be in \[1, 50000\], got 0"):
        hamming.kth_smallest_value(distances, 0)
