"""Notebook 04's steps (metric × architecture comparison on triplets) against brute-force loops,
scikit-learn and cases worked out by hand; the model store that carries notebooks 02 / 03's models."""

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import binomtest
from sklearn.metrics import average_precision_score, roc_auc_score

from cbir.data.digits import load_digits
from cbir.data.images import ImageSet
from cbir.evaluation.triplets import Triplets
from cbir.evaluation.verification import make_pairs, pair_distances
from cbir.experiments import hashing, metric_learning, model_store, representations
from cbir.experiments import metric_comparison as comparison
from cbir.experiments import metric_comparison_views as views
from cbir.models.efficientnet_lite import WeightsUnavailableError
from cbir.retrieval.distances import MINKOWSKI_P

SUPERCLASSES = {"tops": (0, 1, 2), "shoes": (3, 4), "bags": (5,)}


def _cdist(x, y, metric):
    options = {"p": MINKOWSKI_P} if metric == "minkowski" else {}
    with np.errstate(invalid="ignore", divide="ignore"):
        return cdist(np.asarray(x, np.float64), np.asarray(y, np.float64), metric, **options)


def _representation(seed=0, n_queries=12, n_database=40, dim=6, name="toy", n_classes=6):
    rng = np.random.default_rng(seed)
    query_labels, database_labels = rng.integers(0, n_classes, n_queries), rng.integers(0, n_classes, n_database)
    centres = rng.normal(size=(n_classes, dim))
    query = np.abs(centres[query_labels] + rng.normal(size=(n_queries, dim))).astype(np.float32)
    database = np.abs(centres[database_labels] + rng.normal(size=(n_database, dim))).astype(np.float32)
    database[:6] = np.round(database[:6])  # exact ties in a few rows
    rep = representations.Representation(name, name, query, database, *representations.median_binarize(query, database))
    return rep, query_labels, database_labels


# --- representations --------------------------------------------------------------------------


def test_median_binarize_thresholds_on_the_database():
    database = np.array([[0.0, 5.0], [1.0, 6.0], [2.0, 7.0], [3.0, 8.0]])
    query = np.array([[1.5, 6.5], [1.4, 9.0]])  # medians 1.5 and 6.5: equal to the median gives 0
    binary_query, binary_database = representations.median_binarize(query, database)
    np.testing.assert_array_equal(binary_query, [[False, False], [False, True]])
    np.testing.assert_array_equal(binary_database.sum(axis=0), [2, 2])  # balanced bits on the database
    assert binary_query.dtype == bool


def test_representation_features_pick_the_binary_version_for_set_metrics():
    rep, _, _ = _representation()
    assert rep.features("hamming")[0] is rep.binary_query and rep.features("dice")[1] is rep.binary_database
    assert rep.features("cityblock")[0] is rep.query


def test_backbone_representations_skip_unavailable_weights(monkeypatch):
    digits = load_digits()["all"]
    queries, database = digits.subset(np.arange(6)), digits.subset(np.arange(6, 20))

    def fake_backbone(name, layer=None, weights="imagenet", input_size=None):
        raise WeightsUnavailableError(f"ImageNet weights for {name} are not available: expected /x/{name}.h5\nmore")

    monkeypatch.setattr(representations, "get_backbone", fake_backbone)
    found, skipped = representations.backbone_representations(
        [{"backbone": "vgg16", "layer": "fc2", "name": "vgg16_fc2"}], queries, database
    )
    assert found == {} and skipped == [
        ("vgg16_fc2", "ImageNet weights for vgg16 are not available: expected /x/vgg16.h5")
    ]
    table = representations.representation_table({}, skipped)
    assert table.loc[0, "name"] == "vgg16_fc2" and "expected /x/vgg16.h5" in table.loc[0, "skipped"]
    with pytest.raises(ValueError, match="needs backbone"):
        representations.backbone_representations([{"layer": "fc2"}], queries, database)
    with pytest.raises(ValueError, match="two architectures are named 'vgg16_fc2'"):
        representations.backbone_representations([{"name": "vgg16_fc2", "backbone": "vgg16"}] * 2, queries, database)


def test_architecture_names():
    configurations = [{"backbone": "vgg16", "weights": None}, {"backbone": "efficientnet_lite1"}]
    assert [representations.architecture_name(c) for c in configurations] == ["vgg16_random", "efficientnet_lite1"]
    assert representations.find_architecture(configurations, "vgg16_random") is configurations[0]
    with pytest.raises(ValueError, match=r"no architecture named 'resnet50'.*'vgg16_random'"):
        representations.find_architecture(configurations, "resnet50")


