"""Interactive teaching tools for JupyterLab (ipywidgets), above the experiments layer.

`SearchExplorer` lets a student pick a query (by index, class, at random or by upload), a cached
representation (backbone × pooling, DLBHC codes, the triplet embedding), a distance of the one registry
(`cbir.retrieval.distances`), k, and for binary codes Hamming or two-phase search, and shows the top-k
as an image grid with [0, 1] scores, relevant results framed, and the query's AP and P@k. It only ranks
cached features: nothing is extracted or trained on a change.

* `cbir.widgets.ranking`: the pure logic (`QueryRanker`, `SearchFeatures`, `SearchResults`), NumPy only;
* `cbir.widgets.explorer`: the widgets and the programmatic API (`set_query`, `set_metric`, ..., `results`).
"""

from cbir.widgets.explorer import SearchExplorer
from cbir.widgets.ranking import BINARY_METRICS, SEARCH_MODES, QueryRanker, SearchFeatures, SearchResults

__all__ = ["BINARY_METRICS", "SEARCH_MODES", "QueryRanker", "SearchExplorer", "SearchFeatures", "SearchResults"]
