"""recall@k and the Pareto frontier against brute-force definitions."""

import numpy as np
import pytest

from cbir.evaluation.ann import knn_recall, pareto_frontier


def test_knn_recall_equals_set_intersection_per_query():
    rng = np.random.default_rng(0)
    true = np.stack([rng.permutation(50)[:10] for _ in range(30)])
    found = np.stack([rng.permutation(50)[:10] for _ in range(30)])
    found[:5] = true[:5][:, ::-1]  # same set, other order: recall 1
    found[5, 3] = -1  # a missing result never counts
    expected = np.mean([len(set(f[:10]) & set(t[:10]) - {-1}) / 10 for f, t in zip(found, true)])
    assert knn_recall(found, true, 10) == pytest.approx(expected)


def test_knn_recall_by_hand_and_errors():
    true = np.array([[0, 1, 2], [3, 4, 5]])
    found = np.array([[2, 9, 0], [-1, -1, -1]])
    assert knn_recall(found, true, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert knn_recall(found, true, 1) == pytest.approx(0.0)  # found[0, 0] = 2 is not true[0, 0] = 0
    with pytest.raises(ValueError, match="k=4"):
        knn_recall(found, true, 4)
    with pytest.raises(ValueError, match="k must be"):
        knn_recall(found, true, 0)


def test_pareto_frontier_against_dominance_by_brute_force():
    rng = np.random.default_rng(1)
    recall = np.round(rng.uniform(size=60), 1)  # many ties in recall
    qps = np.round(rng.uniform(1, 100, size=60))
    found = {(recall[i], qps[i]) for i in pareto_frontier(recall, qps)}
    undominated = {
        (recall[i], qps[i])
        for i in range(60)
        if not any(
            recall[j] >= recall[i] and qps[j] >= qps[i] and (recall[j] > recall[i] or qps[j] > qps[i])
            for j in range(60)
        )
    }
    assert found == undominated and len(pareto_frontier(recall, qps)) == len(undominated)
    order = pareto_frontier(recall, qps)
    assert np.all(np.diff(recall[order]) > 0) and np.all(np.diff(qps[order]) < 0)


def test_pareto_frontier_by_hand():
    recall = np.array([0.5, 0.9, 0.7, 0.9, 0.6])
    qps = np.array([100.0, 10.0, 50.0, 5.0, 40.0])
    assert pareto_frontier(recall, qps).tolist() == [0, 2, 1]