# --- triplets ---------------------------------------------------------------------------------


def test_graded_triplets_take_siblings_or_other_superclasses():
    rng = np.random.default_rng(0)
    query_labels, database_labels = rng.integers(0, 6, 60), np.repeat(np.arange(6), 10)
    triplets = comparison.graded_triplets(query_labels, database_labels, 300, SUPERCLASSES, seed=1)
    group = {c: name for name, members in SUPERCLASSES.items() for c in members}
    hard, easy = triplets["hard"], triplets["easy"]
    for drawn in (hard, easy):
        np.testing.assert_array_equal(database_labels[drawn.positives], query_labels[drawn.queries])
    for q, n in zip(query_labels[hard.queries], database_labels[hard.negatives]):
        assert n != q and group[n] == group[q]  # a sibling class
    assert not np.isin(query_labels[hard.queries], [5]).any()  # "bags" has no sibling: left out of hard triplets
    for q, n in zip(query_labels[easy.queries], database_labels[easy.negatives]):
        assert group[n] != group[q]
    assert np.isin(query_labels[easy.queries], [5]).any()
    overview = comparison.triplet_overview(triplets, query_labels, list("abcdef"))
    assert overview.set_index("difficulty").loc["hard", "left out"] == "f"
    assert overview.set_index("difficulty").loc["easy", "left out"] == "none"


def test_without_superclasses_only_easy_triplets_of_any_other_class():
    query_labels, database_labels = np.array([0, 1, 2, 2]), np.array([0, 0, 1, 1, 2, 2])
    triplets = comparison.graded_triplets(query_labels, database_labels, 50, None, seed=0)
    assert list(triplets) == ["easy"]
    easy = triplets["easy"]
    assert (database_labels[easy.negatives] != query_labels[easy.queries]).all()
    assert comparison.superclass_mapping("digits", {}) is None
    assert comparison.superclass_mapping("fashion_mnist", {})["tops"] == (0, 2, 4, 6)
    assert comparison.superclass_mapping("digits", {"round": [0, 8]}) == {"round": (0, 8)}


# --- ranks, success, intervals ----------------------------------------------------------------


@pytest.mark.parametrize(
    "metric", ["sqeuclidean", "cosine", "cityblock", "canberra", "minkowski", "hamming", "jaccard"]
)
def test_success_rate_equals_a_loop_over_triplets_with_cdist(metric):
    rep, query_labels, database_labels = _representation(seed=2)
    triplets = comparison.graded_triplets(query_labels, database_labels, 40, SUPERCLASSES, seed=3)
    scores = comparison.score_triplets({"toy": rep}, triplets, [metric], chunk_size=5)
    table = comparison.success_table(scores, n_resamples=200)
    row = table.set_index(["metric", "difficulty"]).loc[(metric, "hard")]
    query, database = rep.features(metric)
    outcomes, positive_ranks = [], []
    for q, p, n in zip(triplets["hard"].queries, triplets["hard"].positives, triplets["hard"].negatives):
        row_distances = np.nan_to_num(_cdist(query[q : q + 1], database, metric)[0], nan=np.inf)
        d_p, d_n = row_distances[p], row_distances[n]
        outcomes.append(1.0 if d_p < d_n else 0.5 if d_p == d_n else 0.0)
        positive_ranks.append(int(np.sum(row_distances < d_p)))
    assert row["success"] == pytest.approx(np.mean(outcomes))
    np.testing.assert_array_equal(scores.ranks[("toy", metric)]["hard"].positive_rank, positive_ranks)
    assert row["low"] <= row["success"] <= row["high"] and row["triplets"] == 40
    assert row["median rank p+"] == np.median(positive_ranks)


def test_perfect_and_worst_batches():
    database = np.array([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0]], np.float32)
    query = np.array([[0.0, 0.05]], np.float32)
    rep = representations.Representation("r", "r", query, database, query > 0, database > 0)
    perfect = Triplets(np.array([0]), np.array([0]), np.array([1]))
    worst = Triplets(np.array([0]), np.array([1]), np.array([0]))
    scores = comparison.score_triplets({"r": rep}, {"hard": perfect, "easy": worst}, ["euclidean"])
    ranks = scores.ranks[("r", "euclidean")]
    assert ranks["hard"].success.tolist() == [1.0] and ranks["easy"].success.tolist() == [0.0]
    assert (ranks["hard"].positive_rank[0], ranks["hard"].negative_rank[0]) == (0, 2)  # 0 and 2 items nearer
    with pytest.raises(ValueError, match="unknown distance"):
        comparison.score_triplets({"r": rep}, {"hard": perfect}, ["taxicab"])


