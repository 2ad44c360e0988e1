import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from cbir.evaluation import retrieval, verification


def test_average_precision_matches_sklearn_with_and_without_ties():
    rng = np.random.default_rng(0)
    for continuous in (True, False):
        scores = rng.normal(size=(30, 80)) if continuous else rng.integers(0, 4, (30, 80)).astype(float)
        relevant = rng.random((30, 80)) < 0.25
        relevant[:, 0] = True
        ours = retrieval.average_precision(scores, relevant)
        reference = [average_precision_score(relevant[i], scores[i]) for i in range(30)]
        np.testing.assert_allclose(ours, reference, rtol=1e-12)


def test_average_precision_by_hand():
    # Ranking: rel, non, rel, non, non; R = 2 -> AP = (1/1 + 2/3) / 2.
    assert retrieval.average_precision(np.array([5, 4, 3, 2, 1.0]), np.array([1, 0, 1, 0, 0])) == pytest.approx(5 / 6)
    # Denominator = all relevant items: a relevant item ranked last still counts (rank 5: 3/5).
    assert retrieval.average_precision(np.array([5, 4, 3, 2, 1.0]), np.array([1, 0, 1, 0, 1])) == pytest.approx(
        (1 + 2 / 3 + 3 / 5) / 3
    )
    # Two tied items, one relevant: they enter together, precision 1/2 whatever their order.
    assert retrieval.average_precision(np.array([1.0, 1.0, 0.0]), np.array([0, 1, 0])) == pytest.approx(0.5)
    assert np.isnan(retrieval.average_precision(np.array([1.0, 0.0]), np.array([0, 0])))


def test_precision_and_recall_at_k_by_hand_with_ties():
    scores = np.array([3, 2, 2, 2, 1.0])
    relevant = np.array([1, 1, 0, 0, 1])
    # Top-2: the first item (relevant) plus one of a 3-way tie holding one relevant: 1 + 1/3 expected.
    assert retrieval.precision_at_k(scores, relevant, 2) == pytest.approx((1 + 1 / 3) / 2)
    assert retrieval.recall_at_k(scores, relevant, 2) == pytest.approx((1 + 1 / 3) / 3)
    assert retrieval.precision_at_k(scores, relevant, 4) == pytest.approx(2 / 4)
    assert retrieval.recall_at_k(scores, relevant, 5) == pytest.approx(1.0)


def test_tie_aware_precision_is_the_mean_over_tie_orders():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 3, 12).astype(float)
    relevant = rng.random(12) < 0.5
    for k in (1, 3, 5, 12):
        orders = [np.lexsort((rng.random(12), -scores)) for _ in range(4000)]
        brute = np.mean([relevant[o][:k].mean() for o in orders])
        assert retrieval.precision_at_k(scores, relevant, k) == pytest.approx(brute, abs=0.02)


def _brute_force(query_features, query_labels, database_features, database_labels, k):
    q = query_features / np.linalg.norm(query_features, axis=1, keepdims=True)
    d = database_features / np.linalg.norm(database_features, axis=1, keepdims=True)
    aps, p_at_k, map_k = [], [], []
    for i in range(len(q)):
        similarity = d @ q[i]
        relevant = database_labels == query_labels[i]
        aps.append(average_precision_score(relevant, similarity))
        order = np.argsort(-similarity, kind="stable")
        p_at_k.append(relevant[order][:k].mean())
        hits = relevant[order][:k]
        precisions = [hits[: j + 1].mean() for j in range(k) if hits[j]]
        map_k.append(np.mean(precisions) if precisions else 0.0)
    return np.mean(aps), np.mean(p_at_k), np.mean(map_k)


