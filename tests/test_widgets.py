"""The search explorer (`cbir.widgets`) through its programmatic API, against NumPy brute force."""

import re
import time

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from cbir.data.images import ImageSet
from cbir.retrieval.distances import get_distance
from cbir.retrieval.exact import exact_search
from cbir.widgets import SearchExplorer, SearchFeatures

N_DATABASE, N_QUERIES, DIM, N_CLASSES = 300, 20, 16, 4


def _image_set(n: int, labels: np.ndarray, seed: int) -> ImageSet:
    images = np.random.default_rng(seed).integers(0, 256, (n, 8, 8), dtype=np.uint8)
    return ImageSet(labels=labels, class_names=tuple(f"c{i}" for i in range(N_CLASSES)), images=images, name="toy")


@pytest.fixture
def toy():
    """Clustered float features (not unit length, so that metrics disagree) of labelled toy images."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (N_CLASSES, DIM))
    database_labels, query_labels = rng.integers(0, N_CLASSES, N_DATABASE), rng.integers(0, N_CLASSES, N_QUERIES)
    scale = rng.uniform(0.2, 3.0, (N_DATABASE, 1))
    database_features = (centres[database_labels] + rng.normal(0, 0.8, (N_DATABASE, DIM))) * scale
    query_features = centres[query_labels] + rng.normal(0, 0.8, (N_QUERIES, DIM))
    queries, database = _image_set(N_QUERIES, query_labels, 1), _image_set(N_DATABASE, database_labels, 2)
    return queries, database, query_features.astype(np.float32), database_features.astype(np.float32)


def _reference_distances(query: np.ndarray, database: np.ndarray, metric: str) -> np.ndarray:
    """One query's distances to every database row, by an explicit loop."""
    query, database = query.astype(np.float64), database.astype(np.float64)
    out = []
    for row in database:
        if metric == "cosine":
            out.append(1 - query @ row / (np.linalg.norm(query) * np.linalg.norm(row)))
        elif metric == "sqeuclidean":
            out.append(((query - row) ** 2).sum())
        elif metric == "cityblock":
            out.append(np.abs(query - row).sum())
        elif metric == "chebyshev":
            out.append(np.abs(query - row).max())
        elif metric == "hamming":
            out.append(np.mean(query != row))
    return np.array(out)


def _reference_top(distances: np.ndarray, k: int) -> np.ndarray:
    return np.lexsort((np.arange(len(distances)), distances))[:k]  # by distance, then by index


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "cityblock", "chebyshev"])
def test_exact_results_equal_brute_force_and_exact_search(toy, metric):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, normalize=False)
    explorer.set_metric(metric)
    for index in (0, 7, 19):
        results = explorer.set_query(index)
        distances = _reference_distances(query_features[index], database_features, metric)
        expected = _reference_top(distances, 10)
        np.testing.assert_array_equal(results.indices, expected)
        np.testing.assert_allclose(results.scores, get_distance(metric).to_score(distances[expected]), atol=1e-5)
        scores, indices = exact_search(
            query_features[index : index + 1], database_features, 10, normalize=metric == "cosine", metric=metric
        )
        np.testing.assert_array_equal(results.indices, indices[0])
        assert ((results.scores >= 0) & (results.scores <= 1)).all()
        np.testing.assert_array_equal(results.labels, database.labels[expected])
        np.testing.assert_array_equal(results.relevant, database.labels[expected] == queries.labels[index])


def test_switching_metric_changes_the_ranking_as_the_registry_says(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, normalize=False, k=30)
    cosine = explorer.set_query(3).indices
    cityblock = explorer.set_metric("L1")  # an alias of the registry
    assert cityblock.metric == "cityblock" and explorer.metric_widget.value == "cityblock"
    expected = _reference_top(_reference_distances(query_features[3], database_features, "cityblock"), 30)
    np.testing.assert_array_equal(cityblock.indices, expected)
    assert not np.array_equal(cosine, cityblock.indices)  # features of unequal length: L1 ≠ cosine
    # With L2-normalised features, squared Euclidean ranks exactly as cosine (‖x − y‖² = 2 − 2 cos).
    explorer.set_normalize(True)
    np.testing.assert_array_equal(explorer.set_metric("sqeuclidean").indices, cosine)


def test_hamming_mode_equals_a_numpy_popcount_ranking(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, k=40)
    thresholds = np.median(database_features, axis=0)
    database_codes = database_features > thresholds
    for index in (0, 11):
        query_codes = query_features[index] > thresholds
        popcount = np.array([int(np.count_nonzero(query_codes != row)) for row in database_codes])
        expected = _reference_top(popcount, 40)  # many ties at 16 bits: ties by lower index
        explorer.set_query(index)
        results = explorer.set_mode("hamming")
        np.testing.assert_array_equal(results.indices, expected)
        np.testing.assert_allclose(results.scores, 1 - popcount[expected] / DIM)
        explorer.set_mode("exact")
        same = explorer.set_metric("hamming")  # the registry's hamming on the codes ranks alike
        np.testing.assert_array_equal(same.indices, expected)
        explorer.set_metric("cosine")


def test_two_phase_reranks_the_hamming_shortlist_by_cosine(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, k=10)
    thresholds = np.median(database_features, axis=0)
    popcount = ((query_features[5] > thresholds) != (database_features > thresholds)).sum(axis=1)
    shortlist = _reference_top(popcount, 50)
    cosine = _reference_distances(query_features[5], database_features[shortlist], "cosine")
    expected = shortlist[np.argsort(cosine, kind="stable")[:10]]
    explorer.set_query(5)
    results = explorer.set_mode("two_phase", shortlist=50)
    np.testing.assert_array_equal(results.indices, expected)
    assert results.shortlist == 50 and results.metric == "hamming"
    # The whole database as the shortlist: exactly the cosine ranking.
    everything = explorer.set_mode("two_phase", shortlist=N_DATABASE)
    np.testing.assert_array_equal(everything.indices, explorer.set_mode("exact").indices)


