"""The notebook steps (cbir.experiments) against independent references, on small data."""

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from cbir.data.digits import load_digits
from cbir.data.images import ImageSet
from cbir.data.sources import load
from cbir.data.splits import held_out_name, retrieval_split, split
from cbir.evaluation.retrieval import retrieval_metrics
from cbir.evaluation.verification import choose_threshold, pair_scores
from cbir.experiments import classic_features as classic
from cbir.experiments import common, exploration, hashing, metric_learning, model_selection, pretrained
from cbir.features import FeatureExtractor
from cbir.models.backbones import get_backbone
from cbir.models.dlbhc import encode
from cbir.models.efficientnet_lite import WeightsUnavailableError
from cbir.retrieval.hamming import binarize, pack_codes, unpack_codes
from cbir.retrieval.hash_index import HashIndex
from cbir.retrieval.whitening import PCAWhitening

TINY_VGG = {"backbone": "vgg16", "weights": None, "layer": "block4_pool", "input_size": 32}


def _labelled(n_per_class: int, n_classes: int = 3, seed: int = 0, size: int = 8) -> ImageSet:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    images = rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    return ImageSet(labels=labels, class_names=tuple("abcdefgh"[:n_classes]), images=images, name="random")


def _cosine_ap(query_features, query_labels, database_features, database_labels) -> float:
    """mAP by scikit-learn, one query at a time: the independent reference."""
    unit_q = query_features / np.linalg.norm(query_features, axis=1, keepdims=True)
    unit_d = database_features / np.linalg.norm(database_features, axis=1, keepdims=True)
    scores = unit_q @ unit_d.T
    return float(np.mean([average_precision_score(database_labels == q, s) for q, s in zip(query_labels, scores)]))


# --- common ------------------------------------------------------------------------------------


def test_retrieval_sets_follow_the_protocol_and_sample():
    database, queries = common.retrieval_sets("digits", n_database=300, n_queries=100, seed=0)
    full_database, full_queries = retrieval_split(load_digits(), seed=0)
    assert (len(database), len(queries)) == (300, 100)
    np.testing.assert_array_equal(database.images, full_database.sample(300, 0).images)
    np.testing.assert_array_equal(queries.labels, full_queries.sample(100, 0).labels)


def test_retrieval_sets_of_a_folder_are_leave_one_out(tmp_path):
    for class_name in ("red", "blue"):
        (tmp_path / class_name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 10, 3), 40 * i, np.uint8)).save(tmp_path / class_name / f"{i}.png")
    database, queries = common.retrieval_sets("folder", str(tmp_path))
    assert queries is database and len(database) == 6 and database.class_names == ("blue", "red")
    with pytest.raises(ValueError, match="needs data_dir"):
        common.retrieval_sets("folder", "")


def test_retrieval_table_matches_retrieval_metrics_and_scikit_learn():
    rng = np.random.default_rng(0)
    query_labels, database_labels = rng.integers(0, 3, 12), rng.integers(0, 3, 40)
    candidates = {
        ("one", 8): (rng.normal(size=(12, 8)), rng.normal(size=(40, 8))),
        ("two", 5): (rng.normal(size=(12, 5)), rng.normal(size=(40, 5))),
    }
    table, curves = common.retrieval_table(candidates, query_labels, database_labels, ks=(1, 5))
    assert list(table.columns) == ["name", "dim", "mAP", "P@1", "P@5"]
    assert table["name"].tolist() == list(candidates) and table["dim"].tolist() == [8, 5]
    for row, (name, (q, d)) in zip(table.to_dict("records"), candidates.items()):
        direct = retrieval_metrics(q, query_labels, d, database_labels, ks=(1, 5))
        assert row["mAP"] == direct["map"] and row["P@5"] == direct["p5"]
        assert row["mAP"] == pytest.approx(_cosine_ap(q, query_labels, d, database_labels), abs=1e-6)
        np.testing.assert_array_equal(curves[name][1], direct["pr_curve"][1])


def test_metric_columns_use_the_display_labels():
    result = {"map": 0.5, "map11": 0.4, "map1000": 0.3, "p10": 0.2}
    assert common.metric_columns(result, ("map", "map11", "map1000", "p10"), "Hamming") == {
        "mAP Hamming": 0.5,
        "11-pt mAP Hamming": 0.4,
        "mAP@1000 Hamming": 0.3,
        "P@10 Hamming": 0.2,
    }
    with pytest.raises(ValueError, match="unknown metric key"):
        common.metric_columns({"auc": 1.0}, ("auc",))