def test_retrieval_metrics_against_brute_force_loop():
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(5, 8))
    database_labels = rng.integers(0, 5, 300)
    query_labels = rng.integers(0, 5, 40)
    database = centres[database_labels] + rng.normal(scale=1.2, size=(300, 8))
    queries = centres[query_labels] + rng.normal(scale=1.2, size=(40, 8))
    result = retrieval.retrieval_metrics(
        queries, query_labels, database, database_labels, ks=(10,), map_at=(10,), chunk_size=7
    )
    expected_map, expected_p10, expected_map10 = _brute_force(queries, query_labels, database, database_labels, 10)
    assert result["map"] == pytest.approx(expected_map, rel=1e-5)
    assert result["p10"] == pytest.approx(expected_p10, rel=1e-5)
    assert result["map10"] == pytest.approx(expected_map10, rel=1e-5)
    assert 0 < result["map11"] <= 1 and result["map11"] >= result["map"] - 0.05
    recall, precision = result["pr_curve"]
    assert len(recall) == 11 and np.all(np.diff(precision) <= 1e-12)  # interpolated precision never rises


def test_eleven_point_interpolated_by_hand():
    # rel at ranks 1 and 3 of 4 (R = 2): precision 1 up to recall .5, then 2/3 up to recall 1.
    stats = retrieval.ranking_statistics(np.array([[4, 3, 2, 1.0]]), np.array([[1, 0, 1, 0]]))
    curve = retrieval.interpolated_precision(stats, np.linspace(0, 1, 11))[0]
    np.testing.assert_allclose(curve, [1] * 6 + [2 / 3] * 5)


def test_exclude_self_drops_the_query_row():
    features = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    labels = np.array([0, 0, 1, 1])
    result = retrieval.retrieval_metrics(features, labels, features, labels, ks=(1,), exclude_self=True)
    assert result["p1"] == 1.0 and result["map"] == 1.0


def test_pairs_are_balanced_distinct_and_never_self():
    labels = np.repeat(np.arange(6), [5, 9, 3, 7, 2, 10])
    first, second, is_match = verification.make_pairs(labels, 60, seed=0)
    assert len(first) == 60 and is_match.sum() == 30
    assert np.all(first != second)
    np.testing.assert_array_equal(labels[first] == labels[second], is_match)
    assert len(set(zip(first.tolist(), second.tolist()))) == 60
    with pytest.raises(ValueError, match="positive"):
        verification.make_pairs(np.array([0, 1, 2]), 4)


def test_pairs_from_two_splits_share_no_image():
    from cbir.data.splits import split

    labels = np.repeat(np.arange(4), 25)
    parts = split(labels, val_fraction=0.3, test_fraction=0.3, seed=0)
    used = {}
    for name in ("val", "test"):
        first, second, _ = verification.make_pairs(labels[parts[name]], 40, seed=1)
        used[name] = set(parts[name][first]) | set(parts[name][second])  # back to global image ids
    assert used["val"].isdisjoint(used["test"])


def test_roc_report_against_brute_force():
    rng = np.random.default_rng(5)
    is_match = rng.random(400) < 0.5
    scores = rng.normal(size=400) + 1.2 * is_match
    report = verification.roc_report(scores, is_match, target_fprs=(0.05,))
    positives, negatives = scores[is_match], scores[~is_match]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)  # Mann-Whitney U
    assert report["roc_auc"] == pytest.approx(wins / (len(positives) * len(negatives)))
    best = max(((positives >= t).mean() for t in np.unique(scores) if (negatives >= t).mean() <= 0.05), default=0)
    assert report["tpr_at_fpr_5pct"] == pytest.approx(best)


def test_threshold_and_confusion_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    is_match = np.array([1, 1, 0, 1, 0, 0], bool)
    # Youden's J: at 0.6 -> TPR 1, FPR 1/3 (J = 2/3); at 0.8 -> TPR 2/3, FPR 0 (J = 2/3); first maximum wins.
    threshold = verification.choose_threshold(scores, is_match, "youden")
    assert threshold in (0.8, 0.6)
    assert verification.choose_threshold(scores, is_match, 0.0) == 0.8
    np.testing.assert_array_equal(verification.confusion_at_threshold(scores, is_match, 0.6), [[2, 1], [0, 3]])
    np.testing.assert_allclose(
        verification.pair_scores(np.array([[1.0, 0], [0, 2.0], [-3.0, 0]]), np.array([0, 0]), np.array([1, 2])),
        [0.5, 0.0],
    )


