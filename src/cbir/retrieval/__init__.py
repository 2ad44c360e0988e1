"""Retrieval, on NumPy, SciPy, scikit-learn, faiss and Numba — never TensorFlow: ranking and scores (`ranking`), the
distance registry (`distances`), exact search (`exact`), binary codes and Hamming search (`hamming`),
PCA whitening (`whitening`), and saved indexes: the image-folder `feature_index`, the two-phase
`hash_index`, and what they share on disk (`storage`: errors, lock, checksums)."""
