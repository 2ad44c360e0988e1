"""Notebook 00, dataset exploration: what the splits hold, image statistics, the split plan, augmentation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import keras
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from PIL import Image

from cbir.data.augment import build_augmentation
from cbir.data.images import ImageSet
from cbir.data.splits import split
from cbir.viz.plots import plot_augmentation_preview


def split_overview(splits: Mapping[str, ImageSet]) -> pd.DataFrame:
    """One row per split: ``split``, ``images``, ``labelled`` (label ≥ 0), ``classes`` (ints) and
    ``storage`` ("files", or the array's per-image shape and dtype, e.g. ``"array (28, 28) uint8"``)."""
    return pd.DataFrame(
        [
            {
                "split": name,
                "images": len(image_set),
                "labelled": int((image_set.labels >= 0).sum()),
                "classes": len(image_set.class_names),
                "storage": "files"
                if image_set.is_files
                else f"array {image_set.images.shape[1:]} {image_set.images.dtype}",
            }
            for name, image_set in splits.items()
        ]
    )


def class_counts(splits: Mapping[str, ImageSet]) -> pd.DataFrame:
    """Labelled images per class (int64 rows, named by the first split's class names) in each split (columns)."""
    class_names = next(iter(splits.values())).class_names
    return pd.DataFrame({name: image_set.class_counts() for name, image_set in splits.items()}, index=class_names)


def image_statistics(image_set: ImageSet, max_images: int | None = 2000, seed: int = 0) -> pd.DataFrame:
    """Per-image size and channel statistics, on a random sample of at most `max_images`.

    Returns:
        pandas DataFrame, one row per sampled image, columns ``height``, ``width``,
        ``channels`` (as stored: 1 for grayscale arrays, else that of the file's mode), ``mean``
        and ``std`` (over all pixels, 0–255 scale), and ``mean_r``, ``mean_g``, ``mean_b``.
    """
    rng = np.random.default_rng(seed)
    n = len(image_set)
    chosen = np.sort(rng.choice(n, size=min(n, max_images or n), replace=False))
    rows = []
    for i in chosen:
        if image_set.images is not None:
            stored = image_set.images[i]
            channels = 1 if stored.ndim == 2 else stored.shape[-1]
        else:
            with Image.open(image_set.paths[i]) as handle:
                channels = len(handle.getbands())
        rgb = image_set.load_images([i])[0].astype(np.float64)
        rows.append(
            {
                "height": rgb.shape[0],
                "width": rgb.shape[1],
                "channels": channels,
                "mean": rgb.mean(),
                "std": rgb.std(),
                "mean_r": rgb[..., 0].mean(),
                "mean_g": rgb[..., 1].mean(),
                "mean_b": rgb[..., 2].mean(),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class SplitPlan:
    """How the later notebooks divide a dataset.

    Attributes:
        parts: ``{"train", "val", "test"}`` → sorted int64 indices into the reference split
            (its labelled images only); ``test`` is empty when a held-out split exists.
        held_out: the held-out split's name (`cbir.data.splits.held_out_name`), or None.
        sizes: display name → number of images, in the order train, val, test.
    """

    parts: dict[str, np.ndarray]
    held_out: str | None
    sizes: dict[str, int]

    @property
    def n_test(self) -> int:
        """Images the reported results are measured on: the last entry of `sizes`."""
        return list(self.sizes.values())[-1]


def plan_splits(
    splits: Mapping[str, ImageSet],
    reference_split: str,
    held_out: str | None,
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
) -> SplitPlan:
    """The stratified, seeded split of `reference_split` (`cbir.data.splits.split`) the notebooks use.

    Args:
        held_out: the held-out split, as `cbir.data.splits.held_out_name` names it (the labelled
            test split, else the labelled validation split); None: a stratified `test_fraction`
            of the reference split is held out instead. Unlabelled images (label -1) are left out.
    Raises:
        ValueError: `held_out` is not a split, fractions out of range, or a class too small for
            every part (from `split`).
    """
    if held_out is not None and held_out not in splits:
        raise ValueError(f"held-out split {held_out!r} not among the splits {sorted(splits)}")
    reference = splits[reference_split]
    labelled = np.flatnonzero(reference.labels >= 0)
    parts = split(
        reference.labels[labelled],
        val_fraction=val_fraction,
        test_fraction=0.0 if held_out else test_fraction,
        seed=seed,
    )
    parts = {name: labelled[indices] for name, indices in parts.items()}
    sizes = {f"{reference_split} → train": len(parts["train"]), f"{reference_split} → val": len(parts["val"])}
    if held_out:
        sizes[f"{held_out} (official, held out)"] = int((splits[held_out].labels >= 0).sum())
    else:
        sizes[f"{reference_split} → test"] = len(parts["test"])
    return SplitPlan(parts=parts, held_out=held_out, sizes=sizes)


def class_share_range(image_set: ImageSet, parts: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The smallest and largest share of any class in each non-empty part: equal across parts
    (up to rounding) when the split is stratified.

    Args:
        parts: part name → int indices into `image_set` (labelled images).
    Returns:
        DataFrame with rows ``min`` and ``max`` and one column per part, shares in [0, 1] rounded to 4 digits.
    """
    counts = pd.DataFrame(
        {
            name: np.bincount(image_set.labels[indices], minlength=len(image_set.class_names))
            for name, indices in parts.items()
            if len(indices)
        },
        index=image_set.class_names,
    )
    return (counts / counts.sum(axis=0).to_numpy()[None, :]).describe().loc[["min", "max"]].round(4)


def augmentation_preview(image_set: ImageSet, n_images: int, n_variants: int, seed: int = 0) -> plt.Figure:
    """`n_images` random images of `image_set`, each with `n_variants` outputs of the training
    augmentation (`cbir.data.augment.build_augmentation`, seeded), drawn by `plot_augmentation_preview`.

    Returns:
        a Figure of min(n_images, len(image_set)) rows and 1 + n_variants columns (original first).
    """
    augmentation = build_augmentation(seed=seed)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(image_set), size=min(n_images, len(image_set)), replace=False)
    originals = image_set.load_images(chosen)
    variants = [
        [
            keras.ops.convert_to_numpy(augmentation(image[None].astype("float32"), training=True))[0]
            for _ in range(n_variants)
        ]
        for image in originals
    ]
    return plot_augmentation_preview(originals, variants)


def summary_metrics(splits: Mapping[str, ImageSet], plan: SplitPlan, statistics: pd.DataFrame) -> dict[str, float]:
    """The numbers notebook 00 records: ``n_images`` (all splits), ``n_classes``, ``n_train``,
    ``n_val``, ``n_test`` (`SplitPlan.n_test`) and ``mean_intensity`` (mean of the per-image
    means of `image_statistics`, 0–255)."""
    return {
        "n_images": sum(len(image_set) for image_set in splits.values()),
        "n_classes": len(next(iter(splits.values())).class_names),
        "n_train": len(plan.parts["train"]),
        "n_val": len(plan.parts["val"]),
        "n_test": plan.n_test,
        "mean_intensity": float(statistics["mean"].mean()),
    }
