"""cbir: content-based image retrieval with deep learning.

Modules, one concern each: `config` (paths), `datasets`, `augment`, `plots`, `reports`
(papermill runner), and, as the project grows, `backbones`, `pooling`, `features`, `search`,
`metrics`, `hashing`, `losses`, `distances`, `cli`.
"""

__version__ = "0.1.0"
