"""Retrieval, in NumPy / faiss / Numba only (never TensorFlow): ranking and scores (`ranking`), the
distance registry (`distances`), exact search (`exact`), binary codes and Hamming search (`hamming`),
PCA whitening (`whitening`) and the saved indexes (`index`)."""
