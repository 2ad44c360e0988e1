"""Index types behind one interface (`VectorIndex`): build, add, search → (scores, indices), save / load.

======================  ==================================================  =========================
kind                    what it is                                          module
======================  ==================================================  =========================
``flat``                exact search, BLAS                                  `.exact_and_trees`
``kdtree``, ``balltree``  scikit-learn's exact space-partitioning trees      `.exact_and_trees`
``lsh``                 random-hyperplane LSH, multi-probe, exact re-rank   `.lsh`
``ivf_flat``            faiss inverted file                                 `.faiss_indexes`
``pq``, ``ivfpq``       faiss product quantisation, exact re-ranking        `.faiss_indexes`
``hnsw``                faiss HNSW graph                                    `.faiss_indexes`
``two_phase``           binary codes: Hamming shortlist + cosine re-rank    `.binary`
``binary_hnsw``         faiss HNSW over binary codes (Hamming)              `.binary`
``binary_ivf``          faiss IVF over binary codes (Hamming)               `.binary`
======================  ==================================================  =========================
"""

from cbir.retrieval.indexes import binary, exact_and_trees, faiss_indexes, lsh  # noqa: F401  (registers the kinds)
from cbir.retrieval.indexes.base import REGISTRY as INDEX_TYPES
from cbir.retrieval.indexes.base import VectorIndex, load_index, make_index

__all__ = ["INDEX_TYPES", "VectorIndex", "load_index", "make_index"]
