"""PCA whitening of descriptors, learned on the database (Jégou & Chum, ECCV 2012; Radenović et al.)."""

from __future__ import annotations

import numpy as np

from cbir.retrieval.ranking import l2_normalize


class PCAWhitening:
    """PCA-whitening learned on a database (Jégou & Chum, ECCV 2012), via scikit-learn's PCA.

    ``fit`` L2-normalises, centres and learns the whitening; ``transform`` applies it and
    L2-normalises again, optionally keeping only the first `dim` components.

    Args:
        dim: output dimension (≤ min(n, d) of the fitting set), or None to keep all.
    """

    def __init__(self, dim: int | None = None, seed: int = 0):
        from sklearn.decomposition import PCA

        self.pca = PCA(n_components=dim, whiten=True, random_state=seed)

    def fit(self, features: np.ndarray) -> PCAWhitening:
        """Learn the PCA of the L2-normalised rows of float `features`, shape (n, d), n >= `dim`.

        Raises:
            ValueError: (scikit-learn's) `dim` larger than min(n, d).
        """
        self.pca.fit(l2_normalize(features))
        return self

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Whitened, L2-normalised float32 features, shape (n, dim)."""
        return l2_normalize(self.pca.transform(l2_normalize(features)))
