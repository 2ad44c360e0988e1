"""Triplet ranks against a full argsort, success with ties, the statistics against hand-worked values."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cbir.data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_SUPERCLASSES
from cbir.evaluation import triplets as tr


def test_ranks_equal_positions_in_a_full_sort_ties_included():
    rng = np.random.default_rng(0)
    database = rng.integers(0, 3, (40, 3)).astype(np.float64)  # small integers: many equal distances
    queries = rng.integers(0, 3, (6, 3)).astype(np.float64)
    cases = tr.Triplets(rng.integers(0, 6, 50), rng.integers(0, 40, 50), rng.integers(0, 40, 50))
    for metric in ("cityblock", "sqeuclidean", "hamming"):
        ranks = tr.triplet_ranks(queries, database, cases, metric, chunk_size=4)
        for t in range(len(cases)):
            row = cdist(queries[cases.queries[t]][None], database, metric)[0]
            order = np.argsort(row, kind="stable")
            sorted_row = row[order]
            for target, rank in (
                (cases.positives[t], ranks.positive_rank[t]),
                (cases.negatives[t], ranks.negative_rank[t]),
            ):
                assert rank == np.searchsorted(sorted_row, row[target], side="left")  # first position of its value
            assert ranks.positive_distance[t] == pytest.approx(row[cases.positives[t]])


def test_success_counts_a_tie_as_one_half():
    ranks = tr.TripletRanks(np.zeros(3, int), np.zeros(3, int), np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0]))
    np.testing.assert_array_equal(ranks.success, [1.0, 0.5, 0.0])


def test_nan_distances_count_as_farthest():
    codes = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0]], float)
    cases = tr.Triplets(np.array([0]), np.array([1]), np.array([0]))  # dice(0, 0) is NaN
    ranks = tr.triplet_ranks(codes[:1], codes, cases, "dice")
    assert ranks.negative_rank[0] == 2 and ranks.success[0] == 1.0


def test_mcnemar_and_holm_against_hand_worked_values():
    first = np.array([1] * 8 + [0] * 2 + [1] * 5)
    second = np.array([0] * 8 + [1] * 2 + [1] * 5)  # b = 8, c = 2
    assert tr.mcnemar_exact(first, second) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert tr.mcnemar_exact(first, first) == 1.0
    # Holm: sorted 0.01, 0.02, 0.04 scaled by 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), in input order.
    np.testing.assert_allclose(tr.holm([0.04, 0.01, 0.02]), [0.04, 0.03, 0.04])
    np.testing.assert_allclose(tr.holm([0.5, 0.6]), [1.0, 1.0])


def test_bootstrap_resamples_whole_queries():
    values = np.array([1.0, 1.0, 0.0, 0.0])
    low, high = tr.bootstrap_interval(values, np.array([0, 0, 1, 1]), n_resamples=2000)
    assert (low, high) == (0.0, 1.0)  # two queries: each resample is all-right, all-wrong or half
    many = np.tile([1.0, 0.0, 1.0, 1.0], 500)
    low, high = tr.bootstrap_interval(many, np.arange(len(many)), n_resamples=500)
    assert low < 0.75 < high and high - low < 0.05


def test_label_triplets_follow_the_super_classes():
    rng = np.random.default_rng(3)
    database_labels, query_labels = rng.integers(0, 10, 500), rng.integers(0, 10, 200)
    group = {c: name for name, members in FASHION_MNIST_SUPERCLASSES.items() for c in members}
    assert sorted(group) == list(range(len(FASHION_MNIST_CLASSES)))
    easy = tr.label_triplets(query_labels, database_labels, 300, "easy", FASHION_MNIST_SUPERCLASSES, seed=1)
    hard = tr.label_triplets(query_labels, database_labels, 300, "hard", FASHION_MNIST_SUPERCLASSES, seed=1)
    for cases, same_group in ((easy, False), (hard, True)):
        q, p, n = query_labels[cases.queries], database_labels[cases.positives], database_labels[cases.negatives]
        assert np.all(q == p) and np.all(q != n)
        assert all((group[a] == group[b]) == same_group for a, b in zip(q, n))
    assert not set(query_labels[hard.queries]) & {1, 3, 8}  # no sibling: not in hard triplets
    with pytest.raises(ValueError, match="difficulty"):
        tr.label_triplets(query_labels, database_labels, 5, "medium", FASHION_MNIST_SUPERCLASSES)


def test_read_triplets_csv(tmp_path):
    for name in ("q.png", "p.png", "n.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "t.csv").write_text("query,positive,negative\nq.png, p.png ,n.png\n\n")
    assert tr.read_triplets_csv(tmp_path / "t.csv") == [(tmp_path / "q.png", tmp_path / "p.png", tmp_path / "n.png")]
    (tmp_path / "bad.csv").write_text("q.png,p.png\n")
    with pytest.raises(ValueError, match=r"bad.csv:1: expected query,positive,negative, got 2 fields"):
        tr.read_triplets_csv(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("q.png,p.png,gone.png\n")
    with pytest.raises(FileNotFoundError, match=r"missing.csv:1: image .*gone.png does not exist"):
        tr.read_triplets_csv(tmp_path / "missing.csv")