def test_counting_path_equals_sorting_path_on_tied_integer_levels():
    """Hamming-like rankings (many ties) by counting must equal the tie-aware sort and sklearn."""
    rng = np.random.default_rng(6)
    database_labels, query_labels = rng.integers(0, 4, 500), rng.integers(0, 4, 30)
    distances = rng.integers(0, 17, (30, 500))
    distances[query_labels[:, None] == database_labels[None, :]] -= 3  # relevant items tend to be closer
    distances = np.clip(distances, 0, 16)
    common = dict(ks=(1, 5, 50, 700), map_at=(10, 100), chunk_size=8)
    by_levels = retrieval.retrieval_metrics(
        None, query_labels, None, database_labels, levels_fn=lambda rows: distances[rows], n_levels=17, **common
    )
    by_scores = retrieval.retrieval_metrics(
        None, query_labels, None, database_labels, scores_fn=lambda rows: -distances[rows].astype(float), **common
    )
    for key in ("map", "map11", "p1", "p5", "p50", "p700", "r50", "map10", "map100"):
        assert by_levels[key] == pytest.approx(by_scores[key], rel=1e-9, abs=1e-12), key
    np.testing.assert_allclose(by_levels["pr_curve"][1], by_scores["pr_curve"][1], rtol=1e-9)
    reference = np.mean([average_precision_score(database_labels == query_labels[i], -distances[i]) for i in range(30)])
    assert by_levels["map"] == pytest.approx(reference, rel=1e-9)
    with pytest.raises(ValueError, match="n_levels"):
        retrieval.retrieval_metrics(None, query_labels, None, database_labels, levels_fn=lambda rows: distances[rows])


def test_metric_keys_and_their_labels_are_one_vocabulary():
    rng = np.random.default_rng(7)
    result = retrieval.retrieval_metrics(
        rng.normal(size=(5, 4)),
        rng.integers(0, 2, 5),
        rng.normal(size=(30, 4)),
        rng.integers(0, 2, 30),
        ks=(1, 10),
        map_at=(20,),
    )
    scalars = sorted(key for key, value in result.items() if isinstance(value, float))
    assert scalars == ["map", "map11", "map20", "p1", "p10", "r1", "r10"]
    assert [retrieval.metric_label(key) for key in scalars] == [
        "mAP",
        "11-pt mAP",
        "mAP@20",
        "P@1",
        "P@10",
        "R@1",
        "R@10",
    ]
    with pytest.raises(ValueError, match="precision@10"):
        retrieval.metric_label("precision@10")


def test_roc_report_keys_follow_metrics_json():
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1])
    is_match = np.array([1, 1, 0, 0, 0, 1], bool)
    report = verification.roc_report(scores, is_match, target_fprs=(0.01, 0.001, 0.5))
    assert {"roc_auc", "tpr_at_fpr_1pct", "tpr_at_fpr_01pct", "tpr_at_fpr_50pct"} <= set(report)


def test_pair_roc_auc_equals_scikit_learn_on_the_same_pairs():
    from scipy.spatial.distance import cdist
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 60)
    features = rng.normal(size=(60, 5)) + labels[:, None]
    first, second, is_match = verification.make_pairs(labels, 200, seed=4)
    for metric in ("cityblock", "cosine"):
        expected = roc_auc_score(is_match, [-cdist(features[a][None], features[b][None], metric)[0, 0]
                                            for a, b in zip(first, second)])  # fmt: skip
        assert verification.pair_roc_auc(features, labels, metric, 200, seed=4) == pytest.approx(expected)