# --- pair ROC AUC and mAP ---------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cityblock", "correlation", "braycurtis", "dice"])
def test_pair_distances_in_blocks_equal_a_loop_over_pairs(metric):
    rep, labels, _ = _representation(seed=4, n_queries=30)
    features = rep.features(metric)[0]
    first, second, _ = make_pairs(labels, 40, seed=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = [cdist(features[a][None], features[b][None], metric)[0, 0] for a, b in zip(first, second)]
    got = pair_distances(features, first, second, metric, chunk_size=7)
    np.testing.assert_allclose(got, expected, atol=1e-12, equal_nan=True)
    with pytest.raises(ValueError, match="as many first as second"):
        pair_distances(features, first[:3], second[:4], metric)


def test_roc_auc_equals_scikit_learn_on_the_same_pairs():
    rep, labels, _ = _representation(seed=5, n_queries=40)
    table, (first, second, is_match) = comparison.roc_auc_table({"toy": rep}, labels, 60, ["euclidean", "hamming"])
    for metric in ("euclidean", "hamming"):
        features = rep.features(metric)[0]
        distances = np.array(
            [_cdist(features[a : a + 1], features[b : b + 1], metric)[0, 0] for a, b in zip(first, second)]
        )
        expected = roc_auc_score(is_match, -distances)
        got = table.set_index("metric").loc[metric, "roc_auc"]
        assert got == pytest.approx(expected)


def test_roc_auc_by_hand_and_empty_codes_count_as_farthest():
    # Two classes of two images: same-class pairs at distance 0 (dice of identical codes), and one
    # pair of empty codes (Dice 0 / 0 = NaN) that must count as the farthest, not fail.
    codes = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], bool)
    rep = representations.Representation("r", "r", codes.astype(np.float32), codes.astype(np.float32), codes, codes)
    table, (first, second, is_match) = comparison.roc_auc_table({"r": rep}, np.array([0, 0, 1, 1]), 4, ["dice"])
    pairs = {(int(a), int(b)): bool(m) for a, b, m in zip(first, second, is_match)}
    # scores: (0, 1) same class, distance 0 -> best; (2, 3) same class, NaN -> worst; negatives at distance 1.
    expected = roc_auc_score([pairs[k] for k in pairs], [{(0, 1): 0.0, (2, 3): -2.0}.get(k, -1.0) for k in pairs])
    assert table.loc[0, "roc_auc"] == pytest.approx(expected)


def test_map_equals_scikit_learn_per_query_and_uses_the_stated_subset():
    rep, query_labels, database_labels = _representation(seed=6, n_queries=20)
    table = comparison.map_table({"toy": rep}, query_labels, database_labels, ["cosine", "cityblock"], slow_queries=7)
    rows = table.set_index("metric")
    assert rows.loc["cosine", "queries"] == 20 and rows.loc["cityblock", "queries"] == 7
    subset = np.sort(np.random.default_rng(0).choice(20, 7, replace=False))
    for metric, used in (("cosine", np.arange(20)), ("cityblock", subset)):
        distances = _cdist(rep.query[used], rep.database, metric)
        expected = np.mean(
            [average_precision_score(database_labels == q, -d) for q, d in zip(query_labels[used], distances)]
        )
        assert rows.loc[metric, "mAP"] == pytest.approx(expected, abs=1e-5)


# --- tables, McNemar, identities --------------------------------------------------------------


def _scores(metrics=("sqeuclidean", "cityblock", "hamming")):
    first, query_labels, database_labels = _representation(seed=7, name="first")
    second, _, _ = _representation(seed=8, name="second")  # other features of the same shapes
    triplets = comparison.graded_triplets(query_labels, database_labels, 60, SUPERCLASSES, seed=0)
    return comparison.score_triplets({"first": first, "second": second}, triplets, list(metrics)), query_labels


