"""Data: image decoding and folder scanning (`images`, `folder`), one module per source
(`fashion_mnist`, `tiny_imagenet`, `cifar10`, `digits`; `sources.load` by name), the splits and the
held-out rule every notebook uses (`splits`), ``tf.data`` pipelines (`pipeline`) and augmentation."""
