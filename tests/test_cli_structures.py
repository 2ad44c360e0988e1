"""`cbir index --features <descriptor> --index <structure>` then `cbir search`, on a class-per-folder tree.

Small trees make every ANN structure exact at its default settings (an IVF of one list, a refine list
covering the database, an HNSW graph searched with ef ≥ n), so each must return what exact search returns.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from cbir.cli import main
from cbir.retrieval.feature_index import FeatureIndex


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _search(capsys, index, queries, *options):
    code, out, err = _run(capsys, "search", index, *queries, "-k", 5, "--json", "--quiet", *options)
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(
    "features, structure",
    [
        ("hog", "hnsw"),
        ("hog", "binary"),
        ("sift_vlad", "ivfpq"),
        ("color_hist", "binary"),
        ("lbp", "hnsw"),
        ("sift_fisher", "hnsw"),
        ("sift_bow", "flat"),
    ],
)
def test_descriptor_and_structure_search_like_exact_search(
    photo_tree, tmp_path, capsys, isolated_paths, features, structure
):
    index = tmp_path / "index"
    code, out, err = _run(
        capsys, "index", photo_tree, "--out", index, "--features", features, "--index", structure, "--json"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["images"] == 16 and summary["structure"] == structure
    attachments = FeatureIndex.load(index).attachments
    assert ("ann" in attachments) == (structure != "flat")
    queries = sorted(photo_tree.glob("*/*0.jpg"))
    found, exact = _search(capsys, index, queries), _search(capsys, index, queries, "--exact")
    assert [[r["path"] for r in q["results"]] for q in found] == [[r["path"] for r in q["results"]] for q in exact]
    for query in found:
        top = query["results"][0]
        assert Path(top["path"]).name == Path(query["query"]).name  # a database image finds itself first
        assert top["score"] == pytest.approx(1.0, abs=1e-4)
        assert all(0.0 <= r["score"] <= 1.0 for r in query["results"])
        scores = [r["score"] for r in query["results"]]
        assert scores == sorted(scores, reverse=True)


def test_changing_the_structure_rebuilds_only_the_ann_file(photo_tree, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    assert _run(capsys, "index", photo_tree, "--out", index, "--features", "hog")[0] == 0
    code, out, err = _run(capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "hnsw", "--json")
    assert code == 0, err
    assert json.loads(out)["embedded"] == 0 and "ann" in FeatureIndex.load(index).attachments
    code, out, err = _run(
        capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "hnsw", "--index-param", "M=8"
    )
    assert code == 0, err
    assert FeatureIndex.load(index).attachments["ann"]["meta"]["params"]["M"] == 8
    results = _search(capsys, index, [photo_tree / "cat" / "cat1.jpg"], "--search-param", "ef_search=4")
    assert len(results[0]["results"]) >= 1
    assert _run(capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "flat")[0] == 0
    assert "ann" not in FeatureIndex.load(index).attachments
    assert not list(index.glob("attachment-ann-*"))


def test_bad_structure_parameters_and_mixed_features(photo_tree, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    code, _, err = _run(
        capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "hnsw", "--index-param", "bogus=1"
    )
    assert code == 1 and "bogus" in err
    with pytest.raises(SystemExit) as usage:
        main(["index", str(photo_tree), "--out", str(index), "--index-param", "M"])
    assert usage.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    assert _run(capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "hnsw")[0] == 0
    code, _, err = _run(capsys, "search", index, photo_tree / "cat" / "cat1.jpg", "--search-param", "nprobe=3")
    assert code == 1 and "nprobe" in err
    code, _, err = _run(capsys, "index", photo_tree, "--out", index, "--features", "lbp")
    assert code == 1 and "features" in err  # an index of hog descriptors is not silently mixed with lbp


def test_a_corrupt_ann_file_is_an_error_naming_it(photo_tree, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    assert _run(capsys, "index", photo_tree, "--out", index, "--features", "hog", "--index", "hnsw")[0] == 0
    ann = next(index.glob("attachment-ann-*.npz"))
    ann.write_bytes(ann.read_bytes()[:100])
    code, out, err = _run(capsys, "search", index, photo_tree / "cat" / "cat1.jpg")
    assert code == 1 and out == "" and ann.name in err


def test_a_vocabulary_is_fitted_once_and_reused(photo_tree, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    partial = tmp_path / "partial"
    for label in ("cat", "coffee"):
        (partial / label).mkdir(parents=True)
        for path in (photo_tree / label).iterdir():
            (partial / label / path.name).write_bytes(path.read_bytes())
    assert _run(capsys, "index", partial, "--out", index, "--features", "sift_bow")[0] == 0
    vocabulary = FeatureIndex.load(index).attachments["descriptor"]
    before = FeatureIndex.load(index).features.copy()
    for label in ("astronaut",):
        (partial / label).mkdir()
        for path in (photo_tree / label).iterdir():
            (partial / label / path.name).write_bytes(path.read_bytes())
    code, out, err = _run(capsys, "index", partial, "--out", index, "--features", "sift_bow", "--json")
    assert code == 0 and json.loads(out)["embedded"] == 4, err
    after = FeatureIndex.load(index)
    assert after.attachments["descriptor"] == vocabulary  # the same fitted state, not refitted on the new images
    np.testing.assert_array_equal(after.features[: len(before)], before)