def test_nearest_neighbours_leave_each_query_out():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(15, 6))
    rows = np.array([3, 0, 14])
    scores, indices = common.nearest_neighbours(features[rows], features, k=4, exclude=rows)
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    for row, query in enumerate(rows):  # brute force: every other item, by decreasing cosine
        cosines = unit @ unit[query]
        others = [i for i in np.argsort(-cosines) if i != query][:4]
        np.testing.assert_array_equal(indices[row], others)
        np.testing.assert_allclose(scores[row], (1 + cosines[others]) / 2, rtol=1e-5)
    _, plain_indices = common.nearest_neighbours(features[rows], features, k=4)
    np.testing.assert_array_equal(plain_indices[:, 0], rows)  # without exclusion a query finds itself first


# --- exploration -------------------------------------------------------------------------------


def test_split_overview_and_class_counts():
    splits = {"train": _labelled(4), "test": _labelled(2, seed=1)}
    splits["test"].labels[0] = -1  # one unlabelled image
    overview = exploration.split_overview(splits)
    assert overview.to_dict("records")[1] == {
        "split": "test",
        "images": 6,
        "labelled": 5,
        "classes": 3,
        "storage": "array (8, 8, 3) uint8",
    }
    counts = exploration.class_counts(splits)
    assert counts.index.tolist() == ["a", "b", "c"] and counts["test"].tolist() == [1, 2, 2]


def test_image_statistics_of_known_images(tmp_path):
    gray = np.stack([np.full((4, 6), 10, np.uint8), np.full((4, 6), 30, np.uint8)])
    statistics = exploration.image_statistics(ImageSet(labels=np.zeros(2, np.int64), class_names=("x",), images=gray))
    assert statistics["mean"].tolist() == [10.0, 30.0] and statistics["std"].tolist() == [0.0, 0.0]
    assert statistics[["height", "width", "channels"]].drop_duplicates().values.tolist() == [[4, 6, 1]]
    pixels = np.zeros((5, 5, 3), np.uint8)
    pixels[..., 0] = 200
    Image.fromarray(pixels).save(tmp_path / "red.png")
    files = ImageSet(labels=np.zeros(1, np.int64), class_names=("x",), paths=(str(tmp_path / "red.png"),))
    row = exploration.image_statistics(files).iloc[0]
    assert (row["channels"], row["mean_r"], row["mean_g"], row["mean"]) == (3, 200.0, 0.0, pytest.approx(200 / 3))


def test_plan_splits_carves_a_test_share_only_without_a_held_out_split():
    digits = load_digits()
    plan = exploration.plan_splits(digits, "all", held_out_name(digits), 0.1, 0.1, seed=0)
    reference = split(digits["all"].labels, val_fraction=0.1, test_fraction=0.1, seed=0)
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(plan.parts[name], reference[name])
    assert plan.held_out is None and plan.n_test == len(reference["test"]) == 180
    assert list(plan.sizes) == ["all → train", "all → val", "all → test"]

    splits = {"train": _labelled(10), "test": _labelled(3, seed=1)}
    splits["train"].labels[:2] = -1  # unlabelled images are left out of every part
    plan = exploration.plan_splits(splits, "train", "test", 0.2, 0.1, seed=0)
    assert len(plan.parts["test"]) == 0 and plan.n_test == 9
    assert not set(plan.parts["train"]) & {0, 1} and len(plan.parts["train"]) + len(plan.parts["val"]) == 28
    with pytest.raises(ValueError, match="not among the splits"):
        exploration.plan_splits(splits, "train", "val", 0.2, 0.1)


def test_class_share_range_by_hand():
    image_set = ImageSet(labels=np.array([0, 0, 0, 1, 0, 1]), class_names=("a", "b"), images=np.zeros((6, 2, 2)))
    shares = exploration.class_share_range(image_set, {"train": np.arange(4), "val": np.array([4, 5]), "test": []})
    assert list(shares.columns) == ["train", "val"]  # empty parts are left out
    assert shares.loc["min"].tolist() == [0.25, 0.5] and shares.loc["max"].tolist() == [0.75, 0.5]


