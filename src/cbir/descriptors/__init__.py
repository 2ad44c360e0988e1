"""Classic image descriptors: the features content-based image retrieval used before CNNs.

NumPy, scikit-image, OpenCV and scikit-learn only (no TensorFlow: MOP-CNN takes its CNN as a callable).
Every descriptor has the same small interface (`cbir.descriptors.common.Descriptor`):

* ``name`` (the key below) and ``metric`` (the registry distance its authors rank with,
  `cbir.retrieval.distances`);
* ``fit(images, progress=False) -> self``: vocabularies, GMMs and PCA learned from the images given
  (pass database images only); every descriptor records the image shape, and afterwards describes only
  images of that shape, so queries are described exactly as the database was;
* ``transform(images, progress=False) -> float32 (n, dim)`` for uint8 images (n, h, w) or (n, h, w, 3)
  of one size (anything else is a `ValueError` naming the dtype or shape); progress bars go to stderr;
* ``dim``: the row length (for ``color_hist``, ``hog`` and ``mop_cnn`` known only after `fit`);
* ``get_state() -> (params, arrays)`` (JSON-able, NumPy arrays) and ``from_state(params, arrays)``: a
  fitted descriptor saved without pickle and reloaded to describe queries identically.

===============  ===================================================  =========  ==================  ==============
name             descriptor                                           distance   module              dim 28 / 64 px
===============  ===================================================  =========  ==================  ==============
``color_hist``   joint HSV histogram (intensity for grayscale)        chi2       `.global_features`  128 (32)
``hog``          histograms of oriented gradients                     euclidean  `.global_features`  144 / 1764
``lbp``          uniform LBP histograms on a spatial grid             chi2       `.global_features`  944
``sift_bow``     dense (Root)SIFT, bag of visual words, tf-idf        cosine     `.local_features`   256
``sift_vlad``    dense (Root)SIFT, VLAD                               cosine     `.local_features`   8192
``sift_fisher``  dense (Root)SIFT, PCA, improved Fisher vector        cosine     `.local_features`   2064
``mop_cnn``      multi-scale orderless pooling of CNN patch features  cosine     `.mop_cnn`          d + 4096
===============  ===================================================  =========  ==================  ==============

Dimensions with the default parameters, at 28 × 28 and 64 × 64 (one number: both); ``color_hist`` is
32-D on grayscale images; d is the width of MOP-CNN's CNN.
"""

from __future__ import annotations

from cbir.descriptors.global_features import HOG, LBP, ColorHistogram
from cbir.descriptors.local_features import SiftBoW, SiftFisher, SiftVLAD, dense_sift
from cbir.descriptors.mop_cnn import MOPCNN

DESCRIPTORS = {cls.name: cls for cls in (ColorHistogram, HOG, LBP, SiftBoW, SiftVLAD, SiftFisher, MOPCNN)}
"""name → descriptor class."""

__all__ = ["DESCRIPTORS", "HOG", "LBP", "MOPCNN", "ColorHistogram", "SiftBoW", "SiftFisher", "SiftVLAD",
           "dense_sift", "make_descriptor"]  # fmt: skip


def make_descriptor(name: str, **params):
    """An unfitted descriptor by name, with its parameters.

    Raises:
        ValueError: an unknown name (the message lists them) or parameter.
    """
    if name not in DESCRIPTORS:
        raise ValueError(f"unknown descriptor {name!r}; expected one of {sorted(DESCRIPTORS)}")
    try:
        return DESCRIPTORS[name](**params)
    except TypeError as error:
        raise ValueError(f"{name}: {error}") from error
