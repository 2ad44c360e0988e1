"""`MilvusStore` against a real embedded Milvus Lite: round trip, incremental update, settings check, and the
±1 inner-product codes against a NumPy Hamming ranking (brute force over every database code)."""

import builtins

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the [scale] extra (pymilvus with Milvus Lite) is not installed")

from cbir.retrieval.milvus_location import StoreLocation, import_pymilvus, parse_store  # noqa: E402
from cbir.retrieval.milvus_store import MilvusStore, path_id  # noqa: E402
from cbir.retrieval.storage import IndexFormatError  # noqa: E402

SETTINGS = {"backbone": "vgg16", "layer": "block5_conv3", "pooling": "gem", "input_size": [32, 32]}


def _features(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n, dim)).astype(np.float32) + 0.5  # off-centre, like CNN features
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def _entries(n: int, start: int = 0) -> list[dict]:
    return [{"path": f"/photos/{i:04d}.jpg", "size": 1000 + i, "mtime_ns": i, "sha256": f"{i:064x}"}
            for i in range(start, start + n)]  # fmt: skip


def _brute_force(queries: np.ndarray, database: np.ndarray, paths: list[str], k: int) -> list[list[str]]:
    """Top-k by cosine, one query at a time, ties by path order (a loop, not the store's search)."""
    found = []
    for query in queries:
        similarities = [float(np.dot(query, row)) for row in database]
        order = sorted(range(len(paths)), key=lambda i: (-similarities[i], i))
        found.append([paths[i] for i in order[:k]])
    return found


@pytest.fixture
def location(tmp_path):
    return parse_store(f"milvus:{tmp_path / 'store' / 'cbir.db'}#photos")


@pytest.mark.parametrize("structure", ["binary", "flat", "hnsw"])
def test_round_trip_incremental_update_and_reopen(location, structure):
    dim, n = 24, 120
    features, entries = _features(n, dim, 0), _entries(n)
    store = MilvusStore.create(location, SETTINGS, dim, structure, {"bits": 64} if structure == "binary" else {})
    with store:
        store.upsert(entries[:70], features[:70])  # two chunks, as an indexing run commits them
        store.upsert(entries[70:], features[70:])
        assert len(store) == n
        assert store.entries() == {e["path"]: e for e in entries}
        queries = _features(6, dim, 1)
        everything = {"shortlist": n} if structure == "binary" else {"refine": 100}
        scores, paths = store.search(queries, k=5, search_params=everything)
        assert paths == _brute_force(queries, features, [e["path"] for e in entries], 5)
        expected = (1 + np.sort(queries @ features.T, axis=1)[:, ::-1][:, :5]) / 2
        np.testing.assert_allclose(scores, expected, atol=1e-5)

        # incremental: 10 files changed (new features), 15 deleted, 5 new
        changed = _features(10, dim, 2)
        store.upsert([{**e, "mtime_ns": e["mtime_ns"] + 1} for e in entries[:10]], changed)
        store.delete([e["path"] for e in entries[10:25]] + ["/never/indexed.jpg"])
        store.upsert(_entries(5, start=n), _features(5, dim, 3))
        assert len(store) == n - 15 + 5
    with MilvusStore.open(location, expected_settings=SETTINGS) as reopened:
        rows = reopened.entries()
        assert len(rows) == n - 10 and rows[entries[0]["path"]]["mtime_ns"] == 1
        assert not any(e["path"] in rows for e in entries[10:25])
        database = np.concatenate([changed, features[25:], _features(5, dim, 3)])
        paths = [e["path"] for e in entries[:10] + entries[25:] + _entries(5, start=n)]
        _, found = reopened.search(changed[:3], k=4, search_params=everything)
        assert found == _brute_force(changed[:3], database, paths, 4)
        assert found[0][0] == entries[0]["path"]  # a changed file is found by its new features