def test_augmentation_preview_has_a_row_per_image():
    figure = exploration.augmentation_preview(_labelled(2, size=16), n_images=2, n_variants=3, seed=0)
    assert len(figure.axes) == 2 * 4
    assert figure.axes[0].get_title() == "original" and figure.axes[3].get_title() == "augmented 3"


def test_exploration_summary_metrics():
    splits = {"train": _labelled(10), "test": _labelled(3, seed=1)}
    plan = exploration.plan_splits(splits, "train", "test", 0.2, 0.1, seed=0)
    statistics = pd.DataFrame({"mean": [10.0, 20.0]})
    assert exploration.summary_metrics(splits, plan, statistics) == {
        "n_images": 39,
        "n_classes": 3,
        "n_train": 24,
        "n_val": 6,
        "n_test": 9,
        "mean_intensity": 15.0,
    }


# --- pretrained --------------------------------------------------------------------------------


def test_extract_configurations_matches_the_extractor_and_whitening(isolated_paths):
    database, queries = _labelled(6, seed=0, size=32), _labelled(2, seed=1, size=32)
    configurations = [{**TINY_VGG, "poolings": ["mac", "gem"]}]
    features, unavailable = pretrained.extract_configurations(configurations, queries, database, whitening_dim=4)
    assert unavailable == []
    assert list(features) == [("vgg16_random", "block4_pool", p, 32) for p in ("mac", "gem", "gem+pcaw")]
    extractor = FeatureExtractor(get_backbone("vgg16", layer="block4_pool", weights=None, input_size=32), "gem")
    database_gem = extractor.extract(database, cache=False, progress=False)
    np.testing.assert_allclose(features[("vgg16_random", "block4_pool", "gem", 32)][1], database_gem, rtol=1e-5)
    whitening = PCAWhitening(4).fit(database_gem)
    query_whitened, database_whitened = features[("vgg16_random", "block4_pool", "gem+pcaw", 32)]
    assert query_whitened.shape == (6, 4)
    np.testing.assert_allclose(database_whitened, whitening.transform(database_gem), atol=1e-4)

    leave_one_out, _ = pretrained.extract_configurations(configurations, database, database, leave_one_out=True)
    query_mac, database_mac = leave_one_out[("vgg16_random", "block4_pool", "mac", 32)]
    assert query_mac is database_mac


def test_extract_configurations_skips_unavailable_weights_and_checks_keys(monkeypatch):
    def unavailable(*args, **kwargs):
        raise WeightsUnavailableError("no weights here\nsecond line")

    monkeypatch.setattr(pretrained, "get_backbone", unavailable)
    features, skipped = pretrained.extract_configurations(
        [{"backbone": "vgg16", "layer": "fc2", "poolings": [None]}], _labelled(1), _labelled(1)
    )
    assert features == {} and skipped == [("vgg16", "fc2", "no weights here")]
    with pytest.raises(ValueError, match="needs backbone and poolings"):
        pretrained.extract_configurations([{"backbone": "vgg16", "pooling": ["gem"]}], _labelled(1), _labelled(1))


def test_compare_configurations_gives_the_map_of_retrieval_metrics():
    rng = np.random.default_rng(3)
    query_labels, database_labels = rng.integers(0, 4, 20), rng.integers(0, 4, 60)
    features = {
        ("vgg16_random", "block5_conv3", "gem", 32): (rng.normal(size=(20, 16)), rng.normal(size=(60, 16))),
        ("efficientnet_lite0", "head_activation", "mac", 64): (rng.normal(size=(20, 8)), rng.normal(size=(60, 8))),
    }
    # the second one made good: its features are the one-hot labels plus a little noise
    features[("efficientnet_lite0", "head_activation", "mac", 64)] = (
        np.eye(8)[query_labels] + 0.1 * rng.normal(size=(20, 8)),
        np.eye(8)[database_labels] + 0.1 * rng.normal(size=(60, 8)),
    )
    table, curves = pretrained.compare_configurations(features, query_labels, database_labels)
    assert list(table.columns) == ["backbone", "layer", "pooling", "input", "dim", "mAP", "P@1", "P@10", "P@100"]
    assert table["backbone"].tolist() == ["efficientnet_lite0", "vgg16_random"]  # best first
    for row in table.to_dict("records"):
        q, d = pretrained.feature_set(features, row)
        direct = retrieval_metrics(q, query_labels, d, database_labels, ks=(1, 10, 100))
        assert (row["mAP"], row["P@10"]) == (direct["map"], direct["p10"])
        assert row["mAP"] == pytest.approx(_cosine_ap(q, query_labels, d, database_labels), abs=1e-6)
    assert set(curves) == {"efficientnet_lite0 mac", "vgg16_random gem"}


