"""The notebook layer: the steps a notebook calls to tell its story, each returning a DataFrame, a dict
or a matplotlib figure.

One module per notebook, plus the steps they share:

- `common`: the database / query sets of the retrieval protocol, metric tables, nearest neighbours.
- `exploration` (00): split overview, image statistics, the split plan, the augmentation preview.
- `pretrained` (01): backbone × pooling features, their comparison, the similarity matrix.
- `hashing` (02): DLBHC heads per code length, their evaluation, search latency.
- `metric_learning` (03): held-out data, the embedding and its training, ROC and threshold.

Nothing is imported here, so that ``import cbir.experiments.common`` stays light.
"""
