"""The distance registry against scipy, and search / evaluation under any registry distance against
brute-force loops and scikit-learn."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics import average_precision_score

from cbir.evaluation.retrieval import retrieval_metrics
from cbir.retrieval import distances
from cbir.retrieval.exact import exact_search

BOOLEAN = {"dice", "jaccard", "hamming", "matching", "rogerstanimoto", "russellrao", "sokalsneath", "yule"}
SCIPY_OPTIONS = {"minkowski": {"p": distances.MINKOWSKI_P}}


def _reference(x, y, name):
    return cdist(x.astype(np.float64), y.astype(np.float64), name, **SCIPY_OPTIONS.get(name, {}))


BOOLEAN_ONLY = {"dice", "matching", "rogerstanimoto", "russellrao", "sokalsneath", "yule"}  # scipy: booleans
NOT_SCIPY = {"chi2", "intersection"}  # histogram distances scipy lacks: checked against loops below


@pytest.mark.parametrize("name", sorted(set(distances.DISTANCES) - BOOLEAN_ONLY - NOT_SCIPY))
def test_every_registry_distance_matches_scipy_on_floats(name):
    rng = np.random.default_rng(0)
    x, y = rng.random((7, 12)), rng.random((5, 12))  # non-negative: jensenshannon needs it
    x[0, :4] = 0.0  # zeros: canberra's and jaccard's 0 / 0 terms
    y[1, :4] = 0.0
    np.testing.assert_allclose(distances.pairwise_distances(x, y, name), _reference(x, y, name), atol=1e-10)


@pytest.mark.parametrize("name", sorted(BOOLEAN))
def test_boolean_registry_distances_match_scipy(name):
    rng = np.random.default_rng(1)
    x, y = rng.random((9, 16)) < 0.4, rng.random((6, 16)) < 0.4
    x[0] = False  # an all-False row: the 0 / 0 conventions
    y[0] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = _reference(x, y, name)
    np.testing.assert_allclose(distances.pairwise_distances(x, y, name), expected, atol=1e-10, equal_nan=True)


def _histograms(rng, n, bins=10):
    counts = rng.integers(0, 5, (n, bins)).astype(np.float64)
    counts[0, :5] = 0.0  # empty bins on both sides: chi2's 0 / 0 terms
    counts[:, 0] = 0.0
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def test_histogram_distances_match_a_python_loop_and_a_hand_case():
    rng = np.random.default_rng(3)
    x, y = _histograms(rng, 6), _histograms(rng, 4)
    chi2 = [[0.5 * sum((a - b) ** 2 / (a + b) for a, b in zip(u, v) if a + b > 0) for v in y] for u in x]
    intersection = [[1.0 - sum(min(a, b) for a, b in zip(u, v)) for v in y] for u in x]
    np.testing.assert_allclose(distances.pairwise_distances(x, y, "chi2"), chi2, atol=1e-12)
    np.testing.assert_allclose(distances.pairwise_distances(x, y, "intersection"), intersection, atol=1e-12)
    # By hand: (0.5, 0.5, 0) vs (0, 0.5, 0.5): chi2 = ½ (0.25/0.5 + 0 + 0.25/0.5) = 0.5; overlap 0.5.
    a, b = np.array([[0.5, 0.5, 0.0]]), np.array([[0.0, 0.5, 0.5]])
    assert distances.pairwise_distances(a, b, "chi2")[0, 0] == pytest.approx(0.5)
    assert distances.pairwise_distances(a, b, "intersection")[0, 0] == pytest.approx(0.5)
    assert distances.pairwise_distances(a, a, "chi2")[0, 0] == 0.0
    disjoint = np.array([[0.0, 0.0, 1.0]])
    assert distances.pairwise_distances(a, disjoint, "chi2")[0, 0] == pytest.approx(1.0)  # the maximum


def test_braycurtis_of_two_zero_rows_is_nan_like_scipy():
    zeros = np.zeros((1, 3))
    with np.errstate(invalid="ignore"):
        assert np.isnan(cdist(zeros, zeros, "braycurtis")[0, 0])
    assert np.isnan(distances.pairwise_distances(zeros, zeros, "braycurtis")[0, 0])


def test_scores_lie_in_unit_interval_and_decrease_with_distance():
    for name, distance in distances.DISTANCES.items():
        if name in ("hamming", "jaccard", "dice", "chi2", "intersection"):
            d = np.array([0.0, 0.5, 1.0])  # fractions (the histogram distances of L1-normalised histograms)
        elif name in ("cosine", "correlation"):
            d = np.array([0.0, 0.5, 1.0, 2.0])
        else:
            d = np.array([0.0, 0.1, 0.5, 1.0, 2.0, 7.0])
        score = distance.to_score(d)
        assert score[0] == 1.0 and np.all(np.diff(score) < 0) and np.all((score >= 0) & (score <= 1)), name


def test_aliases_and_unknown_names():
    assert distances.get_distance("L2").name == "euclidean"
    assert distances.get_distance("squared-L2").name == "sqeuclidean"
    assert distances.get_distance("angular").name == "cosine"
    with pytest.raises(ValueError, match=r"unknown distance 'taxicab'.*'cityblock'.*'L1'"):
        distances.get_distance("taxicab")
    with pytest.raises(ValueError, match=r"\(3, 4\) and \(2, 5\)"):
        distances.pairwise_distances(np.zeros((3, 4)), np.zeros((2, 5)), "cosine")


@pytest.mark.parametrize("metric", ["cityblock", "sqeuclidean", "canberra", "hamming"])
def test_exact_search_under_a_registry_distance_matches_a_loop(metric):
    rng = np.random.default_rng(1)
    database = rng.integers(0, 3, (60, 6)).astype(np.float32)  # small integers: many exact ties
    queries = rng.integers(0, 3, (9, 6)).astype(np.float32)
    scores, indices = exact_search(queries, database, k=7, normalize=False, database_chunk=16, metric=metric)
    distance = distances.get_distance(metric)
    for row, query in enumerate(queries):
        values = [
            cdist(query[None].astype(np.float64), item[None].astype(np.float64), metric)[0, 0] for item in database
        ]
        expected = sorted(range(len(database)), key=lambda j: (values[j], j))[:7]  # nearest first, ties by index
        assert indices[row].tolist() == expected
        np.testing.assert_allclose(scores[row], distance.to_score(np.array(values)[expected]), rtol=1e-6)


def test_retrieval_metrics_under_a_distance_match_scikit_learn():
    rng = np.random.default_rng(2)
    database, queries = rng.normal(size=(80, 5)), rng.normal(size=(12, 5))
    database_labels, query_labels = rng.integers(0, 3, 80), rng.integers(0, 3, 12)
    result = retrieval_metrics(queries, query_labels, database, database_labels, metric="cityblock", normalize=False)
    expected = [
        average_precision_score(database_labels == label, -cdist(query[None], database, "cityblock")[0])
        for query, label in zip(queries, query_labels)
    ]
    assert result["map"] == pytest.approx(np.mean(expected), rel=1e-6)


def test_cosine_through_the_registry_equals_the_default_ranking():
    rng = np.random.default_rng(3)
    database, queries = rng.normal(size=(50, 8)), rng.normal(size=(6, 8))
    labels, query_labels = rng.integers(0, 4, 50), rng.integers(0, 4, 6)
    by_cosine = retrieval_metrics(queries, query_labels, database, labels)
    by_squared_l2 = retrieval_metrics(queries, query_labels, database, labels, metric="sqeuclidean")  # unit rows
    assert by_cosine["map"] == pytest.approx(by_squared_l2["map"], rel=1e-9)


# --- identities between metrics (notebook 04 shows them on real features) ------------------------


def _ranking(distances: np.ndarray) -> np.ndarray:
    """Each row's items in order, nearest first, ties by index (a stable sort)."""
    return np.argsort(distances, axis=1, kind="stable")