def test_mcnemar_table_against_binomtest_and_holm_by_hand():
    scores, _ = _scores()
    table = comparison.mcnemar_table(scores, "hard")
    for architecture, rows in table.groupby("architecture"):
        outcomes = {m: scores.ranks[(architecture, m)]["hard"].success for m in scores.metrics}
        best = rows["best"].iloc[0]
        assert outcomes[best].mean() == max(o.mean() for o in outcomes.values())
        p_values = []
        for row in rows.to_dict("records"):
            won, lost = outcomes[best] >= 1, outcomes[row["other"]] >= 1
            b, c = int(np.sum(won & ~lost)), int(np.sum(~won & lost))
            assert (row["best only"], row["other only"]) == (b, c)
            p = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
            assert row["p"] == pytest.approx(p)
            p_values.append(p)
        order = np.argsort(p_values)  # Holm with two comparisons, by hand
        low, high = p_values[order[0]], p_values[order[1]]
        adjusted = {order[0]: min(1.0, 2 * low), order[1]: min(1.0, max(2 * low, high))}
        np.testing.assert_allclose(rows["p Holm"], [adjusted[i] for i in range(2)])


def test_comparison_table_and_summary_keys():
    scores, query_labels = _scores()
    success = comparison.success_table(scores, n_resamples=100)
    roc = pd.DataFrame([{"architecture": a, "metric": m, "roc_auc": 0.5} for a, m in scores.ranks])
    maps = pd.DataFrame([{"architecture": a, "metric": m, "mAP": 0.25, "queries": 3} for a, m in scores.ranks])
    table = comparison.comparison_table(success, roc, maps)
    assert len(table) == 6 and table["success hard"].is_monotonic_decreasing
    head = ["architecture", "metric", "success hard", "low hard", "high hard", "success easy", "low easy", "high easy"]
    assert list(table.columns[:8]) == head
    summary = views.summary_metrics(table)
    assert (
        summary["success_first_cityblock"]
        == success.query("architecture == 'first' and metric == 'cityblock' and difficulty == 'hard'")["success"].item()
    )
    assert {"success_easy_second_hamming", "roc_auc_first_sqeuclidean", "map_second_cityblock"} <= set(summary)
    tests = comparison.mcnemar_table(scores, "hard")
    text = views.summary_text(table, tests, [("vgg16_fc2", "no weights")], pd.DataFrame(columns=["name"]), 12, 40)
    best = table.iloc[0]
    assert f"{best['architecture']} with {best['metric']}" in text and "Skipped vgg16_fc2: no weights" in text
    assert "about 60 %" in text and f"The study's winners for {best['architecture']}: " in text
    figures = views.heatmap_figures(table, "hard")
    assert set(figures) == {"success", "roc_auc", "map"}
    texts = [t.get_text() for t in figures["success"].axes[0].texts]
    assert f"{best['success hard']:.3f}\n[{best['low hard']:.3f}, {best['high hard']:.3f}]" in texts
    plt.close("all")


def test_identity_table_finds_the_three_identities():
    rep, query_labels, database_labels = _representation(seed=9, dim=8)
    triplets = comparison.graded_triplets(query_labels, database_labels, 50, None, seed=0)["easy"]
    table = comparison.identity_table(rep, triplets)
    assert len(table) == 3
    assert (table["same outcome"] == 1.0).all() and (table["max |Δ rank|"] <= 1).all()
    assert (table["identical ranks"] >= 0.98).all()


# --- regions and figures ----------------------------------------------------------------------


def test_assign_regions_by_hand():
    positive = np.array([0, 9, 10, 50, 99, 100, 5, 200, 3])
    negative = np.array([100, 3, 500, 50, 0, 2, 100, 300, 99])
    # near: rank < 10; far: rank >= 100
    assert views.assign_regions(positive, negative, 10, 100).tolist() == ["A", "B", "", "", "", "C", "A", "D", ""]
    with pytest.raises(ValueError, match="0 < near_rank <= far_rank"):
        views.assign_regions(positive, negative, 100, 10)


