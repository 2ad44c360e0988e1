"""Ray Data extraction (local Ray, 2 workers) against the single-process extractor: the same features to float
tolerance and the same skipped files with the same reasons. One Ray session for tests/scale (`ray_local`)."""

import os
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

pytest.importorskip("ray.data", reason="the [scale] extra (ray[data]) is not installed")

from cbir.indexing import embed_files, extractor_settings, make_extractor  # noqa: E402
from cbir.scale.milvus_indexing import local_embed_chunks  # noqa: E402
from cbir.scale.ray_extract import ray_embed_chunks  # noqa: E402

SETTINGS = extractor_settings("vgg16", "block5_conv3", None, "gem", 3.0, 32)  # random weights: offline


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for number, name in enumerate(("chelsea", "coffee", "astronaut", "rocket", "camera", "cat")):
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        image.resize((40 + 24 * number, 96 - 8 * number)).save(root / f"{name}.{'png' if number % 2 else 'jpg'}")
    (root / "garbage.png").write_bytes(os.urandom(300))
    good = (root / "chelsea.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "empty.jpg").write_bytes(b"")
    return root


def _collect(chunks):
    readable, skipped, features = [], [], []
    for chunk_readable, chunk_skipped, chunk_features in chunks:
        assert len(chunk_features) == len(chunk_readable)
        readable += chunk_readable
        skipped += chunk_skipped
        features += list(chunk_features)
    return readable, skipped, features


@pytest.mark.slow
def test_ray_with_two_workers_gives_the_single_process_features_and_skips(ray_local, folder):
    paths = sorted(folder.iterdir())
    readable, skipped, features = _collect(ray_embed_chunks(SETTINGS, paths, workers=2, batch_size=2,
                                                            chunk_size=3, progress=False))  # fmt: skip
    local_readable, local_skipped, local_features = _collect(local_embed_chunks(SETTINGS, paths, progress=False))
    assert sorted(readable) == local_readable and len(readable) == 6
    assert sorted(skipped, key=lambda s: s.path) == sorted(local_skipped, key=lambda s: s.path)  # paths and reasons
    assert {Path(s.path).name for s in skipped} == {"garbage.png", "truncated.jpg", "empty.jpg"}
    by_path = dict(zip(readable, features))
    ray_features = np.stack([by_path[p] for p in local_readable])
    np.testing.assert_allclose(ray_features, np.stack(local_features), atol=2e-5)
    # and the single-process reference is itself the plain extractor on the readable files
    reference = embed_files(make_extractor(SETTINGS), local_readable, progress=False)
    np.testing.assert_allclose(np.stack(local_features), reference, atol=1e-6)
    assert ray_local.is_initialized()


@pytest.mark.slow
def test_every_path_is_in_exactly_one_chunk(ray_local, folder):
    paths = sorted(folder.glob("*.jpg"))
    chunks = list(ray_embed_chunks(SETTINGS, paths, workers=1, batch_size=1, chunk_size=1, progress=False))
    seen = [p for readable, skipped, _ in chunks for p in [*readable, *(Path(s.path) for s in skipped)]]
    assert sorted(seen) == paths and [len(r) + len(s) for r, s, _ in chunks] == [1] * len(paths)
    assert list(ray_embed_chunks(SETTINGS, [], progress=False)) == []
    with pytest.raises(ValueError, match="workers"):
        next(ray_embed_chunks(SETTINGS, paths, workers=0))
