"""The notebook layer: the steps a notebook calls to tell its story, each returning a DataFrame, a dict
or a matplotlib figure.

One module per notebook, plus the steps they share:

- `common`: the database / query sets of the retrieval protocol, metric tables, nearest neighbours.
- `exploration` (00): split overview, image statistics, the split plan, the augmentation preview.
- `pretrained` (01): backbone × pooling features, their comparison, the similarity matrix.
- `hashing` (02): DLBHC heads per code length, their evaluation, search latency.
- `metric_learning` (03): held-out data, the embedding and its training, ROC and threshold.
- `model_store`: trained models saved with the settings that made them (02 and 03 save, 04 loads).
- `representations`, `metric_comparison`, `metric_comparison_views` (04): features and binary codes per
  architecture, graded triplets and their ranks, success / ROC AUC / mAP / McNemar, regions, figures.

Nothing is imported here, so that ``import cbir.experiments.common`` stays light.
"""
