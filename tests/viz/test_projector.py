import numpy as np
import pytest
from PIL import Image

from cbir.viz.projector import export_projector, tsne_2d


def test_projector_files_format(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 3)).astype("float32")
    images = [rng.integers(0, 255, (8, 8), dtype=np.uint8) for _ in range(5)]
    export_projector(tmp_path, vectors, ["cat", "dog", "a\tb", "cat", "dog"], images=images, thumbnail=10)
    rows = (tmp_path / "vectors.tsv").read_text().splitlines()
    assert len(rows) == 5
    np.testing.assert_allclose(np.array([[float(x) for x in r.split("\t")] for r in rows]), vectors, rtol=1e-5)
    metadata = (tmp_path / "metadata.tsv").read_text().splitlines()
    assert metadata[0] == "label" and metadata[1:] == ["cat", "dog", "a b", "cat", "dog"]  # header + one row each
    sprite = Image.open(tmp_path / "sprite.png")
    assert sprite.size == (30, 30)  # ceil(sqrt(5)) = 3 thumbnails of 10 px per side
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
    assert 'image_path: "sprite.png"' in config and config.count("single_image_dim: 10") == 2
    with pytest.raises(ValueError, match="5 vectors but 4 labels"):
        export_projector(tmp_path, vectors, ["x"] * 4)


def test_tsne_separates_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.eye(4) * 10
    labels = np.repeat(np.arange(4), 25)
    points = tsne_2d(centres[labels] + rng.normal(size=(100, 4)), seed=0)
    assert points.shape == (100, 2) and points.dtype == np.float32
    spread = np.mean([points[labels == c].std(axis=0).mean() for c in range(4)])
    centres_2d = np.array([points[labels == c].mean(axis=0) for c in range(4)])
    gaps = np.linalg.norm(centres_2d[:, None] - centres_2d[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 2 * spread
