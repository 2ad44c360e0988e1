"""cbir: content-based image retrieval with deep learning.

One concern per module:

- `config`: paths (``PROJECT_ROOT``, ``DATA_DIR``, ``FIGURES_DIR``, ``REPORTS_DIR``), overridable by env vars.
- `datasets`: Fashion-MNIST, Tiny ImageNet, CIFAR-10, image folders, digits; splits; ``tf.data`` pipelines.
- `augment`: the Siamese experiment's Keras augmentation stack.
- `backbones` (+ `torch_checkpoint`): pretrained topless CNNs, including the offline EfficientNet-Lite0.
- `pooling`: MAC, SPoC, GeM, R-MAC, CroW; L2 and PCA-whitening.
- `features`: batched, cached, resumable feature extraction.
- `search`: exact cosine top-k, the saved feature index, the two-phase binary-code index.
- `metrics`: mAP, precision@k, recall@k, PR curves (tie-aware); pairs, ROC, thresholds.
- `hashing`: DLBHC models, packed codes, Hamming distances.
- `distances`, `losses`, `sampling`, `siamese`, `embeddings`: metric learning and its views.
- `plots`, `reports` (papermill runner), `cli` (the ``cbir`` command).
"""

__version__ = "0.1.0"
