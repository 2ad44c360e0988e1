"""cbir: content-based image retrieval with deep learning.

Layers; each imports only from the ones listed before it (`retrieval` and `evaluation` are the NumPy
base that the TensorFlow layers use, e.g. the losses use the distance registry):

- `config`: paths (``PROJECT_ROOT``, ``DATA_DIR``, ``FIGURES_DIR``, ``REPORTS_DIR``), overridable by env vars.
- `retrieval` (NumPy / SciPy / faiss / Numba, never TensorFlow): ranking, the distance registry, exact
  search, Hamming codes and search, saved indexes.
- `evaluation` (NumPy / SciPy / scikit-learn): retrieval metrics (mAP, P@k, R@k, PR curves), verification
  metrics (pairs, ROC, thresholds) and triplet metrics.
- `data`: image decoding and folder scanning, one module per source (Fashion-MNIST, Tiny ImageNet,
  CIFAR-10, digits, folders), splits and the retrieval protocol, ``tf.data`` pipelines, augmentation.
- `models`: backbones (+ EfficientNet-Lite and its checkpoint reader), pooling layers, DLBHC, embedding
  and Siamese models, losses, P×K sampling.
- `features`: batched, cached, resumable feature extraction.
- `viz`: figures and embedding views; `indexing` and `comparison`: the folder index and the
  metric comparison behind the command line; `experiments`: the steps the notebooks call; `reports`:
  the papermill runner; `cli`: the ``cbir`` command.
"""

__version__ = "0.1.0"
