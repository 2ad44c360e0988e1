"""Small data in published layouts, generated for tests and smoke runs (not a data source)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_tiny_imagenet_fixture(
    root: str | Path,
    n_classes: int = 3,
    train_per_class: int = 4,
    val_per_class: int = 2,
    n_test: int = 3,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a miniature Tiny ImageNet 200 in the published layout, for tests and smoke runs.

    The layout is exactly that of the real archive (see `load_tiny_imagenet`), with real
    WordNet ids, a ``words.txt`` holding one unused entry, bounding-box files, and one
    grayscale JPEG per class in train and val (the real dataset has some). Images are
    class-coloured noise, so that a model can learn the classes.

    Returns:
        `root`, ready for ``load_tiny_imagenet(root)``.
    Raises:
        ValueError: more classes than the 8 WordNet ids available here.
    """
    wnids = ("n01443537", "n01629819", "n02123045", "n02099601", "n03444034", "n04254680", "n07747607", "n09246464")
    words = (
        "goldfish, Carassius auratus",
        "European fire salamander",
        "tabby, tabby cat",
        "golden retriever",
        "go-kart",
        "soccer ball",
        "orange",
        "cliff, drop, drop-off",
    )
    if not 1 <= n_classes <= len(wnids):
        raise ValueError(f"n_classes must be in [1, {len(wnids)}], got {n_classes}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(30, 226, (n_classes, 3))
    (root / "wnids.txt").write_text("".join(f"{w}\n" for w in wnids[:n_classes]))
    (root / "words.txt").write_text(
        "".join(f"{w}\t{n}\n" for w, n in zip(wnids, words)) + "n09999999\tan unused entry\n"
    )

    def jpeg(path: Path, class_index: int, grayscale: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.clip(palette[class_index] + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        (image.convert("L") if grayscale else image).save(path, "JPEG", quality=90)

    annotations = []
    for c, wnid in enumerate(wnids[:n_classes]):
        boxes = []
        for i in range(train_per_class):
            jpeg(root / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", c, grayscale=(i == 0))
            boxes.append(f"{wnid}_{i}.JPEG\t0\t0\t{size - 1}\t{size - 1}\n")
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
        for i in range(val_per_class):
            name = f"val_{c * val_per_class + i}.JPEG"
            jpeg(root / "val" / "images" / name, c, grayscale=(i == 0))
            annotations.append(f"{name}\t{wnid}\t0\t0\t{size - 1}\t{size - 1}\n")
    (root / "val" / "val_annotations.txt").write_text("".join(annotations))
    for i in range(n_test):
        jpeg(root / "test" / "images" / f"test_{i}.JPEG", i % n_classes, grayscale=False)
    return root