def test_sqeuclidean_is_the_square_of_euclidean_and_ranks_alike():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(7, 10)), rng.normal(size=(40, 10))
    squared = distances.pairwise_distances(x, y, "sqeuclidean")
    plain = distances.pairwise_distances(x, y, "euclidean")
    np.testing.assert_allclose(squared, plain**2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(squared, _reference(x, y, "euclidean") ** 2, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(_ranking(squared), _ranking(_reference(x, y, "euclidean")))


def test_cosine_is_half_the_squared_euclidean_distance_of_unit_vectors():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 9)) * 3.0, rng.normal(size=(30, 9))
    unit_x = x / np.linalg.norm(x, axis=1, keepdims=True)
    unit_y = y / np.linalg.norm(y, axis=1, keepdims=True)
    cosine = distances.pairwise_distances(x, y, "cosine")
    # ‖x̂ − ŷ‖² = 2 − 2 cos(x, y): cosine distance = ‖x̂ − ŷ‖² / 2, a monotone map of Euclidean on unit rows.
    np.testing.assert_allclose(cosine, _reference(unit_x, unit_y, "sqeuclidean") / 2, atol=1e-12)
    np.testing.assert_array_equal(_ranking(cosine), _ranking(_reference(unit_x, unit_y, "euclidean")))
    raw = _ranking(_reference(x, y, "euclidean"))
    assert not np.array_equal(_ranking(cosine), raw)  # on the raw rows the norms change the ranking


def test_correlation_is_the_cosine_of_centred_vectors():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(5, 12)) + 4.0, rng.normal(size=(25, 12)) - 1.0
    centred_x, centred_y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    correlation = distances.pairwise_distances(x, y, "correlation")
    np.testing.assert_allclose(correlation, _reference(centred_x, centred_y, "cosine"), atol=1e-12)
    np.testing.assert_allclose(correlation, 1 - np.corrcoef(x, y)[:5, 5:], atol=1e-12)  # Pearson, by numpy
    np.testing.assert_array_equal(_ranking(correlation), _ranking(_reference(centred_x, centred_y, "cosine")))
