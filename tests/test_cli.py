"""The `cbir index` / `cbir search` command line, including every kind of bad file."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from cbir.cli import main
from cbir.retrieval.feature_index import FeatureIndex

FAST = ["--backbone", "vgg16", "--layer", "block5_conv3", "--weights", "none", "--input-size", "32"]


def _photo(path: Path, name: str, size=(64, 64), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize(size)
    image.convert(mode).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    _photo(root / "chelsea.jpg", "chelsea")
    _photo(root / "coffee.JPG", "coffee")
    _photo(root / "nested" / "deeper" / "astronaut.png", "astronaut")
    _photo(root / "rgba.png", "rocket", mode="RGBA")
    _photo(root / "cmyk.jpg", "coffee", mode="CMYK")
    sixteen = np.asarray(Image.fromarray(skimage.data.camera()).resize((64, 64)), np.uint16) * 257
    Image.fromarray(sixteen).save(root / "sixteen.png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / "garbage.png").write_bytes(os.urandom(300))
    good = (root / "chelsea.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    return root


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_index_reports_and_skips_bad_files(folder, tmp_path, capsys, isolated_paths, monkeypatch):
    big = _photo(folder / "huge.png", "camera", size=(200, 200))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 200×200 > 2× the limit: a "decompression bomb"
    code, out, err = _run(capsys, "index", folder, "--out", tmp_path / "index", *FAST)
    assert code == 0
    for bad in ("empty.jpg", "notes.txt", "garbage.png", "truncated.jpg", "huge.png"):
        assert f"skipped {folder / bad}" in err, bad
    assert "empty file" in err and "not an image" in err and "truncated" in err and "DecompressionBomb" in err
    assert "indexed 6 images" in out and "6 embedded" in out and "5 skipped" in out
    manifest = json.loads((tmp_path / "index" / "index.json").read_text())
    names = sorted(Path(e["path"]).name for e in manifest["entries"])
    assert names == ["astronaut.png", "chelsea.jpg", "cmyk.jpg", "coffee.JPG", "rgba.png", "sixteen.png"]
    assert manifest["format_version"] == 2 and manifest["settings"]["backbone"] == "vgg16"
    assert big.exists()


def test_reindexing_embeds_only_new_or_changed_files(folder, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    assert _run(capsys, "index", folder, "--out", index, *FAST)[0] == 0
    before = FeatureIndex.load(index)
    before_rows = dict(zip((e["path"] for e in before.entries), before.features))
    _photo(folder / "new" / "camera.png", "camera")
    changed = folder / "coffee.JPG"
    _photo(changed, "rocket")
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    (folder / "nested" / "deeper" / "astronaut.png").unlink()
    code, out, _ = _run(capsys, "index", folder, "--out", index, *FAST)
    assert code == 0
    assert "indexed 6 images" in out and "2 embedded" in out and "4 unchanged" in out and "2 removed" in out
    after = FeatureIndex.load(index)
    assert not any("astronaut" in e["path"] for e in after.entries)
    assert before.shards != after.shards
    after_rows = dict(zip((e["path"] for e in after.entries), after.features))
    unchanged = [p for p in after_rows if p in before_rows and not p.endswith("coffee.JPG")]
    assert len(unchanged) == 4
    for path in unchanged:  # reused rows are copied, not recomputed
        np.testing.assert_array_equal(after_rows[path], before_rows[path])
    assert not np.allclose(after_rows[str(changed.resolve())], before_rows[str(changed.resolve())])


def test_search_prints_best_first_with_scores_and_json(folder, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    _run(capsys, "index", folder, "--out", index, *FAST)
    code, out, _ = _run(capsys, "search", index, folder / "chelsea.jpg", "-k", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"query: {folder / 'chelsea.jpg'}"
    assert lines[1].split()[1] == "1.0000" and lines[1].endswith("chelsea.jpg")  # itself, score 1
    scores = [float(line.split()[1]) for line in lines[1:4]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)

    queries = tmp_path / "queries"
    _photo(queries / "a.jpg", "chelsea")
    _photo(queries / "b.png", "coffee")
    code, out, _ = _run(
        capsys, "search", index, queries, folder / "rgba.png", "-k", "2", "--json", "--grid", tmp_path / "grid.png"
    )
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]
    assert [Path(o["query"]).name for o in objects] == ["a.jpg", "b.png", "rgba.png"]
    for obj in objects:
        assert len(obj["results"]) == 2 and set(obj["results"][0]) == {"path", "score"}
        assert obj["results"][0]["score"] >= obj["results"][1]["score"]
    assert objects[2]["results"][0]["path"].endswith("rgba.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_search_errors(folder, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    _run(capsys, "index", folder, "--out", index, *FAST)
    code, out, err = _run(
        capsys, "search", index, tmp_path / "missing.jpg", folder / "empty.jpg", folder / "chelsea.jpg"
    )
    assert code == 1
    assert f"query {tmp_path / 'missing.jpg'} does not exist" in err and "empty file" in err
    assert "chelsea.jpg" in out  # the good query is still answered
    code, _, err = _run(capsys, "search", index, folder / "chelsea.jpg", "--backbone", "resnet50")
    assert code == 1 and "backbone: index has 'vgg16', requested 'resnet50'" in err
    code, _, err = _run(capsys, "search", tmp_path / "nowhere", folder / "chelsea.jpg")
    assert code == 1 and "not a cbir index" in err
    manifest = json.loads((index / "index.json").read_text())
    manifest["format_version"] = 7
    (index / "index.json").write_text(json.dumps(manifest))
    code, _, err = _run(capsys, "search", index, folder / "chelsea.jpg")
    assert code == 1 and "index format 7 is newer" in err


def test_index_refuses_to_mix_backbones(folder, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    _run(capsys, "index", folder, "--out", index, *FAST)
    code, _, err = _run(capsys, "index", folder, "--out", index, *FAST[:-2], "--input-size", "64")
    assert code == 1 and "input_size: index has [32, 32], requested [64, 64]" in err
    code, _, err = _run(capsys, "index", tmp_path / "no-such-folder", "--out", tmp_path / "other", *FAST)
    assert code == 1 and "does not exist" in err


def test_bfloat16_index_records_its_precision_and_finds_the_same_photo(folder, tmp_path, capsys, isolated_paths):
    index = tmp_path / "index"
    assert _run(capsys, "index", folder, "--out", index, *FAST, "--precision", "bfloat16")[0] == 0
    assert json.loads((index / "index.json").read_text())["settings"]["precision"] == "bfloat16"
    code, _, err = _run(capsys, "index", folder, "--out", index, *FAST)  # float32 into a bfloat16 index
    assert code == 1 and "precision" in err
    code, out, _ = _run(capsys, "search", index, folder / "chelsea.jpg", "--json", "-k", "1")
    assert code == 0 and json.loads(out)["results"][0]["path"].endswith("chelsea.jpg")
    with pytest.raises(SystemExit) as usage:
        _run(capsys, "index", folder, "--out", tmp_path / "x", *FAST, "--precision", "float16")
    assert usage.value.code == 2 and "--precision" in capsys.readouterr().err


def test_default_offline_backbone_finds_the_same_photo(tmp_path, capsys, isolated_paths):
    root = tmp_path / "photos"
    for name in ("chelsea", "coffee", "astronaut", "rocket", "camera"):
        _photo(root / f"{name}.jpg", name, size=(128, 128))
    assert _run(capsys, "index", root, "--out", tmp_path / "index", "--input-size", "128")[0] == 0
    query = _photo(tmp_path / "query.png", "chelsea", size=(100, 100))  # a resized copy
    code, out, _ = _run(capsys, "search", tmp_path / "index", query, "--json", "-k", "5")
    results = json.loads(out)["results"]
    assert code == 0 and results[0]["path"].endswith("chelsea.jpg") and results[0]["score"] > 0.95
    assert results[0]["score"] - results[1]["score"] > 0.05


def _class_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for label, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200))):
        for i in range(4):
            noise = rng.integers(-40, 40, (48, 48, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            (root / f"class{label}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / f"class{label}" / f"{i}.png")
    return root


def test_compare_prints_every_backbone_metric_pair_as_json(tmp_path, capsys, isolated_paths):
    root = _class_folder(tmp_path / "tree")
    metrics = ["sqeuclidean", "euclidean", "cosine", "cityblock", "hamming"]
    code, out, err = _run(capsys, "compare", root, "--metric", *metrics, "--input-size", "64", "--n-triplets", "60",
                          "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["n_triplets"] == 60
    assert [(r["backbone"], r["metric"]) for r in report["results"]] == [("efficientnet_lite0", m) for m in metrics]
    by_metric = {r["metric"]: r for r in report["results"]}
    for row in report["results"]:
        assert 0.0 <= row["ci_low"] <= row["success"] <= row["ci_high"] <= 1.0 and 0.0 <= row["roc_auc"] <= 1.0
    # The identities: squared and plain L2 rank alike; cosine ranks like L2 on the (normalised) features.
    assert by_metric["sqeuclidean"]["success"] == by_metric["euclidean"]["success"] == by_metric["cosine"]["success"]
    assert by_metric["cosine"]["success"] > 0.9  # three well-separated colours


def test_compare_reads_csv_triplets_and_refuses_bad_ones(tmp_path, capsys, isolated_paths):
    root = _class_folder(tmp_path / "tree")
    (tmp_path / "t.csv").write_text("query,positive,negative\nclass0/0.png,class0/1.png,class2/0.png\n")
    code, out, err = _run(capsys, "compare", root, "--triplets", tmp_path / "t.csv", "--metric", "cosine",
                          "--input-size", "64", "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["n_triplets"] == 1
    (tmp_path / "bad.csv").write_text("class0/0.png,class0/1.png,nowhere.png\n")
    code, out, err = _run(capsys, "compare", root, "--triplets", tmp_path / "bad.csv", "--json")
    assert code == 1 and out == "" and "bad.csv:1: image" in err and "nowhere.png does not exist" in err
    code, out, err = _run(capsys, "compare", root, "--metric", "taxicab")
    assert code == 2 and "unknown distance 'taxicab'" in err