def test_pretrained_summary_names_every_row():
    table = pd.DataFrame(
        {
            "backbone": ["efficientnet_lite0", "vgg16"],
            "pooling": ["gem+pcaw", "fc2"],
            "mAP": [0.5, 0.25],
            "P@1": [0.75, 0.5],
            "P@10": [0.6, 0.4],
        }
    )
    assert pretrained.summary_metrics(table) == {
        "map_efficientnet_lite0_gem_pcaw": 0.5,
        "p1_efficientnet_lite0_gem_pcaw": 0.75,
        "p10_efficientnet_lite0_gem_pcaw": 0.6,
        "map_vgg16_fc2": 0.25,
        "p1_vgg16_fc2": 0.5,
        "p10_vgg16_fc2": 0.4,
    }
    text = pretrained.summary_text(table, [("vgg16", "block5_pool", "offline")], 10, 30)
    assert "Best: efficientnet_lite0 gem+pcaw mAP 0.5000" in text and "Not run: vgg16/block5_pool — offline" in text
    assert "Random-weight floor" not in text


def test_similarity_figure_skips_small_classes():
    queries = ImageSet(labels=np.array([0, 0, 0, 1, 2, 2]), class_names=("a", "b", "c"), images=np.zeros((6, 2, 2)))
    features = np.random.default_rng(0).normal(size=(6, 4))
    figure = pretrained.similarity_figure(features, queries, 2, np.random.default_rng(0))
    matrix = figure.axes[0].collections[0].get_array().reshape(4, 4)  # two of class a, two of class c
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["a", "a", "c", "c"]
    np.testing.assert_allclose(np.diag(matrix), 1.0, rtol=1e-6)


# --- hashing -----------------------------------------------------------------------------------


def _hash_run(bits: int, latent_database, latent_queries, hidden_database, hidden_queries) -> hashing.HashRun:
    index = HashIndex(pack_codes(binarize(latent_database)), hidden_database, bits)
    return hashing.HashRun(bits, None, {}, latent_database, index, pack_codes(binarize(latent_queries)), hidden_queries)


