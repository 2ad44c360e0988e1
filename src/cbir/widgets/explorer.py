"""`SearchExplorer`: the widgets around `QueryRanker`, and the programmatic API the notebook and tests use."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import ipywidgets as widgets
import numpy as np
import pandas as pd

from cbir.data.images import ImageSet
from cbir.retrieval.distances import resolve_name
from cbir.viz.search_grid import search_grid_html, thumbnail_uri
from cbir.widgets.ranking import (
    BINARY_METRICS,
    METRIC_CHOICES,
    SEARCH_MODES,
    QueryRanker,
    SearchFeatures,
    SearchResults,
    decode_upload,
    query_metrics,
)

Encoder = Callable[[np.ndarray], np.ndarray]
"""Images float32 (batch, h, w, 3) in [0, 255] → features (batch, dim); a `cbir.features.FeatureExtractor`
of a single pooling is one."""


class SearchExplorer:
    """Pick a query, a representation, a metric, k and a search mode; see the top-k with scores and AP.

    Display it in a notebook (it renders as its widget box, `widget`), or drive it from code: every
    ``set_*`` method checks its argument, updates the widgets and returns the new `results`. A change
    ranks the cached features again and nothing else (no feature extraction, no training).

    Args:
        queries, database: the image sets the features were computed from, in the same order. Pass
            the same object twice for leave-one-out search of a collection (the query is left out).
        representations: name → cached features: a ``(query, database)`` pair of float arrays (codes:
            each dimension > its database median) or a `cbir.experiments.representations.Representation`.
        rerank: code representation → representation whose features re-rank its two-phase shortlist,
            e.g. ``{"dlbhc48": "efficientnet_lite0 gem"}`` (DLBHC re-ranks with the backbone's features).
        encoders: representation → `Encoder`, for uploaded query images (only those representations).
        representation, metric, mode, k, shortlist, normalize: the starting settings (see `set_*`).
        query: the starting query index; seed: of the random query button.
        thumbnail_side: pixels of each thumbnail's longer side; columns: results per grid row.
    Raises:
        ValueError: features whose row counts differ from the image sets', or a bad starting setting.
    """

    def __init__(
        self,
        queries: ImageSet,
        database: ImageSet,
        representations: Mapping[str, object],
        *,
        rerank: Mapping[str, str] | None = None,
        encoders: Mapping[str, Encoder] | None = None,
        representation: str | None = None,
        metric: str = "cosine",
        mode: str = "exact",
        k: int = 10,
        shortlist: int = 100,
        normalize: bool = True,
        query: int = 0,
        seed: int = 0,
        thumbnail_side: int = 64,
        columns: int = 10,
    ):
        features = {name: SearchFeatures.from_cached(name, value) for name, value in representations.items()}
        for name, feature in features.items():
            if (len(feature.query), len(feature.database)) != (len(queries), len(database)):
                raise ValueError(
                    f"{name}: {len(feature.query)} query and {len(feature.database)} database rows, but the image "
                    f"sets hold {len(queries)} and {len(database)} images"
                )
        self.queries, self.database = queries, database
        self.leave_one_out = queries is database
        self.ranker = QueryRanker(features, rerank)
        self.encoders = dict(encoders or {})
        self.thumbnail_side, self.columns = thumbnail_side, columns
        self._rng = np.random.default_rng(seed)
        self._thumbnails: dict[tuple[str, int], str] = {}
        self._upload: np.ndarray | None = None
        self._encoded: dict[str, np.ndarray] = {}
        self._settings = {"representation": representation or next(iter(features)), "metric": "cosine"}
        self._settings.update(mode="exact", k=10, shortlist=100, normalize=normalize)
        self._query_index = 0
        self._syncing = False
        self._results: SearchResults | None = None
        self._build_widgets()
        self._syncing = True  # settle the starting settings without a search per setting
        self.set_representation(self._settings["representation"])
        self.set_metric(metric)
        self.set_mode(mode, shortlist)
        self.set_k(k)
        self._syncing = False
        self.set_query(query)

    # ----- the programmatic API -----------------------------------------------------------------
    @property
    def results(self) -> SearchResults:
        """The current query's results (`SearchResults`; ``.frame()`` gives a table)."""
        return self._results

    def set_query(
        self, index: int | None = None, *, label: int | str | None = None, random: bool = False, image=None
    ) -> SearchResults:
        """Choose the query: a row of the query set; the next query of a class (index or name) after
        the current one; a random one; or an image (uint8 array (h, w, 3) or the bytes of a file),
        encoded with the current representation's encoder.

        Raises:
            ValueError: not exactly one choice, an index out of range, an unknown class or one
                without queries, an undecodable image, or no encoder for the representation.
        """
        if sum(x is not None and x is not False for x in (index, label, random or None, image)) != 1:
            raise ValueError("set_query takes exactly one of index, label=, random=True, image=")
        if image is not None:
            picture = decode_upload(image) if isinstance(image, bytes | bytearray | memoryview) else np.asarray(image)
            if picture.ndim != 3 or picture.shape[2] != 3:
                raise ValueError(f"an uploaded query must be an RGB image (h, w, 3), got shape {picture.shape}")
            self._upload, self._encoded = picture.astype(np.uint8), {}
            return self._search()
        if random:
            index = int(self._rng.integers(len(self.queries)))
        elif label is not None:
            index = self._next_of_class(label)
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < len(self.queries):
            raise ValueError(f"query index must be an integer in [0, {len(self.queries)}), got {index!r}")
        self._upload, self._query_index = None, int(index)
        self._sync(self.query_index_widget, int(index))
        return self._search()

    def set_representation(self, name: str) -> SearchResults:
        """Search another cached representation (a key of `representations`)."""
        self.ranker.features(name)  # raises for an unknown name, listing the known ones
        return self._change("representation", name, self.representation_widget)

    def set_metric(self, metric: str) -> SearchResults:
        """Rank by another registry distance (scipy name or alias) in the ``exact`` mode."""
        return self._change("metric", resolve_name(metric), self.metric_widget)

    def set_mode(self, mode: str, shortlist: int | None = None) -> SearchResults:
        """``"exact"``, ``"hamming"`` or ``"two_phase"`` (see `SEARCH_MODES`); `shortlist`: two-phase's length."""
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}; expected one of {SEARCH_MODES}")
        if shortlist is not None:
            self._check_count("shortlist", shortlist)
            self._settings["shortlist"] = int(shortlist)
            self._sync(self.shortlist_widget, int(shortlist))
        self.metric_widget.disabled = mode != "exact"
        self.shortlist_widget.disabled = mode != "two_phase"
        return self._change("mode", mode, self.mode_widget)

    def set_k(self, k: int) -> SearchResults:
        """Show the top `k` (1 ≤ k ≤ database size)."""
        self._check_count("k", k)
        return self._change("k", int(k), self.k_widget)

    def set_normalize(self, normalize: bool) -> SearchResults:
        """L2-normalise the features before a non-cosine float distance (cosine always is)."""
        return self._change("normalize", bool(normalize), self.normalize_widget)

    def probe(self, settings: list[Mapping], query_indices: list[int]) -> pd.DataFrame:
        """Mean AP, P@k and time of each setting over some queries; the explorer's state is restored.

        Args:
            settings: mappings with ``representation`` and optionally ``metric``, ``mode``, ``shortlist``.
            query_indices: rows of the query set.
        Returns:
            one row per setting: ``key`` (e.g. ``dlbhc48_two_phase``, for metric names), ``representation``,
            ``search`` (the metric, or the mode and its shortlist), ``ap``, ``p_at_k``, ``ms``.
        """
        saved, saved_query = dict(self._settings), self._query_index
        rows = []
        for setting in settings:
            self.set_representation(setting["representation"])
            self.set_mode(setting.get("mode", "exact"), setting.get("shortlist"))
            self.set_metric(setting.get("metric", "cosine"))
            found = [self.set_query(int(index)) for index in query_indices]
            r = found[-1]
            search = r.metric if r.mode == "exact" else r.mode + (f" (shortlist {r.shortlist})" if r.shortlist else "")
            key = f"{r.representation}_{r.metric if r.mode == 'exact' else r.mode}".replace(" ", "_")
            rows.append(
                {
                    "key": key,
                    "representation": r.representation,
                    "search": search,
                    "ap": float(
                        np.nanmean([np.nan if f.average_precision is None else f.average_precision for f in found])
                    ),
                    "p_at_k": float(
                        np.nanmean([np.nan if f.precision_at_k is None else f.precision_at_k for f in found])
                    ),
                    "ms": 1000 * float(np.mean([f.seconds for f in found])),
                }
            )
        self.set_representation(saved["representation"])
        self.set_mode(saved["mode"], saved["shortlist"])
        self.set_metric(saved["metric"])
        self.set_query(saved_query)
        return pd.DataFrame(rows)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ----- searching -----------------------------------------------------------------------------
    def _check_count(self, what: str, value) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= value <= len(self.database):
            raise ValueError(f"{what} must be an integer in [1, {len(self.database)}], got {value!r}")

    def _next_of_class(self, label: int | str) -> int:
        names = list(self.queries.class_names)
        if isinstance(label, str):
            if label not in names:
                raise ValueError(f"unknown class {label!r}; expected one of {names}")
            label = names.index(label)
        of_class = np.flatnonzero(self.queries.labels == label)
        if len(of_class) == 0:
            raise ValueError(f"no query of class {label!r}")
        after = of_class[of_class > self._query_index]
        return int(after[0] if len(after) else of_class[0])

    def _query_vectors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(features, codes) of the current query in representation `name`."""
        features = self.ranker.features(name)
        if self._upload is None:
            return features.query[self._query_index], features.query_codes[self._query_index]
        if name not in self._encoded:
            if name not in self.encoders:
                raise ValueError(f"no encoder for {name!r}: uploaded queries work with {sorted(self.encoders)}")
            self._encoded[name] = np.asarray(self.encoders[name](self._upload[None].astype(np.float32)))[0]
        vector = self._encoded[name].astype(np.float32)
        binary = self._settings["mode"] != "exact" or self._settings["metric"] in BINARY_METRICS
        if features.thresholds is None and binary:
            raise ValueError(f"{name}'s codes are not median codes: an uploaded query cannot be coded like them")
        codes = vector > (features.thresholds if features.thresholds is not None else 0.5)
        return vector, codes

    def _search(self) -> SearchResults | None:
        if self._syncing:
            return None
        start = time.perf_counter()
        settings = self._settings
        name = settings["representation"]
        query, codes = self._query_vectors(name)
        rerank = self.ranker.rerank.get(name)
        indices, scores, ranking = self.ranker.search(
            name,
            query,
            codes,
            metric=settings["metric"],
            mode=settings["mode"],
            k=settings["k"],
            shortlist=settings["shortlist"],
            normalize=settings["normalize"],
            exclude=self._query_index if self.leave_one_out and self._upload is None else None,
            rerank_query=self._query_vectors(rerank)[0] if rerank and settings["mode"] == "two_phase" else None,
        )
        labels = self.database.labels[indices]
        query_label = None if self._upload is not None else int(self.queries.labels[self._query_index])
        labelled = query_label is not None and query_label >= 0
        relevant = labels == query_label if labelled else None
        ap, precision = query_metrics(ranking, self.database.labels, query_label, relevant if labelled else [])
        self._results = SearchResults(
            query_index=None if self._upload is not None else self._query_index,
            query_label=query_label,
            representation=name,
            metric=settings["metric"] if settings["mode"] == "exact" else "hamming",
            mode=settings["mode"],
            k=settings["k"],
            shortlist=settings["shortlist"] if settings["mode"] == "two_phase" else None,
            indices=indices,
            scores=scores,
            labels=labels,
            relevant=relevant,
            average_precision=ap,
            precision_at_k=precision,
            seconds=time.perf_counter() - start,
        )
        self._render()
        return self._results

    def _change(self, key: str, value, widget: widgets.Widget) -> SearchResults | None:
        previous = self._settings[key]
        self._settings[key] = value
        try:
            result = self._search()
        except ValueError:
            self._settings[key] = previous
            raise
        self._sync(widget, value)
        return result

    # ----- the widgets ---------------------------------------------------------------------------
    def _build_widgets(self) -> None:
        n, names = len(self.database), list(self.ranker.representations)
        self.representation_widget = widgets.Dropdown(options=names, description="features")
        self.metric_widget = widgets.Dropdown(options=METRIC_CHOICES, value="cosine", description="metric")
        self.mode_widget = widgets.ToggleButtons(options=SEARCH_MODES, description="search")
        self.normalize_widget = widgets.Checkbox(value=self._settings["normalize"], description="L2-normalise")
        self.k_widget = widgets.IntSlider(value=10, min=1, max=min(n, 50), description="k")
        self.shortlist_widget = widgets.IntSlider(value=min(100, n), min=1, max=n, description="shortlist")
        self.query_index_widget = widgets.BoundedIntText(min=0, max=len(self.queries) - 1, description="query")
        classes = [("—", -1)] + [(name, i) for i, name in enumerate(self.queries.class_names)]
        self.class_widget = widgets.Dropdown(options=classes, value=-1, description="class")
        self.random_widget = widgets.Button(description="random query", icon="random")
        self.upload_widget = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        self.status_widget = widgets.HTML()
        self.grid_widget = widgets.HTML()
        for css in ("representation", "metric", "mode", "k", "query_index", "class", "random", "status", "grid"):
            getattr(self, f"{css}_widget").add_class(f"cbir-{css}")  # stable handles for the browser test
        handlers = {
            self.representation_widget: lambda v: self.set_representation(v),
            self.metric_widget: lambda v: self.set_metric(v),
            self.mode_widget: lambda v: self.set_mode(v),
            self.normalize_widget: lambda v: self.set_normalize(v),
            self.k_widget: lambda v: self.set_k(v),
            self.shortlist_widget: lambda v: self.set_mode(self._settings["mode"], v),
            self.query_index_widget: lambda v: self.set_query(int(v)),
            self.class_widget: lambda v: None if v < 0 else self.set_query(label=v),
            self.upload_widget: lambda v: self.set_query(image=v[0]["content"]) if v else None,
        }
        for widget, handler in handlers.items():
            widget.observe(self._handler(handler), names="value")
        self.random_widget.on_click(self._handler(lambda _: self.set_query(random=True), event=False))
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.representation_widget, self.metric_widget, self.normalize_widget]),
                widgets.HBox([self.mode_widget, self.shortlist_widget]),
                widgets.HBox([self.query_index_widget, self.class_widget, self.random_widget, self.upload_widget]),
                self.k_widget,
                self.status_widget,
                self.grid_widget,
            ]
        )

    def _handler(self, action: Callable, event: bool = True) -> Callable:
        """A widget callback: ignore changes made by `_sync`; show a bad choice's error in the status line."""

        def handle(change) -> None:
            if self._syncing:
                return
            try:
                action(change["new"] if event else change)
            except ValueError as error:
                self.status_widget.value = f'<span style="color:#d73027">{error}</span>'

        return handle

    def _sync(self, widget: widgets.Widget, value) -> None:
        """Set a widget's value without triggering its callback."""
        syncing, self._syncing = self._syncing, True
        try:
            widget.value = value
        finally:
            self._syncing = syncing

    def _thumbnail(self, which: str, index: int) -> str:
        if (which, index) not in self._thumbnails:
            image_set = self.queries if which == "query" else self.database
            image = image_set.load_images([index], max_side=4 * self.thumbnail_side)[0]
            self._thumbnails[(which, index)] = thumbnail_uri(image, self.thumbnail_side)
        return self._thumbnails[(which, index)]

    def _render(self) -> None:
        r = self._results
        names = self.database.class_names
        captions = [names[label] if 0 <= label < len(names) else str(i) for i, label in zip(r.indices, r.labels)]
        if r.query_index is None:
            query_uri, caption = thumbnail_uri(self._upload, self.thumbnail_side), "uploaded"
        else:
            query_uri = self._thumbnail("query", r.query_index)
            label = names[r.query_label] if 0 <= r.query_label < len(names) else "unlabelled"
            caption = f"#{r.query_index}\n{label}"
        uris = [self._thumbnail("database", int(i)) for i in r.indices]
        self.grid_widget.value = search_grid_html(
            query_uri, caption, uris, r.indices, r.scores, r.relevant, captions, self.columns
        )
        how = (
            f"metric {r.metric}" if r.mode == "exact" else f"{r.mode} on {self.ranker.features(r.representation).bits}"
        )
        how += " bits" if r.mode != "exact" else ""
        how += f", shortlist {r.shortlist}" if r.shortlist else ""
        quality = "no label: no AP" if r.average_precision is None else f"AP {r.average_precision:.3f}"
        quality += "" if r.precision_at_k is None else f", P@{r.k} {r.precision_at_k:.2f}"
        self.status_widget.value = (
            f"<b>{r.representation}</b> ({how}): {quality} &nbsp; <i>{1000 * r.seconds:.0f} ms</i>"
        )
