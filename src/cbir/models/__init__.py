"""Models (Keras 3): backbones and EfficientNet-Lite (+ its PyTorch checkpoint reader), pooling layers,
DLBHC hashing models, embedding and Siamese models, metric-learning losses and their differentiable
distances, P×K batch sampling."""