def test_train_hash_heads_is_seeded_and_encodes_with_the_trained_model():
    digits = load_digits()["all"].subset(np.arange(300))
    features = digits.images.reshape(300, -1).astype(np.float32) / 255
    options = {"hidden_units": (32,), "epochs": 1, "batch_size": 64, "val_fraction": 0.2, "seed": 0}
    runs = hashing.train_hash_heads(digits, features, features[:20], [8, 16], **options)
    assert list(runs) == [8, 16]
    run = runs[16]
    latent, hidden = encode(run.model, features[:20])
    np.testing.assert_array_equal(unpack_codes(run.query_codes, 16), latent >= 0.5)
    np.testing.assert_allclose(run.query_hidden, hidden, rtol=1e-6)
    assert run.database_latent.shape == (300, 16) and len(run.index) == 300 and run.index.settings == {"bits": 16}
    assert set(run.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    again = hashing.train_hash_heads(digits, features, features[:20], [16], **options)
    np.testing.assert_array_equal(again[16].database_latent, run.database_latent)


def test_hashing_seed_spread_reuses_a_trained_run_and_trains_the_other_seeds():
    digits = load_digits()["all"].subset(np.arange(300))
    features = digits.images.reshape(300, -1).astype(np.float32) / 255
    options = {"hidden_units": (32,), "epochs": 1, "batch_size": 64, "val_fraction": 0.2}
    queries, labels = features[:20], digits.labels[:20]
    run = hashing.train_hash_heads(digits, features, queries, [16], seed=0, **options)[16]
    spread = model_selection.hashing_seed_spread(
        digits, features, queries, labels, 16, [0, 1], 30, trained={0: run}, **options
    )
    assert list(spread["seed"]) == [0, 1]
    distances = (unpack_codes(run.query_codes, 16)[:, None, :] != (run.database_latent >= 0.5)[None]).sum(axis=2)
    expected = np.mean([average_precision_score(digits.labels == q, -d) for q, d in zip(labels, distances)])
    assert spread.loc[0, "map_hamming"] == pytest.approx(expected, abs=1e-9)
    assert 0 < spread.loc[1, "map_two_phase"] <= 1 and spread.loc[1, "map_hamming"] != spread.loc[0, "map_hamming"]


def test_near_binary_fraction_by_hand():
    assert hashing.near_binary_fraction(np.array([[0.05, 0.5, 0.95, 0.9]])) == 0.5  # 0.9 is not above 0.9


def test_evaluate_code_lengths_against_scikit_learn_and_a_loop():
    rng = np.random.default_rng(4)
    n_queries, n_database, bits = 15, 50, 12
    query_labels, database_labels = rng.integers(0, 3, n_queries), rng.integers(0, 3, n_database)
    latent_q, latent_d = rng.uniform(size=(n_queries, bits)), rng.uniform(size=(n_database, bits))
    hidden_q, hidden_d = rng.normal(size=(n_queries, 6)), rng.normal(size=(n_database, 6))
    features_q, features_d = rng.normal(size=(n_queries, 9)), rng.normal(size=(n_database, 9))
    runs = {bits: _hash_run(bits, latent_d, latent_q, hidden_d, hidden_q)}
    evaluation = hashing.evaluate_code_lengths(
        runs, query_labels, database_labels, features_q, features_d, shortlist=10, ks=(1, 5)
    )
    row = evaluation.table.iloc[0]
    distances = ((latent_q >= 0.5)[:, None, :] != (latent_d >= 0.5)[None, :, :]).sum(axis=2)
    expected = np.mean([average_precision_score(database_labels == q, -d) for q, d in zip(query_labels, distances)])
    assert row["mAP Hamming"] == pytest.approx(expected, abs=1e-9)  # ties count as ties, as scikit-learn's
    within = distances <= 2
    relevant = query_labels[:, None] == database_labels[None, :]
    precision = [(w & r).sum() / w.sum() if w.any() else 0.0 for w, r in zip(within, relevant)]
    assert row["P(r≤2)"] == pytest.approx(np.mean(precision))
    assert row["mAP cosine (backbone)"] == pytest.approx(
        _cosine_ap(features_q, query_labels, features_d, database_labels), abs=1e-6
    )
    assert list(evaluation.table.columns) == [
        "bits",
        "mAP Hamming",
        "11-pt mAP Hamming",
        "mAP@1000 Hamming",
        "mAP two-phase",
        "P(r≤2)",
        "mAP cosine (backbone)",
    ]
    figure = evaluation.figure(bits, {"QSMIH": {12: 0.8}})
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}
    assert lines["Hamming ranking"].get_ydata().tolist() == [row["mAP Hamming"]]
    assert set(lines) >= {"two-phase (L = 10)", "QSMIH (published)", "exhaustive cosine, backbone features"}
    precision_lines = {line.get_label(): line.get_ydata().tolist() for line in figure.axes[1].get_lines()}
    assert precision_lines["cosine"] == [evaluation.cosine["p1"], evaluation.cosine["p5"]]


def test_time_search_modes_has_one_row_per_mode():
    rng = np.random.default_rng(5)
    run = _hash_run(16, *rng.uniform(size=(2, 40, 16)), rng.normal(size=(40, 4)), rng.normal(size=(40, 4)))
    latency = hashing.time_search_modes(run.index, run.query_codes, run.query_hidden, shortlist=5, n_queries=7)
    assert latency["mode"].tolist() == ["hamming", "two_phase", "cosine"]
    assert (latency["ms / query"] > 0).all()


def test_hashing_summary_keys_and_published_values():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 2, 30)
    runs = {
        bits: _hash_run(bits, *rng.uniform(size=(2, 30, bits)), rng.normal(size=(30, 4)), rng.normal(size=(30, 4)))
        for bits in (12, 48)
    }
    features = rng.normal(size=(30, 5))
    evaluation = hashing.evaluate_code_lengths(runs, labels, labels, features, features, shortlist=5)
    latency = pd.DataFrame({"mode": ["hamming", "cosine"], "ms / query": [0.1, 0.2]})
    summary = hashing.summary_metrics(evaluation, 0.7, latency)
    per_bits = ("map_hamming", "map11_hamming", "map1000_hamming", "map_two_phase", "precision_r2")
    assert set(summary) == {f"{name}_{bits}" for name in per_bits for bits in (12, 48)} | {
        "map_cosine",
        "near_binary_fraction",
        "shortlist",
        "latency_ms_hamming",
        "latency_ms_cosine",
    }
    assert summary["map_hamming_48"] == evaluation.table.iloc[1]["mAP Hamming"] and summary["shortlist"] == 5
    assert "(published: QSMIH 0.842)" in hashing.summary_text(evaluation, "fashion_mnist", 30, 30)
    assert "published" not in hashing.summary_text(evaluation, "digits", 30, 30)


