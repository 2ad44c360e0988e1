"""The ``cbir`` command line: datasets, notebook reports, and indexing / searching a folder of images.

    cbir data NAME [DATA_DIR] [--no-download]
    cbir reports [--profile smoke|default] [--only NOTEBOOK...] [--list] [--update-readme]
    cbir index IMAGE_DIR --out INDEX_DIR [--features efficientnet_lite0|hog|sift_vlad|...] [--pooling gem]
               [--index flat|hnsw|ivfpq|binary] [--index-param KEY=VALUE ...]
    cbir search INDEX_DIR QUERY... [-k 5] [--json] [--grid out.png] [--search-param KEY=VALUE ...] [--exact]
    cbir index IMAGE_DIR --store milvus:PATH.db|http://HOST:19530 [--engine ray [--address A] [--workers N]]
    cbir search --store milvus:PATH.db|http://HOST:19530 QUERY... [-k 5] [--json]
    cbir compare FOLDER [--triplets triplets.csv] [--backbone NAME ...] [--metric NAME ...] [--json]

`index` embeds every image under IMAGE_DIR (recursively) with a pretrained backbone and pooling, or
describes it with a classic descriptor (colour histogram, HOG, LBP, dense SIFT + BoW / VLAD / Fisher
vector; its vocabulary fitted on the folder's images), and saves the features, the files' identity
(path, size, modification time), the settings and a format version (`cbir.indexing`); ``--index`` adds
an ANN structure (HNSW, IVF-PQ, or ITQ codes searched in two phases) that `search` then uses
(`cbir.index_structures`). Re-running it embeds only new or changed files; it commits every
``--commit-every`` images, so an interrupted run resumes where it stopped, and holds the directory's
lock, so two runs on one index take turns. Files that are not images or cannot be decoded are reported
on stderr, with the reason, and skipped.

`search` embeds each query (an image, or every image in a folder) with the index's own settings
and prints the k most similar indexed images with a score in [0, 1] (``(1 + cosine) / 2`` for CNN
features; the descriptor's distance mapped to [0, 1] by `cbir.retrieval.distances` otherwise); with
``--json``, one JSON object per query and line (JSON Lines).

``--store`` keeps the index in a Milvus collection instead (embedded Milvus Lite or a server) and
``--engine ray`` embeds with Ray Data (`cbir.scale`; both need ``pip install 'cbir[scale]'``).

`compare` scores backbones × distance metrics on (query, positive, negative) triplets of a folder:
the success rate (p+ closer than p−; ties ½) with a 95 % bootstrap interval, and the pair ROC AUC.

Output contract: stdout carries only results; progress bars, logs and warnings go to stderr
(``--quiet`` keeps only warnings and errors). Exit status 0 on success, 1 on an error, 2 on a usage
error. TensorFlow is imported only by the commands that run a model, with its start-up lines silenced.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

import cbir
from cbir.cli.commands import command_compare, command_data, command_index, command_reports, command_search
from cbir.cli.output import Output

__all__ = ["BACKBONE_NAMES", "DESCRIPTOR_NAMES", "POOLING_NAMES", "STRUCTURE_NAMES", "build_parser", "main"]

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
DESCRIPTOR_NAMES = ("color_hist", "hog", "lbp", "sift_bow", "sift_vlad", "sift_fisher")
STRUCTURE_NAMES = ("flat", "hnsw", "ivfpq", "binary")


def _key_value(text: str) -> tuple[str, int | float | str]:
    """``KEY=VALUE`` → (key, value as int, float or text)."""
    key, separator, value = text.partition("=")
    if not separator or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. ef_search=256), got {text!r}")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            continue
    return key, value


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


def _scale_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--store",
        default="files",
        metavar="STORE",
        help="files (INDEX_DIR), milvus:PATH.db[#COLLECTION] (Milvus Lite, embedded) or "
        "http(s)://HOST:19530[#COLLECTION] (a Milvus server): pip install 'cbir[scale]' for Milvus",
    )


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
    index.add_argument(
        "--out", metavar="INDEX_DIR", help="index directory (created or updated); required with --store files"
    )
    _scale_options(index)
    index.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="embed in this process, or with Ray Data (parallel decoding, one model per worker): pip install "
        "'cbir[scale]'",
    )
    index.add_argument("--address", default=None, help="--engine ray: a Ray cluster's address (default: local Ray)")
    index.add_argument("--workers", type=_positive_int, default=2, help="--engine ray: actors, one model each")
    index.add_argument(
        "--backbone",
        default="efficientnet_lite0",
        choices=BACKBONE_NAMES,
        help="pretrained topless CNN (efficientnet_lite0's weights work offline)",
    )
    index.add_argument(
        "--features",
        default=None,
        choices=BACKBONE_NAMES + DESCRIPTOR_NAMES,
        help="a backbone (as --backbone) or a classic descriptor (default: --backbone)",
    )
    index.add_argument(
        "--image-size", type=_positive_int, default=128, help="square side the classic descriptors see, in pixels"
    )
    index.add_argument(
        "--index",
        dest="structure",
        default="flat",
        choices=STRUCTURE_NAMES,
        help="search structure: exact (flat), HNSW graph, IVF-PQ with exact re-ranking, or ITQ codes + re-ranking",
    )
    index.add_argument(
        "--index-param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a construction parameter of --index (hnsw: M, ef_construction; ivfpq: nlist, m, nbits; binary: bits)",
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
    index.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "bfloat16"],
        help="compute precision of the backbone: bfloat16 is faster on CPUs with AMX / AVX-512 BF16 and on GPUs "
        "(benchmarks/bench_features.py measures it); the index records it",
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
    search.add_argument("index_dir", metavar="INDEX_DIR", help="the index directory (with --store files)")
    search.add_argument(
        "queries",
        metavar="QUERY",
        nargs="*",
        help="query images or folders of them (all positionals with --store milvus)",
    )
    _scale_options(search)
    search.add_argument("-k", type=_positive_int, default=5, help="results per query")
    search.add_argument(
        "--json",
        action="store_true",
        help='JSON Lines: one object per query and line, {"query", "results": [{"path", "score"}]}',
    )
    search.add_argument("--grid", metavar="PNG", help="also save a figure: each query with its results and scores")
    search.add_argument(
        "--search-param",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a search parameter of the index's structure (hnsw: ef_search; ivfpq: nprobe, refine; binary: shortlist)",
    )
    search.add_argument("--exact", action="store_true", help="search the features exactly, ignoring any ANN structure")
    search.add_argument("--backbone", default=None, help="refuse the index unless it was built with this backbone")
    search.add_argument("--pooling", default=None, help="refuse the index unless it was built with this pooling")
    search.add_argument(
        "--quiet", action="store_true", help="no progress bars or logs on stderr (warnings and errors stay)"
    )
    search.set_defaults(handler=command_search)

    compare = commands.add_parser(
        "compare", help="success rate and ROC AUC of backbones x metrics on triplets", formatter_class=formatter
    )
    compare.add_argument("folder", metavar="FOLDER", help="the database: FOLDER/<class>/**/<image>")
    compare.add_argument(
        "--triplets",
        metavar="CSV",
        help="query,positive,negative paths relative to FOLDER (default: drawn from the class subfolders)",
    )
    compare.add_argument(
        "--backbone", nargs="+", default=["efficientnet_lite0"], choices=BACKBONE_NAMES, help="backbones to compare"
    )
    compare.add_argument(
        "--metric",
        nargs="+",
        default=["sqeuclidean", "cosine", "cityblock", "hamming"],
        help="distance names of scipy (cbir.retrieval.distances)",
    )
    compare.add_argument(
        "--input-size", type=_positive_int, default=None, help="square input size (default: each backbone's)"
    )
    compare.add_argument("--n-triplets", type=_positive_int, default=1000, help="triplets drawn without --triplets")
    compare.add_argument("--seed", type=int, default=0, help="seed of the triplets and the bootstrap")
    compare.add_argument("--batch-size", type=_positive_int, default=32, help="images per forward pass")
    compare.add_argument("--json", action="store_true", help='one JSON object: {"n_triplets", "results": [...]}')
    compare.add_argument("--quiet", action="store_true", help="no progress bars or logs on stderr")
    compare.set_defaults(handler=command_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``cbir`` command; returns the exit status (argparse exits with 2 on a usage error)."""
    args = build_parser().parse_args(argv)
    output = Output(sys.stdout, quiet=getattr(args, "quiet", False))
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
