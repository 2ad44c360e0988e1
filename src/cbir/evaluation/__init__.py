"""Evaluation, on NumPy, SciPy and scikit-learn (never TensorFlow): retrieval metrics (`retrieval`:
AP, mAP, mAP@k, P@k, R@k, PR curves, precision within a Hamming radius), verification metrics
(`verification`: pairs, ROC AUC, TPR at fixed FPR, thresholds, confusion matrix), and triplet metrics
(`triplets`: ranks of p+ and p−, success rate with bootstrap intervals, McNemar with Holm)."""