# --- metric learning ---------------------------------------------------------------------------


def test_embedding_names_and_modes():
    assert metric_learning.embedding_name("backbone", "vgg16") == "vgg16 GeM features"
    with pytest.raises(ValueError, match="unknown embedding role"):
        metric_learning.embedding_name("pretrained", "vgg16")
    with pytest.raises(ValueError, match="mode must be"):
        metric_learning.build_embedding("images", {}, {}, backbone="vgg16", input_size=32)


def test_projection_head_trains_and_the_siamese_model_agrees():
    rng = np.random.default_rng(7)
    train, validation = _labelled(12), _labelled(4, seed=1)
    centres = rng.normal(size=(3, 10)) * 3
    features = {
        name: (centres[s.labels] + rng.normal(size=(len(s), 10))).astype(np.float32)
        for name, s in (("train", train), ("validation", validation), ("held_out", validation))
    }
    keras.utils.set_random_seed(0)
    model, inputs = metric_learning.build_embedding(
        "features", features, {}, backbone="vgg16", input_size=32, embedding_dim=4, hidden_units=8
    )
    assert inputs["train"] is features["train"]
    history = metric_learning.train_embedding(
        model, inputs, train, validation, epochs=2, steps_per_epoch=2, pk_batch=(3, 4), seed=0
    )
    assert len(history["loss"]) == 2 and set(history) >= {"active_triplets", "val_loss"}
    vectors = metric_learning.embed(model, inputs)
    np.testing.assert_allclose(np.linalg.norm(vectors["held_out"], axis=1), 1.0, rtol=1e-5)
    pairs = metric_learning.evaluation_pairs({"held_out": validation}, 10, seed=0)["held_out"]
    assert metric_learning.check_siamese(model, inputs["held_out"], vectors["held_out"], pairs) < 1e-4
    with pytest.raises(ValueError, match="Siamese scores differ"):
        metric_learning.check_siamese(model, inputs["held_out"], np.roll(vectors["held_out"], 1, axis=0), pairs)


def _head_problem():
    """Three classes of 10-D features (train / validation / held-out) and a builder of small projection heads."""
    rng = np.random.default_rng(7)
    train, validation, held_out = _labelled(12), _labelled(6, seed=1), _labelled(6, seed=2)
    centres = rng.normal(size=(3, 10)) * 2
    features = {
        name: (centres[s.labels] + rng.normal(size=(len(s), 10))).astype(np.float32)
        for name, s in (("train", train), ("validation", validation), ("held_out", held_out))
    }

    def build():
        return metric_learning.build_embedding(
            "features", features, {}, backbone="vgg16", input_size=32, embedding_dim=4, hidden_units=8
        )[0]

    return train, validation, held_out, features, build