def test_region_table_shares_and_figures():
    scores, _ = _scores()
    panels = views.rank_panels(scores, "first")
    expected = [("first", "sqeuclidean"), ("first", "cityblock"), ("first", "hamming")]
    assert panels == [*expected, ("second", "sqeuclidean"), ("second", "hamming")]
    table = views.region_table(scores, panels, 5, 20, "hard")
    np.testing.assert_allclose(table[["A", "B", "C", "D", "none"]].sum(axis=1), 1.0)
    ranks = scores.ranks[("first", "cityblock")]["hard"]
    regions = views.assign_regions(ranks.positive_rank, ranks.negative_rank, 5, 20)
    assert table.loc[1, "A"] == pytest.approx(np.mean(regions == "A"))
    grid = views.rank_grid_figure(scores, panels, "hard")
    assert [ax.get_title() for ax in grid.axes if ax.get_title()][-1] == "second\nhamming: " + format(
        scores.ranks[("second", "hamming")]["hard"].success.mean(), ".1%"
    )
    assert sum(bool(ax.get_title()) for ax in grid.axes) == len(panels)
    images = np.zeros((40, 4, 4), np.uint8)
    image_set = ImageSet(labels=np.zeros(40, np.int64), class_names=("x",), images=images)
    gallery = views.region_gallery_figure(scores, image_set, image_set, "first", "cityblock", "hard", 5, 20, 2)
    shown = sum(len(ax.images) for ax in gallery.axes)
    assert shown == 3 * sum(min(2, int(np.sum(regions == r))) for r in "ABCD")
    plt.close("all")


# --- the model store and the learned models ---------------------------------------------------


def _tiny_head():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_model_store_round_trip_and_mismatch(isolated_paths):
    model = _tiny_head()
    path = model_store.save_model(model, "toy", {"epochs": 2, "units": (4,)})
    assert path.parent == isolated_paths / "data_dir" / "cache" / "models"
    loaded, same = model_store.load_model("toy", {"epochs": 2, "units": [4]})  # tuples and lists compare equal
    assert same == path
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model_store.load_model("toy", {"epochs": 3, "units": [4]})[0] is None
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["settings"] == {"epochs": 2, "units": [4]} and record["kind"] == "toy"
    found, found_path, settings = model_store.find_model("toy", {"units": [4]})
    assert found_path == path and settings["epochs"] == 2
    path.with_suffix(".json").unlink()  # an interrupted save: no entry
    assert model_store.load_model("toy", {"epochs": 2, "units": [4]})[0] is None
    assert model_store.find_model("toy", {"units": [4]}) == (None, None, None)


def test_training_data_fingerprint_depends_on_pixels_and_labels():
    digits = load_digits()["all"].subset(np.arange(10))
    relabelled = ImageSet(labels=digits.labels[::-1].copy(), class_names=digits.class_names, images=digits.images)
    assert model_store.training_data_fingerprint(digits) == model_store.training_data_fingerprint(
        digits.subset(np.arange(10))
    )
    assert model_store.training_data_fingerprint(digits) != model_store.training_data_fingerprint(relabelled)


def test_hash_head_is_trained_once_then_loaded_with_the_same_weights(isolated_paths, monkeypatch):
    digits = load_digits()["all"].subset(np.arange(200))
    features = digits.images.reshape(200, -1).astype(np.float32) / 255
    calls = []
    monkeypatch.setattr(hashing, "gem_features", lambda *args: calls.append(args) or [features])
    options = {"hidden_units": [16], "epochs": 1, "batch_size": 64, "val_fraction": 0.2}
    trained, path, settings, loaded = hashing.load_or_train_hash_head(digits, "efficientnet_lite0", 32, 8, **options)
    assert not loaded and len(calls) == 1 and settings["bits"] == 8 and settings["epochs"] == 1
    # The same weights as notebook 02's training of that code length.
    runs = hashing.train_hash_heads(digits, features, features[:5], [8], **options)
    for a, b in zip(runs[8].model.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)
    again, same, _, loaded = hashing.load_or_train_hash_head(digits, "efficientnet_lite0", 32, 8, epochs=5)
    assert loaded and same == path and len(calls) == 1  # found by data, features and bits, whatever the epochs
    for a, b in zip(again.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_embedding_settings_fill_in_the_training_defaults():
    digits = load_digits()["all"].subset(np.arange(20))
    settings = metric_learning.embedding_settings(digits, "efficientnet_lite0", 64, head={"embedding_dim": 32})
    assert settings["head"] == {"embedding_dim": 32, "hidden_units": 512}
    assert settings["triplet"] == {"margin": 0.2, "distance": "squared-L2"}
    assert settings["training"] == {"epochs": 12, "steps_per_epoch": 150, "learning_rate": 1e-3}
    with pytest.raises(ValueError, match="only a 'features' embedding"):
        metric_learning.load_or_train_embedding(digits, "efficientnet_lite0", 64, mode="end_to_end")
