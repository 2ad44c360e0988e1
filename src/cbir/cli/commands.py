"""The ``cbir`` subcommands. Each takes the parsed arguments and an `Output`, returns the exit status,
and imports what it needs (TensorFlow only where a model runs) when it runs, to keep start-up fast."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cbir.cli.output import Output, import_tensorflow_quietly


def _skipped(output: Output, skipped, what: str = "skipped") -> None:
    for item in skipped:
        output.warn(f"{what} {item.path}: {item.reason}")


def command_index(args, output: Output) -> int:
    import_tensorflow_quietly()
    from cbir.folder_descriptors import FOLDER_DESCRIPTORS, descriptor_settings, is_descriptor_settings
    from cbir.indexing import IndexingError, extractor_settings, index_folder
    from cbir.retrieval.storage import IndexFormatError

    if args.features in FOLDER_DESCRIPTORS:
        settings = descriptor_settings(args.features, args.image_size)
    else:
        settings = extractor_settings(
            args.features or args.backbone,
            args.layer,
            None if args.weights == "none" else args.weights,
            args.pooling,
            args.gem_p,
            args.input_size,
            args.precision,
        )
    try:
        location = _store_location(args.store)
    except ValueError as error:
        output.warn(f"error: {error}")
        return 2
    if (location is None) == (args.out is None):
        output.warn(f"error: {'--out INDEX_DIR is required with' if location is None else '--out is not for'} "
                    f"--store {args.store}")  # fmt: skip
        return 2
    if (args.engine == "ray" or location is not None) and is_descriptor_settings(settings):
        output.warn("error: --engine ray and --store milvus take CNN features; index descriptors with --store files")
        return 2
    common = {"force": args.force, "structure": args.structure, "structure_params": dict(args.index_param)}
    store_errors = _store_errors(location)
    try:
        chunks = _embed_chunks(args, settings, milvus=location is not None)
        if location is None:
            report = index_folder(
                args.image_dir, args.out, settings, batch_size=args.batch_size, commit_every=args.commit_every,
                lock_timeout=args.lock_timeout, progress=not args.quiet, log=output.info, embed_chunks=chunks,
                **common,
            )  # fmt: skip
        else:
            from cbir.scale.milvus_indexing import index_folder_milvus

            report = index_folder_milvus(args.image_dir, location, settings, chunks, log=output.info, **common)
    except (ImportError, IndexingError, IndexFormatError, FileNotFoundError, ConnectionError, *store_errors) as error:
        output.warn(f"error: {error}")
        return 1
    except ValueError as error:  # a parameter the structure does not take, or an impossible value
        output.warn(f"error: --index {args.structure}: {error}")
        return 1
    _skipped(output, report.skipped)
    for warning in report.warnings:
        output.warn(f"warning: {warning}")
    summary = {
        "index": str(report.directory),
        "structure": args.structure,
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


def _store_location(store: str):
    """``--store`` → None (files) or a `cbir.retrieval.milvus_store.StoreLocation`; ValueError if malformed."""
    if store == "files":
        return None
    from cbir.retrieval.milvus_location import parse_store

    return parse_store(store)


def _store_errors(location) -> tuple[type[BaseException], ...]:
    """The errors of the Milvus client to report (none for files, or without pymilvus: its ImportError is)."""
    if location is None:
        return ()
    from cbir.retrieval.milvus_location import milvus_errors

    try:
        return milvus_errors()
    except ImportError:
        return ()


def _embed_chunks(args, settings: dict, milvus: bool):
    """The chunk generator `index_folder` / `index_folder_milvus` embed with: Ray Data with ``--engine ray``
    (a session started once there is something to embed), this process otherwise (None: `index_folder`'s
    own default)."""
    import functools

    options = {"batch_size": args.batch_size, "chunk_size": args.commit_every, "progress": not args.quiet}
    if args.engine == "ray":
        from cbir.scale.ray_extract import embed_with_ray

        return functools.partial(embed_with_ray, settings, address=args.address, workers=args.workers, **options)
    if milvus:
        from cbir.scale.milvus_indexing import local_embed_chunks

        return functools.partial(local_embed_chunks, settings, **options)
    return None


def _query_files(queries: Sequence[str], output: Output) -> tuple[list[Path], int]:
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


def command_search(args, output: Output) -> int:
    from cbir.data.images import readable_images
    from cbir.retrieval.feature_index import FeatureIndex
    from cbir.retrieval.storage import IndexFormatError

    try:
        location = _store_location(args.store)
    except ValueError as error:
        output.warn(f"error: {error}")
        return 2
    if location is None and not args.queries:
        output.warn("error: give at least one QUERY after INDEX_DIR")
        return 2
    if location is not None and args.grid:
        output.warn("error: --grid works with --store files only")
        return 2
    expected = {key: value for key, value in (("backbone", args.backbone), ("pooling", args.pooling)) if value}
    if location is None:
        try:
            index = FeatureIndex.load(args.index_dir, expected_settings=expected or None)
        except IndexFormatError as error:
            output.warn(f"error: {error}")
            return 1
        if not index.entries:
            output.warn(f"error: index {args.index_dir} is empty")
            return 1
    queries, failures = _query_files(args.queries if location is None else [args.index_dir, *args.queries], output)
    readable, unreadable = readable_images(queries)
    _skipped(output, unreadable, "error: query")
    failures += len(unreadable)
    if not readable:
        output.warn("error: no readable query image")
        return 1
    import_tensorflow_quietly()
    options = {"search_params": dict(args.search_param), "exact": args.exact, "progress": not args.quiet}
    try:
        if location is None:
            from cbir.indexing import search_folder_index

            scores, indices = search_folder_index(
                index, readable, k=args.k, directory=args.index_dir, log=output.info, **options
            )
            hits = [  # an ANN structure may find fewer than k (index -1)
                [(index.entries[i]["path"], s) for s, i in zip(row_scores, row_indices) if i >= 0]
                for row_scores, row_indices in zip(scores, indices)
            ]
        else:
            from cbir.scale.milvus_indexing import search_milvus

            scores, paths = search_milvus(location, readable, args.k, expected_settings=expected, **options)
            hits = [list(zip(row_paths, row_scores)) for row_scores, row_paths in zip(scores, paths)]
    except (ImportError, IndexFormatError, *_store_errors(location)) as error:
        output.warn(f"error: {f'{args.index_dir}: ' if location is None else ''}{error}")  # a store names itself
        return 1
    except ValueError as error:
        output.warn(f"error: --search-param: {error}")
        return 1
    for query, query_hits in zip(readable, hits):
        results = [{"path": path, "score": round(float(score), 6)} for path, score in query_hits]
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


def command_compare(args, output: Output) -> int:
    from cbir.retrieval.distances import resolve_name

    try:
        metrics = [resolve_name(name) for name in args.metric]
    except ValueError as error:
        output.warn(f"error: --metric: {error}")
        return 2
    import_tensorflow_quietly()
    from cbir.comparison import ComparisonError, compare_folder, folder_triplets

    try:
        data = folder_triplets(args.folder, args.n_triplets, args.triplets, seed=args.seed)
    except (ComparisonError, FileNotFoundError, ValueError) as error:
        output.warn(f"error: {error}")
        return 1
    _skipped(output, data.skipped)
    output.info(f"{len(data.triplets)} triplets over {len(data.paths)} images; metrics {', '.join(metrics)}")
    results = compare_folder(
        data, args.backbone, metrics, input_size=args.input_size, batch_size=args.batch_size, seed=args.seed,
        progress=not args.quiet, log=output.info,
    )  # fmt: skip
    if args.json:
        output.result(json.dumps({"n_triplets": len(data.triplets), "results": results}))
        return 0
    output.result(f"{'backbone':<20} {'metric':<12} {'success':>8} {'95% CI':>17} {'ROC AUC':>8}")
    for row in results:
        auc = "" if row["roc_auc"] is None else f"{row['roc_auc']:.4f}"
        interval = f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        output.result(f"{row['backbone']:<20} {row['metric']:<12} {row['success']:>8.4f} {interval:>17} {auc:>8}")
    return 0


def command_data(args, output: Output) -> int:
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


def command_reports(args, output: Output) -> int:
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
