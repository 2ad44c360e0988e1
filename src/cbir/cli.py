"""The ``cbir`` command line: datasets, notebook reports, and indexing / searching a folder of images.

    cbir data NAME [DATA_DIR] [--no-download]
    cbir reports [--profile smoke|default] [--only NOTEBOOK...] [--list] [--update-readme]
    cbir index IMAGE_DIR --out INDEX_DIR [--backbone efficientnet_lite0] [--pooling gem] [--batch-size 32]
    cbir search INDEX_DIR QUERY... [-k 5] [--json] [--grid out.png]

`index` embeds every image under IMAGE_DIR (recursively) with a pretrained backbone and pooling
and saves the L2-normalised features, the files' identity (path, size, modification time), the
settings and a format version (`cbir.indexing`). Re-running it embeds only new or changed files; it
commits every ``--commit-every`` images, so an interrupted run resumes where it stopped, and holds the
directory's lock, so two runs on one index take turns. Files that are not images or cannot be decoded
are reported on stderr, with the reason, and skipped.

`search` embeds each query (an image, or every image in a folder) with the index's own settings
and prints the k most similar indexed images with a score in [0, 1] (``(1 + cosine) / 2``); with
``--json``, one JSON object per query and line (JSON Lines).

Output contract: stdout carries only results; progress bars, logs and warnings go to stderr
(``--quiet`` keeps only warnings and errors). Exit status 0 on success, 1 on an error, 2 on a usage
error. TensorFlow is imported only by the commands that run a model, with its start-up lines silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import cbir

__all__ = ["main"]

# The registries' names, spelled here so that `cbir --help` needs no TensorFlow; a test keeps them
# equal to cbir.models.backbones.BACKBONES and cbir.models.pooling.POOLINGS.
BACKBONE_NAMES = (
    "efficientnet_b0",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "inception_v3",
    "mobilenet_v2",
    "resnet50",
    "vgg16",
    "vgg19",
)
POOLING_NAMES = ("crow", "gem", "mac", "rmac", "spoc", "sum")


class _Output:
    """The real stdout for results, and stderr for everything else (`quiet` keeps warnings only)."""

    def __init__(self, stdout, quiet: bool = False):
        self.stdout, self.quiet = stdout, quiet

    def result(self, line: str) -> None:
        print(line, file=self.stdout, flush=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with their C++ / absl start-up lines (CUDA, oneDNN, CPU
    features) silenced: file descriptor 2 points at /dev/null meanwhile. Later errors still show."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow

        tensorflow.config.list_physical_devices()  # the device probe logs "failed call to cuInit" without a GPU
        keras.config.disable_interactive_logging()  # Keras' download messages and bars go to logging
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _skipped(output: _Output, skipped, what: str = "skipped") -> None:
    for item in skipped:
        output.warn(f"{what} {item.path}: {item.reason}")


def command_index(args, output: _Output) -> int:
    _import_tensorflow_quietly()
    from cbir.indexing import IndexingError, extractor_settings, index_folder
    from cbir.retrieval.storage import IndexFormatError

    settings = extractor_settings(
        args.backbone,
        args.layer,
        None if args.weights == "none" else args.weights,
        args.pooling,
        args.gem_p,
        args.input_size,
    )
    try:
        report = index_folder(
            args.image_dir,
            args.out,
            settings,
            batch_size=args.batch_size,
            commit_every=args.commit_every,
            force=args.force,
            lock_timeout=args.lock_timeout,
            progress=not args.quiet,
            log=output.info,
        )
    except (IndexingError, IndexFormatError, FileNotFoundError) as error:
        output.warn(f"error: {error}")
        return 1
    _skipped(output, report.skipped)
    for warning in report.warnings:
        output.warn(f"warning: {warning}")
    summary = {
        "index": str(report.directory),
        "images": report.n_images,
        "embedded": report.embedded,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "skipped": len(report.skipped),
    }
    output.result(
        json.dumps(summary)
        if args.json
        else f"indexed {report.n_images} images into {report.directory}: {report.embedded} embedded, "
        f"{report.unchanged} unchanged, {report.removed} removed, {len(report.skipped)} skipped"
    )
    return 0


def _query_files(queries: Sequence[str], output: _Output) -> tuple[list[Path], int]:
    from cbir.data.images import list_image_files

    found, failures = [], 0
    for query in map(Path, queries):
        if query.is_dir():
            images, skipped = list_image_files(query)
            _skipped(output, skipped, "skipped query")
            if not images:
                output.warn(f"error: no query images in {query} ({len(skipped)} other files skipped)")
                failures += 1
            found += images
        elif query.is_file():
            found.append(query)
        else:
            output.warn(f"error: query {query} does not exist")
            failures += 1
    return found, failures


def command_search(args, output: _Output) -> int:
    from cbir.data.images import readable_images
    from cbir.retrieval.feature_index import FeatureIndex
    from cbir.retrieval.storage import IndexFormatError

    expected = {key: value for key, value in (("backbone", args.backbone), ("pooling", args.pooling)) if value}
    try:
        index = FeatureIndex.load(args.index_dir, expected_settings=expected or None)
    except IndexFormatError as error:
        output.warn(f"error: {error}")
        return 1
    if not index.entries:
        output.warn(f"error: index {args.index_dir} is empty")
        return 1
    queries, failures = _query_files(args.queries, output)
    readable, unreadable = readable_images(queries)
    _skipped(output, unreadable, "error: query")
    failures += len(unreadable)
    if not readable:
        output.warn("error: no readable query image")
        return 1
    _import_tensorflow_quietly()
    from cbir.indexing import search_folder_index

    scores, indices = search_folder_index(index, readable, k=args.k, progress=not args.quiet)
    for query, row_scores, row_indices in zip(readable, scores, indices):
        results = [
            {"path": index.entries[i]["path"], "score": round(float(s), 6)} for s, i in zip(row_scores, row_indices)
        ]
        if args.json:
            output.result(json.dumps({"query": str(query), "results": results}))
        else:
            output.result(f"query: {query}")
            for rank, result in enumerate(results, start=1):
                output.result(f"  {rank:>3}. {result['score']:.4f}  {result['path']}")
    if args.grid:
        try:
            _save_grid(args.grid, readable, scores, indices, index)
        except ImportError as error:
            output.warn(f"error: --grid needs {error.name or 'matplotlib'}: pip install 'cbir[notebooks]'")
            return 1
        output.info(f"wrote {args.grid}")
    return 1 if failures else 0


def _save_grid(path: str, queries: list[Path], scores, indices, index) -> None:
    """Save each query (up to 8) with its results and scores as one figure (`--grid`)."""
    import numpy as np

    from cbir.data.images import ImageSet
    from cbir.viz.plots import plot_search_results, save_figure

    shown = min(len(queries), 8)
    database_paths = tuple(str(entry["path"]) for entry in index.entries)
    query_set = ImageSet(labels=np.full(shown, -1, np.int64), class_names=(), paths=tuple(map(str, queries[:shown])))
    database = ImageSet(labels=np.full(len(database_paths), -1, np.int64), class_names=(), paths=database_paths)
    save_figure(plot_search_results(query_set, database, scores[:shown], indices[:shown]), path)


def command_data(args, output: _Output) -> int:
    from cbir.data.images import DatasetFormatError, DatasetNotFoundError
    from cbir.data.sources import load

    try:
        splits = load(args.name, args.data_dir, download=not args.no_download)
    except (DatasetNotFoundError, DatasetFormatError, FileNotFoundError, ValueError) as error:
        output.warn(f"error: {error}")
        return 1
    for split_name, image_set in splits.items():
        source = Path(image_set.paths[0]).parent if image_set.is_files and len(image_set) else "in memory"
        output.result(
            f"{args.name}/{split_name}: {len(image_set):,} images, {len(image_set.class_names)} classes ({source})"
        )
    return 0


def command_reports(args, output: _Output) -> int:
    from cbir import config, reports

    if args.list:
        output.result("\n".join(p.stem for p in reports.list_notebooks()))
        return 0
    if args.update_readme:
        output.result(f"updated {reports.update_readme()}")
        return 0
    try:
        executed = reports.run(args.profile, only=args.only)
    except ImportError as error:
        output.warn(f"error: {error.name or error} is missing; `cbir reports` needs: pip install 'cbir[notebooks]'")
        return 1
    except (reports.NotebookFailed, FileNotFoundError, ValueError) as error:
        output.warn(f"error: {error}")
        return 1
    output.result(
        f"executed {len(executed)} notebook(s) into {config.REPORTS_DIR}; metrics in {reports.metrics_path()}"
    )
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from cbir.data.sources import DATASETS

    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(prog="cbir", description="Content-based image retrieval with deep learning.")
    parser.add_argument("--version", action="version", version=f"cbir {cbir.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser(
        "data", help="locate (or download) a dataset and summarise its splits", formatter_class=formatter
    )
    data.add_argument("name", choices=sorted(DATASETS))
    data.add_argument(
        "data_dir", nargs="?", default=None, help="where the dataset lies (default: the README's look-up)"
    )
    data.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    data.set_defaults(handler=command_data)

    runner = commands.add_parser(
        "reports", help="run the notebooks with papermill into reports/; update the README", formatter_class=formatter
    )
    runner.add_argument("--profile", default="smoke", help="params/<PROFILE>.yaml")
    runner.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook stems to run")
    runner.add_argument("--list", action="store_true", help="list the notebooks in run order and exit")
    runner.add_argument(
        "--update-readme",
        action="store_true",
        help="re-render the README results section from reports/metrics.json and exit",
    )
    runner.set_defaults(handler=command_reports)

    index = commands.add_parser(
        "index", help="embed every image under IMAGE_DIR into an index", formatter_class=formatter
    )
    index.add_argument("image_dir", metavar="IMAGE_DIR")
    index.add_argument("--out", required=True, metavar="INDEX_DIR", help="index directory (created or updated)")
    index.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        choices=BACKBONE_NAMES,
        help="pretrained topless CNN (efficientnet_lite0's weights work offline)",
    )
    index.add_argument("--layer", default=None, help="backbone layer (default: its last convolutional output)")
    index.add_argument(
        "--weights",
        default="imagenet",
        choices=["imagenet", "none"],
        help="ImageNet weights, or none for a random-weight backbone (a baseline)",
    )
    index.add_argument(
        "--pooling", default="gem", choices=POOLING_NAMES, help="pooling of the convolutional map into one vector"
    )
    index.add_argument("--gem-p", type=_positive_float, default=3.0, help="GeM exponent")
    index.add_argument(
        "--input-size", type=_positive_int, default=None, help="square input size (default: the backbone's)"
    )
    index.add_argument("--batch-size", type=_positive_int, default=32, help="images per forward pass")
    index.add_argument(
        "--commit-every",
        type=_positive_int,
        default=1024,
        help="images embedded between two commits: an interrupted run resumes after the last one",
    )
    index.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty directory that holds no index, or rebuild an index that is corrupt "
        "or was built with other settings (files the index did not write are never deleted)",
    )
    index.add_argument(
        "--lock-timeout",
        type=_positive_float,
        default=600.0,
        help="seconds to wait for another process writing the same index",
    )
    index.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    index.add_argument(
        "--quiet", action="store_true", help="no progress bars or logs on stderr (warnings and errors stay)"
    )
    index.set_defaults(handler=command_index)

    search = commands.add_parser(
        "search", help="find the indexed images most similar to each query", formatter_class=formatter
    )
    search.add_argument("index_dir", metavar="INDEX_DIR")
    search.add_argument("queries", metavar="QUERY", nargs="+", help="query images or folders of them")
    search.add_argument("-k", type=_positive_int, default=5, help="results per query")
    search.add_argument(
        "--json",
        action="store_true",
        help='JSON Lines: one object per query and line, {"query", "results": [{"path", "score"}]}',
    )
    search.add_argument("--grid", metavar="PNG", help="also save a figure: each query with its results and scores")
    search.add_argument("--backbone", default=None, help="refuse the index unless it was built with this backbone")
    search.add_argument("--pooling", default=None, help="refuse the index unless it was built with this pooling")
    search.add_argument(
        "--quiet", action="store_true", help="no progress bars or logs on stderr (warnings and errors stay)"
    )
    search.set_defaults(handler=command_search)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``cbir`` command; returns the exit status (argparse exits with 2 on a usage error)."""
    args = build_parser().parse_args(argv)
    output = _Output(sys.stdout, quiet=getattr(args, "quiet", False))
    # Anything a library prints to stdout (Keras' bars and download messages) goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return args.handler(args, output)
        except KeyboardInterrupt:
            output.warn("interrupted")
            return 130
        except Exception as error:  # a model's missing weights, a full disk: one line, no traceback
            from cbir.models.efficientnet_lite import WeightsUnavailableError

            if isinstance(error, (WeightsUnavailableError, OSError)):
                output.warn(f"error: {error}")
                return 1
            raise


if __name__ == "__main__":
    sys.exit(main())
