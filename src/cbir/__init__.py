"""cbir: content-based image retrieval with deep learning.

Layers, each importing only from the ones above it:

- `config`: paths (``PROJECT_ROOT``, ``DATA_DIR``, ``FIGURES_DIR``, ``REPORTS_DIR``), overridable by env vars.
- `data`: image decoding and folder scanning, one module per source (Fashion-MNIST, Tiny ImageNet,
  CIFAR-10, digits, folders), splits and the retrieval protocol, ``tf.data`` pipelines, augmentation.
- `models`: backbones (+ EfficientNet-Lite and its checkpoint reader), pooling layers, DLBHC, embedding
  and Siamese models, losses, P×K sampling.
- `features`: batched, cached, resumable feature extraction.
- `retrieval` (NumPy / faiss / Numba, never TensorFlow): ranking, the distance registry, exact search,
  Hamming codes and search, saved indexes.
- `evaluation` (NumPy / scikit-learn): retrieval metrics (mAP, P@k, R@k, PR curves) and verification
  metrics (pairs, ROC, thresholds).
- `viz`: figures and embedding views; `experiments`: the steps the notebooks call; `reports`: the
  papermill runner; `cli`: the ``cbir`` command.
"""

__version__ = "0.1.0"
