"""Evaluation, in NumPy / scikit-learn: retrieval metrics (`retrieval`: AP, mAP, mAP@k, P@k, R@k, PR
curves, precision within a Hamming radius) and verification metrics (`verification`: pairs, ROC AUC,
TPR at fixed FPR, thresholds, confusion matrix)."""
