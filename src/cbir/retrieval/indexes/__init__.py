"""Index types behind one interface (`VectorIndex`): build, add, search → (scores, indices), save / load.

===============  ===============================================  ================================  ==================
kind             what it is                                       construction (defaults)           search (defaults)
===============  ===============================================  ================================  ==================
``flat``         exact, BLAS (`cbir.retrieval.exact`)             —                                 —
``kdtree``       scikit-learn KD-tree, exact                      leaf_size=40                      —
``balltree``     scikit-learn ball tree, exact                    leaf_size=40                      —
``lsh``          random-hyperplane LSH + exact re-ranking         tables=8, bits=12, seed=0         probes=0 (0 or 1)
``ivf_flat``     faiss IndexIVFFlat                               nlist=256                         nprobe=8
``pq``           faiss IndexPQ + exact re-ranking of refine·k     m=16, nbits=8                     refine=10
``ivfpq``        faiss IndexIVFPQ + exact re-ranking              nlist=256, m=16, nbits=8          nprobe=8, refine=10
``hnsw``         faiss IndexHNSWFlat                              M=32, ef_construction=200         ef_search=64
``two_phase``    Hamming shortlist + cosine re-ranking (DLBHC)    encoder="itq", bits=64, seed=0    shortlist=1000
``binary_hnsw``  faiss IndexBinaryHNSW over codes (Hamming)       encoder, bits, seed, M=32,        ef_search=64,
                                                                  keep_vectors=False                refine=0
``binary_ivf``   faiss IndexBinaryIVF over codes (Hamming)        encoder, bits, seed, nlist=256,   nprobe=8, refine=0
                                                                  keep_vectors=False
===============  ===============================================  ================================  ==================

``refine=0`` ranks by the compressed (PQ) or Hamming distances alone; ``shortlist=0`` by Hamming alone.
Every kind takes ``dim`` and ``metric`` (``"cosine"`` or ``"euclidean"``; ``two_phase`` cosine only).
Modules: `.base` (the interface, the file format, `make_index`, `load_index`), `.exact_and_trees`,
`.lsh`, `.faiss_indexes`, `.binary`. Threads are the caller's: nothing here sets faiss's, BLAS's or
Numba's thread count.
"""

from cbir.retrieval.indexes import binary, exact_and_trees, faiss_indexes, lsh  # noqa: F401  (registers the kinds)
from cbir.retrieval.indexes.base import INDEX_FILE_FORMAT, VectorIndex, load_index, make_index
from cbir.retrieval.indexes.base import REGISTRY as INDEX_TYPES

__all__ = ["INDEX_FILE_FORMAT", "INDEX_TYPES", "VectorIndex", "load_index", "make_index"]
