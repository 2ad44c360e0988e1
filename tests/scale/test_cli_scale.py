"""`cbir index --store milvus:… --engine ray` then `cbir search --store milvus:…` on a class-per-folder tree:
the same top-k as the file index, incremental re-indexing, and clear errors."""

import json
import socket

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the [scale] extra (pymilvus with Milvus Lite) is not installed")

from cbir.cli import main  # noqa: E402
from cbir.retrieval.feature_index import FeatureIndex  # noqa: E402

FAST = ["--backbone", "vgg16", "--layer", "block5_conv3", "--weights", "none", "--input-size", "32"]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _search(capsys, *argv):
    code, out, err = _run(capsys, "search", *argv, "-k", 5, "--json", "--quiet")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _paths(results):
    return [[r["path"] for r in query["results"]] for query in results]


@pytest.mark.slow
def test_milvus_and_ray_find_what_the_file_index_finds(photo_tree, tmp_path, capsys, isolated_paths, ray_local):
    store = f"milvus:{tmp_path / 'milvus' / 'cbir.db'}"
    code, out, err = _run(capsys, "index", photo_tree, "--out", tmp_path / "files", *FAST, "--json", "--quiet")
    assert code == 0, err
    code, out, err = _run(
        capsys, "index", photo_tree, "--store", store, "--engine", "ray", "--workers", 2, *FAST, "--json", "--quiet"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["images"] == 16 and summary["embedded"] == 16 and summary["skipped"] == 0
    queries = sorted(photo_tree.glob("*/*0.jpg"))
    files = _search(capsys, tmp_path / "files", *queries)
    milvus = _search(capsys, *queries, "--store", store)
    assert _paths(milvus) == _paths(files)
    for ours, theirs in zip(milvus, files):
        np.testing.assert_allclose([r["score"] for r in ours["results"]], [r["score"] for r in theirs["results"]],
                                   atol=1e-4)  # fmt: skip
        assert ours["results"][0]["path"] == ours["query"]  # a database image finds itself first

    # the file store fed by Ray: the same rows as the single-process file index
    code, _, err = _run(
        capsys, "index", photo_tree, "--out", tmp_path / "files-ray", "--engine", "ray", *FAST, "--quiet"
    )
    assert code == 0, err
    local, ray = FeatureIndex.load(tmp_path / "files"), FeatureIndex.load(tmp_path / "files-ray")
    rows = {e["path"]: row for e, row in zip(ray.entries, ray.features)}
    np.testing.assert_allclose(np.stack([rows[e["path"]] for e in local.entries]), local.features, atol=2e-5)


def test_incremental_milvus_index_and_errors(photo_tree, tmp_path, capsys, isolated_paths):
    folder = tmp_path / "photos"
    for path in sorted(photo_tree.glob("*/*.jpg"))[:8]:
        (folder / path.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / path.parent.name / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    store = f"milvus:{tmp_path / 'cbir.db'}#binary_codes"
    index = ["index", folder, "--store", store, *FAST, "--index", "binary", "--index-param", "bits=64", "--json"]
    code, out, err = _run(capsys, *index)
    assert code == 0, err
    assert json.loads(out)["embedded"] == 8 and f"skipped {folder / 'broken.jpg'}" in err
    code, out, err = _run(capsys, *index)
    assert code == 0 and json.loads(out)["embedded"] == 0 and json.loads(out)["unchanged"] == 8, err
    gone = sorted(folder.glob("*/*.jpg"))[0]
    gone.unlink()
    new = photo_tree / "rocket" / "rocket2.jpg"
    (folder / "rocket").mkdir(exist_ok=True)
    (folder / "rocket" / new.name).write_bytes(new.read_bytes())
    code, out, err = _run(capsys, *index)
    summary = json.loads(out)
    assert code == 0 and (summary["embedded"], summary["removed"], summary["images"]) == (1, 1, 8), err
    found = _search(capsys, folder / "rocket" / new.name, gone.parent / f"{gone.parent.name}1.jpg", "--store", store)
    assert found[0]["results"][0]["path"] == str((folder / "rocket" / new.name).resolve())
    assert not any(r["path"] == str(gone.resolve()) for q in found for r in q["results"])

    code, _, err = _run(capsys, *index[:-5], "--input-size", "64", "--index", "binary", "--index-param", "bits=64")
    assert code == 1 and "input_size: index has [32, 32], requested [64, 64]" in err and "binary_codes" in err
    code, _, err = _run(capsys, *index[:-5], "--index", "hnsw")
    assert code == 1 and "structure: store has 'binary', requested 'hnsw'" in err
    code, _, err = _run(capsys, "search", folder / "rocket" / new.name, "--store", store, "--backbone", "resnet50")
    assert code == 1 and "backbone: index has 'vgg16', requested 'resnet50'" in err
    code, _, err = _run(capsys, "search", new, "--store", f"milvus:{tmp_path / 'cbir.db'}#other")
    assert code == 1 and "no such collection" in err
    code, _, err = _run(capsys, "index", folder, "--store", "s3://bucket", *FAST)
    assert code == 2 and "expected 'files'" in err
    code, _, err = _run(capsys, "index", folder, *FAST)
    assert code == 2 and "--out INDEX_DIR is required" in err


def test_bad_stores_fail_before_any_work_and_create_nothing(photo_tree, tmp_path, capsys, isolated_paths):
    query = photo_tree / "cat" / "cat0.jpg"
    missing = tmp_path / "typo" / "nested" / "cbir.db"
    code, _, err = _run(capsys, "search", query, "--store", f"milvus:{missing}")
    assert code == 1 and "no Milvus Lite database there" in err
    assert not (tmp_path / "typo").exists()  # a read-only command leaves nothing behind

    not_milvus = tmp_path / "notes.db"
    not_milvus.write_text("hello")
    code, _, err = _run(capsys, "index", photo_tree, "--store", f"milvus:{not_milvus}", *FAST)
    assert code == 1 and "is a file, not a Milvus Lite database" in err
    assert not_milvus.read_text() == "hello"

    store = tmp_path / "new" / "cbir.db"
    code, out, err = _run(capsys, "index", photo_tree, "--store", f"milvus:{store}", *FAST, "--index", "hnsw",
                          "--index-param", "nprobe=3")  # fmt: skip
    assert code == 1 and "takes ['M', 'bits', 'ef_construction'], got ['nprobe']" in err and out == ""
    assert not store.exists()  # refused before anything was embedded or created

    code, _, err = _run(capsys, "index", photo_tree, "--store", f"milvus:{store}#{'a' * 256}", *FAST)
    assert code == 2 and "at most 255" in err
    code, _, err = _run(capsys, "index", photo_tree, "--store", f"milvus:{store}", "--out", tmp_path / "x", *FAST)
    assert code == 2 and "--out is not for --store milvus:" in err
    code, _, err = _run(capsys, "index", photo_tree, "--store", f"milvus:{store}", "--features", "hog")
    assert code == 2 and "index descriptors with --store files" in err


def test_an_unreachable_ray_address_fails_fast_naming_it():
    pytest.importorskip("ray.data", reason="the [scale] extra (ray[data]) is not installed")
    from cbir.scale.ray_extract import check_reachable

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(ConnectionError, match=f"--address {address}: no Ray cluster answers"):
            check_reachable(address, timeout_s=5)
