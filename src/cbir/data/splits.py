"""Stratified splits and the one database / query / held-out protocol every notebook uses."""

from __future__ import annotations

import numpy as np

from cbir.data.images import ImageSet


def split(
    labels: np.ndarray, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Stratified train / validation / test split with a fixed seed.

    Each class is divided in the same proportions (up to rounding), via scikit-learn's
    `train_test_split(stratify=...)` applied twice.

    Args:
        labels: int array, shape (n,).
        val_fraction, test_fraction: fractions of n in [0, 1), summing to less than 1; 0 gives
            an empty split.
        seed: random seed; the same seed gives the same split.
    Returns:
        ``{"train", "val", "test"}`` → sorted int64 index arrays that partition ``range(n)``.
    Raises:
        ValueError: fractions out of range, or a class too small to appear in every split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    indices = np.arange(len(labels))
    result = {"val": np.empty(0, np.int64), "test": np.empty(0, np.int64)}
    rest = indices
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        if fraction == 0:
            continue
        share = fraction / (len(rest) / len(labels))
        try:
            rest, taken = train_test_split(rest, test_size=share, stratify=labels[rest], random_state=seed)
        except ValueError as error:
            raise ValueError(
                f"cannot take a stratified {name} split of {fraction:g} from {len(labels)} images in "
                f"{len(np.unique(labels))} classes (every class needs a member in every split): {error}"
            ) from error
        result[name] = np.sort(taken).astype(np.int64)
    result["train"] = np.sort(rest).astype(np.int64)
    return {name: result[name] for name in ("train", "val", "test")}


def held_out_name(splits: dict[str, ImageSet]) -> str | None:
    """The split every notebook holds out for its reported results, or None if there is none.

    The labelled ``"test"`` split, else the labelled ``"val"`` split (Tiny ImageNet's test images
    are unlabelled, so its validation split is the held-out set). A dataset with neither keeps a
    stratified share of its training data instead (`split` with ``test_fraction``).
    """
    return next((name for name in ("test", "val") if name in splits and (splits[name].labels >= 0).any()), None)


def retrieval_split(
    splits: dict[str, ImageSet], query_fraction: float = 0.2, seed: int = 0
) -> tuple[ImageSet, ImageSet]:
    """The retrieval protocol used by the notebooks: (database, queries).

    The database is the training split; the queries are the labelled test split, else the
    labelled validation split (Tiny ImageNet's test images are unlabelled). A dataset with a
    single split (digits, an image folder) is divided with `split`: a stratified
    `query_fraction` becomes the queries.
    """
    if "train" not in splits:
        everything = next(iter(splits.values()))
        parts = split(everything.labels, val_fraction=0.0, test_fraction=query_fraction, seed=seed)
        return everything.subset(parts["train"]), everything.subset(parts["test"])
    query_split = held_out_name(splits)
    if query_split is None:
        raise ValueError(f"no labelled test or validation split to query with; splits: {sorted(splits)}")
    return splits["train"], splits[query_split]