def test_loss_selection_uses_validation_pairs_only_and_is_seeded():
    train, validation, held_out, features, build = _head_problem()
    pairs = metric_learning.evaluation_pairs({"validation": validation, "held_out": held_out}, 40, seed=0)
    grid = model_selection.loss_grid(["squared-L2", "angular"], [0.2, 0.5]) + [{"distance": "angular", "margin": 0.2}]
    assert [model_selection.setting_key(g) for g in grid[:2]] == ["squared-L2_0.2", "squared-L2_0.5"]
    training = {"epochs": 2, "steps_per_epoch": 3, "pk_batch": (3, 4)}
    selection = model_selection.select_on_validation(
        build, features, train, validation, pairs["validation"], grid, seed=0, **training
    )
    table = selection.table
    assert len(table) == 5 and table["chosen"].sum() == 1
    # the same setting twice, seeded the same: the same score (the comparison is not luck of the draw)
    assert table.loc[2, "val_roc_auc"] == pytest.approx(table.loc[4, "val_roc_auc"], abs=1e-6)
    best = table.loc[table["chosen"]].iloc[0]
    assert best["val_roc_auc"] == table["val_roc_auc"].max()
    assert selection.setting == {"distance": best["distance"], "margin": best["margin"]}
    # the score is scikit-learn's ROC AUC of the chosen model on the validation pairs, not the held-out ones
    first, second, is_match = pairs["validation"]
    vectors = selection.model.predict(features["validation"], verbose=0)
    expected = roc_auc_score(is_match, np.sum(vectors[first] * vectors[second], axis=1))
    assert best["val_roc_auc"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="empty"):
        model_selection.select_on_validation(build, features, train, validation, pairs["validation"], [], seed=0)
    spread = model_selection.embedding_seed_spread(
        build, features, train, validation, held_out.labels, pairs["held_out"], selection.setting, [0, 1],
        trained={0: selection.model}, **training,
    )  # fmt: skip
    first, second, is_match = pairs["held_out"]
    held = selection.model.predict(features["held_out"], verbose=0)
    database = selection.model.predict(features["train"], verbose=0)
    assert list(spread["seed"]) == [0, 1]
    assert spread.loc[0, "roc_auc"] == pytest.approx(roc_auc_score(is_match, np.sum(held[first] * held[second], 1)))
    assert spread.loc[0, "map"] == pytest.approx(_cosine_ap(held, held_out.labels, database, train.labels), abs=1e-6)
    assert spread.loc[1, "roc_auc"] != spread.loc[0, "roc_auc"]  # another seed, another model
    metrics = model_selection.selection_metrics(selection, spread)
    assert {key for key in metrics if key.startswith("val_roc_auc_")} == {
        f"val_roc_auc_{key}" for key in ("squared-L2_0.2", "squared-L2_0.5", "angular_0.2", "angular_0.5")
    }
    assert metrics["chosen_margin"] == selection.setting["margin"] and metrics["n_seeds"] == 2
    assert metrics["roc_auc_trained_mean"] == pytest.approx(np.mean(spread["roc_auc"]))
    assert metrics["map_trained_std"] == pytest.approx(np.std(spread["map"], ddof=1))


def test_evaluation_pairs_are_balanced_and_capped():
    pairs = metric_learning.evaluation_pairs({"small": _labelled(3), "large": _labelled(20)}, 30, seed=0)
    assert len(pairs["small"][2]) == 18 and pairs["small"][2].sum() == 9  # 2 × 9 images
    assert len(pairs["large"][2]) == 30 and pairs["large"][2].sum() == 15


def test_roc_comparison_and_threshold_against_scikit_learn():
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(3), 8)
    vectors = {"trained": np.eye(3)[labels] + 0.5 * rng.normal(size=(24, 3)), "untrained": rng.normal(size=(24, 3))}
    image_set = ImageSet(labels=labels, class_names=("a", "b", "c"), images=np.zeros((24, 2, 2)))
    pairs = metric_learning.evaluation_pairs({"held_out": image_set}, 40)["held_out"]
    first, second, is_match = pairs
    table, reports = metric_learning.roc_comparison(vectors, pairs, "vgg16")
    assert table.index.tolist() == ["trained", "untrained"]
    assert table.loc["trained", "embedding"] == "trained embedding"
    for role, v in vectors.items():
        unit = v / np.linalg.norm(v, axis=1, keepdims=True)
        scores = (1 + (unit[first] * unit[second]).sum(axis=1)) / 2
        assert table.loc[role, "ROC AUC"] == pytest.approx(roc_auc_score(is_match, scores))
    assert reports["trained"]["roc_auc"] > reports["untrained"]["roc_auc"]

    embeddings = {"validation": vectors["trained"], "held_out": vectors["trained"]}
    threshold, matrix, accuracy = metric_learning.validation_threshold(
        embeddings, {"validation": pairs, "held_out": pairs}
    )
    assert threshold == choose_threshold(pair_scores(vectors["trained"], first, second), is_match, "youden")
    predicted = pair_scores(vectors["trained"], first, second) >= threshold  # float32 scores, as thresholded
    assert matrix.tolist() == [
        [int((~predicted & ~is_match).sum()), int((predicted & ~is_match).sum())],
        [int((~predicted & is_match).sum()), int((predicted & is_match).sum())],
    ]
    assert accuracy == pytest.approx(np.mean(predicted == is_match))


