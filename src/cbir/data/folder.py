"""Any image folder: one subfolder per class, or a flat folder of unlabelled images."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from cbir.data.images import ImageSet, SkippedFile, UnreadableImageError, list_image_files, readable_images


def scan_image_folder(
    root: str | Path, check_images: bool = True
) -> tuple[list[Path], list[int], tuple[str, ...], list[SkippedFile]]:
    """Walk a class-per-subfolder tree: ``root/<class>/**/<image>``.

    Each immediate subfolder of `root` is a class (sorted by name); images in nested folders
    below it belong to it. With `check_images`, every image is decoded once and unreadable or
    truncated files are set aside with the reason.

    Returns:
        (paths, labels, class_names, skipped).
    Files directly under `root` and broken symlinks to class folders are reported in `skipped`.

    Raises:
        FileNotFoundError: `root` is missing or has no class subfolders.
        PermissionError: `root` cannot be listed.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    try:
        children = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    except OSError as error:
        raise PermissionError(f"cannot list image folder {root}: {error.strerror or error}") from error
    class_dirs = [p for p in children if p.is_dir()]
    if not class_dirs:
        raise FileNotFoundError(f"image folder {root} has no class subfolders (expected root/<class>/<image>)")
    paths, labels, skipped = [], [], []
    for child in children:
        if child.is_symlink() and not child.exists():
            skipped.append(SkippedFile(str(child), f"broken symlink (target {child.readlink()} does not exist)"))
        elif not child.is_dir():
            skipped.append(SkippedFile(str(child), "not in a class subfolder (expected root/<class>/<image>)"))
    for label, class_dir in enumerate(class_dirs):
        images, non_images = list_image_files(class_dir)
        skipped += non_images
        if check_images:
            images, unreadable = readable_images(images)
            skipped += unreadable
        paths += images
        labels += [label] * len(images)
    return paths, labels, tuple(p.name for p in class_dirs), skipped


def load_image_folder(
    root: str | Path,
    on_error: Literal["skip", "raise"] = "skip",
    check_images: bool = True,
) -> dict[str, ImageSet]:
    """Load any class-per-subfolder image tree (see `scan_image_folder`).

    Non-image files are skipped with one warning listing them. Unreadable or truncated images
    are either skipped with a warning naming each path (``on_error="skip"``) or raise
    (``on_error="raise"``). Pixels are decoded later by `read_image` / `image_dataset`, which
    apply EXIF orientation and convert grayscale / RGBA / palette / 16-bit to RGB uint8.

    Returns:
        ``{"all": ImageSet}`` (file-based); ``skipped`` lists what was left out and why.
    Raises:
        FileNotFoundError: `root` is missing or has no class subfolders.
        UnreadableImageError: an image cannot be decoded and ``on_error="raise"``.
        ValueError: `on_error` is neither "skip" nor "raise".
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    paths, labels, class_names, skipped = scan_image_folder(root, check_images=check_images)
    unreadable = [s for s in skipped if not s.reason.startswith("not an image")]
    if unreadable and on_error == "raise":
        raise UnreadableImageError(unreadable[0].path, unreadable[0].reason)
    if skipped:
        listing = "\n".join(f"  {s.path}: {s.reason}" for s in skipped[:50])
        more = f"\n  ... and {len(skipped) - 50} more" if len(skipped) > 50 else ""
        warnings.warn(f"{root}: skipped {len(skipped)} file(s):\n{listing}{more}", stacklevel=2)
    image_set = ImageSet(
        labels=np.asarray(labels, dtype=np.int64),
        class_names=class_names,
        paths=tuple(str(p) for p in paths),
        name=f"folder/{Path(root).name}",
        skipped=tuple(skipped),
    )
    return {"all": image_set}
