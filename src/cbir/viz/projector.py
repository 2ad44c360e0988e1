"""Views of an embedding: files for the TensorFlow Embedding Projector, and a 2-D t-SNE map."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cbir._io import atomic_path, atomic_write_text

__all__ = ["export_projector", "tsne_2d"]


def export_projector(
    directory: str | Path,
    vectors: np.ndarray,
    labels: Sequence[str],
    images: Sequence[np.ndarray] | None = None,
    thumbnail: int = 28,
    extra_columns: dict[str, Sequence] | None = None,
) -> Path:
    """Write an Embedding Projector bundle (https://projector.tensorflow.org, "Load").

    Files: ``vectors.tsv`` (one tab-separated row per point), ``metadata.tsv`` (a header row,
    then one row per point: label and any extra columns), ``sprite.png`` (thumbnails in a
    square grid, row-major, when `images` is given) and ``projector_config.pbtxt`` tying them
    together. Written atomically, file by file.

    Args:
        vectors: float (n, dim).
        labels: n class names.
        images: optional n uint8 images (h, w) or (h, w, 3), resized to `thumbnail` pixels.
    Raises:
        ValueError: lengths disagree, or the sprite would exceed the projector's 8192-px limit.
    """
    directory = Path(directory)
    vectors = np.asarray(vectors, np.float32)
    n = len(vectors)
    if len(labels) != n or (images is not None and len(images) != n):
        raise ValueError(
            f"{n} vectors but {len(labels)} labels" + (f" and {len(images)} images" if images is not None else "")
        )
    columns = {"label": list(labels), **{k: list(v) for k, v in (extra_columns or {}).items()}}
    clean = lambda value: str(value).replace("\t", " ").replace("\n", " ")  # noqa: E731
    atomic_write_text(directory / "vectors.tsv", "".join("\t".join(f"{x:.6g}" for x in row) + "\n" for row in vectors))
    header = "\t".join(columns) + "\n"
    atomic_write_text(
        directory / "metadata.tsv",
        header + "".join("\t".join(clean(columns[c][i]) for c in columns) + "\n" for i in range(n)),
    )
    config = ["embeddings {", '  tensor_path: "vectors.tsv"', '  metadata_path: "metadata.tsv"']
    if images is not None:
        side = math.ceil(math.sqrt(n))
        if side * thumbnail > 8192:
            raise ValueError(f"sprite of {side}×{side} thumbnails of {thumbnail}px exceeds 8192px; use fewer points")
        sprite = Image.new("RGB", (side * thumbnail, side * thumbnail), "white")
        for i, image in enumerate(images):
            tile = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB").resize((thumbnail, thumbnail))
            sprite.paste(tile, ((i % side) * thumbnail, (i // side) * thumbnail))
        with atomic_path(directory / "sprite.png", suffix=".png") as temporary:
            sprite.save(temporary, format="PNG")
        config += [
            "  sprite {",
            '    image_path: "sprite.png"',
            f"    single_image_dim: {thumbnail}",
            f"    single_image_dim: {thumbnail}",
            "  }",
        ]
    config.append("}")
    atomic_write_text(directory / "projector_config.pbtxt", "\n".join(config) + "\n")
    return directory


def tsne_2d(vectors: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE (van der Maaten & Hinton, 2008) of (n, dim) vectors with scikit-learn, cosine metric.

    Returns:
        float32 (n, 2).
    """
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(2.0, (len(vectors) - 1) / 3))
    return (
        TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
        .fit_transform(np.asarray(vectors, np.float32))
        .astype(np.float32)
    )