def test_retrieval_comparison_and_summary():
    rng = np.random.default_rng(9)
    query_labels, database_labels = rng.integers(0, 3, 10), rng.integers(0, 3, 30)
    candidates = {
        "trained": (rng.normal(size=(10, 4)), rng.normal(size=(30, 4))),
        "backbone": (rng.normal(size=(10, 6)), rng.normal(size=(30, 6))),
    }
    table = metric_learning.retrieval_comparison(candidates, query_labels, database_labels, "vgg16")
    assert list(table.columns) == ["embedding", "dim", "mAP", "P@1", "P@10"]
    assert table["embedding"].tolist() == ["trained embedding", "vgg16 GeM features"]
    query_features, database_features = candidates["backbone"]
    direct = retrieval_metrics(query_features, query_labels, database_features, database_labels)
    assert table.loc["backbone", "mAP"] == direct["map"]
    reports = {
        role: {"roc_auc": auc, "tpr_at_fpr_1pct": 0.5, "tpr_at_fpr_01pct": 0.25}
        for role, auc in (("trained", 0.9), ("untrained", 0.6), ("backbone", 0.8))
    }
    summary = metric_learning.summary_metrics(reports, table, 0.7, 0.85, 40)
    assert summary == {
        "roc_auc_trained": 0.9,
        "roc_auc_untrained": 0.6,
        "roc_auc_backbone": 0.8,
        "tpr_at_fpr_1pct_trained": 0.5,
        "tpr_at_fpr_01pct_trained": 0.25,
        "pair_accuracy_trained": 0.85,
        "threshold": 0.7,
        "map_trained": table.loc["trained", "mAP"],
        "p1_trained": table.loc["trained", "P@1"],
        "map_backbone": direct["map"],
        "n_test_pairs": 40,
    }


def test_embedding_views_export_the_first_points(tmp_path):
    image_set = _labelled(6)
    vectors = np.random.default_rng(10).normal(size=(18, 5)).astype(np.float32)
    figure, directory = metric_learning.embedding_views(
        vectors, image_set, np.random.default_rng(0), tmp_path / "projector", tsne_points=12, projector_points=5
    )
    shown = np.sort(np.random.default_rng(0).choice(18, 12, replace=False))
    exported = np.loadtxt(directory / "vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(exported, vectors[shown[:5]], rtol=1e-5)
    assert (directory / "sprite.png").is_file()
    assert len(figure.axes[0].collections) == len(np.unique(image_set.labels[shown]))  # one scatter per class


def test_tiny_imagenet_fixture_is_written_under_the_cache(isolated_paths):
    root = metric_learning.tiny_imagenet_fixture(seed=0)
    assert root.is_relative_to(isolated_paths)
    splits = load("tiny_imagenet", root, download=False)
    assert len(splits["train"].class_names) == 4 and len(splits["train"]) == 96 and len(splits["val"]) == 48
    assert held_out_name(splits) == "val"


def test_classic_summary_rows_order_codes_and_fastest_indexes():
    summary = {
        "map_hog": 0.46,
        "map_gem": 0.52,
        "map_dlbhc48": 0.88,
        "map_lsh_12": 0.21,
        "map_itq_12": 0.50,
        "map_lsh_48": 0.34,
        "map_itq_48": 0.54,
        "map_lsh_128": 0.44,
        "map_itq_128": 0.57,
        "qps_at_recall90_exact": 500.0,
        "qps_at_recall90_hnsw_m16": 6000.0,
        "qps_at_recall90_pq": 900.0,
        "qps_at_recall90_exact_1m": 60.0,
        "qps_at_recall90_ivfpq_1m": 300.0,
        "qps_at_recall95_exact": 500.0,
    }
    rows = classic.summary_rows(summary)
    assert [key for key, _, _ in rows] == [
        "map_dlbhc48",
        "map_gem",
        "map_hog",
        "map_lsh_48",
        "map_itq_48",
        "map_lsh_128",
        "map_itq_128",
        "qps_at_recall90_hnsw_m16",
        "qps_at_recall90_exact",
        "qps_at_recall90_ivfpq_1m",
        "qps_at_recall90_exact_1m",
        "qps_at_recall95_exact",
    ]
    assert rows[0][2] == classic.PUBLISHED_DLBHC and all(published is None for _, _, published in rows[1:])
    assert rows[7][1] == "queries/s at recall@10 ≥ 0.9, deep features: fastest, hnsw_m16"
    assert rows[9][1] == "queries/s at recall@10 ≥ 0.9, overlapping clusters: fastest, ivfpq"