def test_average_precision_and_precision_at_k_agree_with_scikit_learn(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, k=10)
    for index in (2, 9):
        results = explorer.set_query(index)
        distances = _reference_distances(query_features[index], database_features, "cosine")
        relevant = database.labels == queries.labels[index]
        assert results.average_precision == pytest.approx(average_precision_score(relevant, -distances))
        assert results.precision_at_k == pytest.approx(relevant[_reference_top(distances, 10)].mean())


def test_leave_one_out_and_uploaded_queries(toy):
    _, database, _, database_features = toy
    explorer = SearchExplorer(
        database,
        database,
        {"toy": (database_features, database_features)},
        encoders={"toy": lambda images: images[..., 0].reshape(len(images), -1)},
    )
    results = explorer.set_query(4)
    assert 4 not in results.indices and len(results.indices) == 10  # the query itself is left out
    # An uploaded image goes through its representation's encoder: the toy encoder reads raw pixels.
    pixels = {"pixels": (database.images.reshape(N_DATABASE, -1), database.images.reshape(N_DATABASE, -1))}
    explorer = SearchExplorer(database, database, pixels, encoders={"pixels": lambda x: x[..., 0].reshape(len(x), -1)})
    uploaded = explorer.set_query(image=database.load_images([4])[0])
    assert uploaded.query_index is None and uploaded.average_precision is None
    assert uploaded.indices[0] == 4 and uploaded.scores[0] == pytest.approx(1.0)


def test_bad_input_raises_clear_errors(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)})
    with pytest.raises(ValueError, match="unknown distance 'cosinus'.*cosine"):
        explorer.set_metric("cosinus")
    with pytest.raises(ValueError, match=re.escape("query index must be an integer in [0, 20), got 20")):
        explorer.set_query(20)
    with pytest.raises(ValueError, match="exactly one"):
        explorer.set_query(1, random=True)
    with pytest.raises(ValueError, match="unknown representation 'vgg'.*toy"):
        explorer.set_representation("vgg")
    with pytest.raises(ValueError, match="k must be an integer in"):
        explorer.set_k(0)
    with pytest.raises(ValueError, match="unknown search mode"):
        explorer.set_mode("fast")
    with pytest.raises(ValueError, match="no encoder for 'toy'"):
        explorer.set_query(image=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="not an image"):
        explorer.set_query(image=b"not a picture")
    with pytest.raises(ValueError, match="unknown class 'c9'"):
        explorer.set_query(label="c9")
    with pytest.raises(ValueError, match="19 query and 300 database rows, but the image sets hold 20"):
        SearchExplorer(queries, database, {"toy": (query_features[:19], database_features)})
    assert explorer.results.metric == "cosine"  # a refused setting leaves the explorer as it was


def test_widgets_drive_the_search_and_show_the_grid(toy):
    queries, database, query_features, database_features = toy
    explorer = SearchExplorer(queries, database, {"toy": (query_features, database_features)}, normalize=False)
    before = explorer.results
    explorer.metric_widget.value = "chebyshev"
    assert explorer.results.metric == "chebyshev" and explorer.results is not before
    explorer.query_index_widget.value = 6
    assert explorer.results.query_index == 6
    explorer.class_widget.value = 2
    assert queries.labels[explorer.results.query_index] == 2
    html = explorer.grid_widget.value
    shown = [int(i) for i in re.findall(r'class="cbir-result" data-rank="\d+" data-index="(\d+)"', html)]
    assert shown == explorer.results.indices.tolist()
    assert html.count('data-relevant="1"') == int(explorer.results.relevant.sum())
    explorer.mode_widget.value = "hamming"
    assert explorer.metric_widget.disabled and explorer.results.mode == "hamming"


def test_a_change_answers_within_a_second_on_default_sized_features():
    rng = np.random.default_rng(0)
    n, dim = 10_000, 1280  # notebook 06's default: 10 000 Fashion-MNIST images, EfficientNet-Lite0 GeM
    labels = rng.integers(0, 10, n)
    database = ImageSet(labels=labels, class_names=tuple("abcdefghij"), images=np.zeros((n, 2, 2), np.uint8))
    queries = database.subset(np.arange(100))
    features = rng.random((n, dim), dtype=np.float32)
    explorer = SearchExplorer(queries, database, {"gem": (features[:100], features)})
    for metric in ("cityblock", "cosine"):  # first calls compile the kernels
        explorer.set_metric(metric)
    start = time.perf_counter()
    for index in range(3):
        explorer.set_query(index)
    explorer.set_metric("cityblock")
    assert (time.perf_counter() - start) / 4 < 1.0


def test_search_features_from_a_representation_like_object():
    class Cached:  # the attributes of cbir.experiments.representations.Representation
        query, database = np.ones((2, 3), np.float32), np.eye(3, dtype=np.float32)
        binary_query, binary_database = query > 0.5, database > 0.5
        binarised, description = "DLBHC's codes: latent activation ≥ 0.5", "toy"

    features = SearchFeatures.from_cached("dlbhc3", Cached())
    assert features.bits == 3 and features.thresholds is None and features.description == "toy"
    with pytest.raises(ValueError, match="features must be"):
        SearchFeatures.from_cached("bad", (np.ones((2, 3)), np.ones((4, 2))))
