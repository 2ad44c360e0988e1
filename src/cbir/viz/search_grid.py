"""A query and its top-k as an HTML grid: thumbnails, [0, 1] scores, relevant results framed.

The grid is plain HTML (inline PNG thumbnails), so that a notebook widget can show it without a
Matplotlib figure per change, and so that a browser test can read what it shows: every result is a
``<figure class="cbir-result" data-index=... data-score=... data-relevant=...>``.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

RELEVANT_COLOUR = "#1a9850"  # green: same label as the query
IRRELEVANT_COLOUR = "#d73027"  # red: another label
UNLABELLED_COLOUR = "#bdbdbd"  # grey: no label to judge by


def thumbnail_uri(image: np.ndarray, side: int = 72) -> str:
    """An RGB or grayscale uint8 image as a PNG data URI, scaled so that its longer side is `side` px.

    Small images (28 px Fashion-MNIST, 8 px digits) are enlarged with nearest-neighbour sampling so
    their pixels stay visible; larger ones are reduced with a Lanczos filter.

    Args:
        image: uint8, shape (height, width) or (height, width, 3).
        side: the longer side of the thumbnail, pixels (>= 1).
    Returns:
        ``"data:image/png;base64,..."``.
    Raises:
        ValueError: `image` is not 2-D or (h, w, 3), or `side` < 1.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or side < 1:
        raise ValueError(f"expected an (h, w) or (h, w, 3) image and side >= 1, got {image.shape} and {side}")
    picture = Image.fromarray(np.ascontiguousarray(image.astype(np.uint8)))
    scale = side / max(picture.size)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(uri: str, caption: str, colour: str, attributes: str, css_class: str) -> str:
    return (
        f'<figure class="{css_class}" {attributes} style="margin:0;text-align:center;font:11px monospace">'
        f'<img src="{uri}" style="border:4px solid {colour};image-rendering:pixelated;display:block">'
        f'<figcaption style="white-space:pre-line">{html.escape(caption)}</figcaption></figure>'
    )


def search_grid_html(
    query_uri: str,
    query_caption: str,
    result_uris: Sequence[str],
    indices: Sequence[int],
    scores: Sequence[float],
    relevant: Sequence[bool] | None = None,
    captions: Sequence[str] | None = None,
    columns: int = 10,
) -> str:
    """HTML of the query (left, black frame) and its ranked results (a grid, best first).

    Args:
        query_uri: the query's thumbnail (`thumbnail_uri`); query_caption: text under it.
        result_uris, indices, scores: one per result, in rank order; scores in [0, 1].
        relevant: per result, True (green frame) or False (red); None: unlabelled (grey frames).
        captions: per result, a line under the score (e.g. the class name); None: the database index.
        columns: results per row.
    Returns:
        an HTML fragment; each result is ``figure.cbir-result`` with ``data-rank``, ``data-index``,
        ``data-score`` and ``data-relevant`` (``"1"``, ``"0"`` or ``""``) attributes.
    Raises:
        ValueError: the per-result sequences differ in length.
    """
    n = len(indices)
    if len(result_uris) != n or len(scores) != n or (relevant is not None and len(relevant) != n):
        raise ValueError(f"expected {n} thumbnails, scores and relevance flags, got {len(result_uris)}, {len(scores)}")
    if captions is not None and len(captions) != n:
        raise ValueError(f"expected {n} captions, got {len(captions)}")
    cells = []
    for rank, (uri, index, score) in enumerate(zip(result_uris, indices, scores), start=1):
        flag = None if relevant is None else bool(relevant[rank - 1])
        colour = UNLABELLED_COLOUR if flag is None else RELEVANT_COLOUR if flag else IRRELEVANT_COLOUR
        attributes = (
            f'data-rank="{rank}" data-index="{int(index)}" data-score="{float(score):.6f}" '
            f'data-relevant="{"" if flag is None else int(flag)}"'
        )
        caption = f"#{rank} {float(score):.3f}\n{captions[rank - 1] if captions is not None else int(index)}"
        cells.append(_figure(uri, caption, colour, attributes, "cbir-result"))
    query = _figure(query_uri, query_caption, "#000000", 'data-role="query"', "cbir-query")
    grid = (
        f'<div class="cbir-results" style="display:grid;grid-template-columns:repeat({max(1, columns)},auto);'
        f'gap:6px;justify-content:start">{"".join(cells)}</div>'
    )
    return (
        '<div class="cbir-search" style="display:flex;gap:18px;align-items:flex-start">'
        f'<div><div style="font:bold 12px sans-serif">query</div>{query}</div>{grid}</div>'
    )
