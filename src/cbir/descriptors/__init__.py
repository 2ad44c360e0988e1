"""Classic image descriptors: the features content-based image retrieval used before CNNs.

NumPy, scikit-image, OpenCV and scikit-learn only (no TensorFlow: MOP-CNN takes its CNN as a callable).
Every descriptor has the same small interface: ``name``, ``metric`` (the registry distance its authors
rank with, `cbir.retrieval.distances`), ``fit(images)`` (vocabularies, GMMs and PCA learned from
database images; a no-op for the others), ``transform(images) -> float32 (n, dim)`` for uint8 images
(n, h, w) or (n, h, w, 3) of one size, and ``get_state()`` / ``from_state(params, arrays)`` to save a
fitted one without pickle.

==============  =====================================================  =========  ==================
name            descriptor                                             distance   module
==============  =====================================================  =========  ==================
``color_hist``  joint HSV histogram (intensity for grayscale)          chi2       `.global_features`
``hog``         histograms of oriented gradients                       euclidean  `.global_features`
``lbp``         uniform LBP histograms on a spatial grid               chi2       `.global_features`
``sift_bow``    dense (Root)SIFT, bag of visual words, tf-idf          cosine     `.local_features`
``sift_vlad``   dense (Root)SIFT, VLAD                                 cosine     `.local_features`
``sift_fisher`` dense (Root)SIFT, PCA, improved Fisher vector          cosine     `.local_features`
``mop_cnn``     multi-scale orderless pooling of CNN patch features    cosine     `.mop_cnn`
==============  =====================================================  =========  ==================
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