def test_reopening_with_other_settings_names_the_store_and_the_setting(location):
    MilvusStore.create(location, SETTINGS, 8).close()
    with pytest.raises(IndexFormatError) as error:
        MilvusStore.open(location, expected_settings={**SETTINGS, "input_size": [64, 64]})
    message = str(error.value)
    assert str(location) in message and "input_size: index has [32, 32], requested [64, 64]" in message
    with pytest.raises(IndexFormatError, match="the collection exists"):
        MilvusStore.create(location, SETTINGS, 8)
    MilvusStore.create(location, {**SETTINGS, "pooling": "mac"}, 8, overwrite=True).close()
    with MilvusStore.open(location, expected_settings={**SETTINGS, "pooling": "mac"}) as store:
        assert len(store) == 0
    other = StoreLocation(location.uri, "nothing_here", lite=True)
    with pytest.raises(IndexFormatError, match="no such collection"):
        MilvusStore.open(other)


def test_plus_minus_one_inner_product_ranks_as_hamming_distance(location):
    """Milvus Lite's ±1 codes searched by inner product give the k smallest Hamming distances of a NumPy loop."""
    dim, n, bits, k = 32, 300, 64, 10
    features, entries = _features(n, dim, 4), _entries(n)
    with MilvusStore.create(location, SETTINGS, dim, "binary", {"bits": bits}) as store:
        store.upsert(entries, features)
        queries = _features(8, dim, 5)
        query_codes, database_codes = store.encoder().encode(queries), store.encoder().encode(features)
        hits = store.client.search(
            location.collection, data=store._code_column(queries), anns_field="code", limit=k + 1,
            search_params={"metric_type": "IP"}, output_fields=["path"],
        )  # fmt: skip
    row_of = {path_id(e["path"]): i for i, e in enumerate(entries)}
    for query, row in zip(query_codes, hits):
        row = [hit for hit in row if hit["id"] in row_of][:k]
        hamming = [sum(int(a != b) for a, b in zip(query, code)) for code in database_codes]  # brute force
        reported = [(bits - hit["distance"]) / 2 for hit in row]  # <a, b> = bits - 2 Hamming(a, b)
        assert reported == [hamming[row_of[hit["id"]]] for hit in row]  # each hit at its true distance
        assert reported == sorted(hamming)[:k]  # and they are the k smallest


def test_bad_values_are_refused_with_the_accepted_forms(location, tmp_path, monkeypatch):
    assert parse_store("files") is None
    assert parse_store("http://milvus:19530#faces") == StoreLocation("http://milvus:19530", "faces", lite=False)
    for bad, message in (("milvus:x.sqlite", "ending in .db"), ("s3://x", "expected 'files'"),
                         (f"milvus:{tmp_path}/a.db#9lives", "collection name")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_store(bad)
    with pytest.raises(ValueError, match="bits must be a positive multiple of 8"):
        MilvusStore.create(location, SETTINGS, 8, "binary", {"bits": 12})
    with pytest.raises(ValueError, match="takes"):
        MilvusStore.create(location, SETTINGS, 8, "hnsw", {"nprobe": 3})
    with pytest.raises(ValueError, match="cosine or euclidean"):
        MilvusStore.create(location, {"features": "hog", "metric": "chi2"}, 8)
    with MilvusStore.create(location, SETTINGS, 8) as store:
        with pytest.raises(ValueError, match="need \\(1, 8\\) features"):
            store.upsert(_entries(1), np.zeros((1, 9), np.float32))
        scores, paths = store.search(_features(2, 8, 0), k=3)  # an empty store finds nothing
        assert scores.shape == (2, 0) and paths == [[], []]
        store.upsert(_entries(3), _features(3, 8, 0))
        with pytest.raises(ValueError, match="takes \\['shortlist'\\]"):
            store.search(_features(1, 8, 0), k=3, search_params={"ef": 5})

    real_import = builtins.__import__

    def without_pymilvus(name, *args, **kwargs):
        if name == "pymilvus":
            raise ImportError("No module named 'pymilvus'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_pymilvus)
    with pytest.raises(ImportError, match=r"pip install 'cbir\[scale\]'"):
        import_pymilvus()


def test_entries_are_read_in_full_beyond_one_query_window(location):
    n = 9000  # three id ranges of about 4 096 rows each
    entries = _entries(n)
    with MilvusStore.create(location, SETTINGS, 4, "binary", {"bits": 8}) as store:
        for start in range(0, n, 3000):
            store.upsert(entries[start : start + 3000], _features(3000, 4, start))
        assert len(store) == n
        assert store.entries() == {e["path"]: e for e in entries}
