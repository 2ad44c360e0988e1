"""Notebook 05, first half: classic descriptors against deep features on one retrieval protocol, and
unsupervised binary codes (LSH, ITQ) against DLBHC's learned ones.

Every descriptor of `cbir.descriptors` is fitted on the database images only (vocabularies, GMMs,
PCA), applied to database and queries, and ranked with the distance its authors use; the deep
representations (GeM features of a pretrained backbone, DLBHC codes, the triplet embedding) come
from notebooks 01–03 through `cbir.experiments.representations`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from cbir.data.images import ImageSet
from cbir.descriptors import make_descriptor
from cbir.evaluation.retrieval import retrieval_metrics
from cbir.experiments.common import gem_features, metric_columns
from cbir.experiments.representations import Representation
from cbir.features import FeatureExtractor
from cbir.models.backbones import get_backbone
from cbir.retrieval.binary_codes import ITQ, SignLSH
from cbir.retrieval.hamming import hamming_distances, pack_codes

PUBLISHED_DLBHC = "above LSH and ITQ at every length (Lin et al. 2015, CIFAR-10)"
"""What the DLBHC paper reports against the unsupervised codes (a claim, not a comparable number)."""

KS = (1, 10)
"""Precision cut-offs of the descriptor table (P@1, P@10)."""


@dataclass(frozen=True)
class DescriptorResult:
    """One representation's features and scores.

    Attributes:
        name: its name in tables and metric keys (``hog``, ``sift_vlad``, ``gem``, ``dlbhc48``).
        metric: the registry distance that ranks it.
        query, database: float32 (n_queries, dim), (n_database, dim).
        ms_per_image: extraction time per image (fit excluded), milliseconds, on this machine.
        fit_s: seconds spent fitting vocabularies / GMMs / PCA on the database (0 when none).
    """

    name: str
    metric: str
    query: np.ndarray
    database: np.ndarray
    ms_per_image: float
    fit_s: float = 0.0


def images_at(image_set: ImageSet, size: int) -> np.ndarray:
    """The images of `image_set` as uint8 (n, size, size) (grayscale) or (n, size, size, 3), bilinear resize.

    Grayscale arrays stay grayscale (the colour histogram then becomes an intensity histogram);
    file-based sets are decoded to RGB.
    """
    if image_set.images is not None and image_set.images.ndim == 3:
        images = image_set.images
    else:
        images = image_set.load_images(max_side=2 * size)
    return np.stack([cv2.resize(np.asarray(image), (size, size), interpolation=cv2.INTER_AREA) for image in images])


def extract_descriptor(
    spec: str | Mapping,
    database_images: np.ndarray,
    query_images: np.ndarray,
    patch_features: Callable[[np.ndarray], np.ndarray] | None = None,
    fit_images: int = 10_000,
    seed: int = 0,
    progress: bool = True,
) -> DescriptorResult:
    """Fit one descriptor on database images, then describe the database and the queries.

    Args:
        spec: a `cbir.descriptors` name, or ``{"name": ..., "label": row name, ...its parameters}``.
        database_images, query_images: uint8 (n, h, w[, 3]), one size.
        patch_features: the CNN that MOP-CNN pools (``mop_cnn`` only).
        fit_images: the descriptor is fitted on a seeded sample of at most this many database images.
    Raises:
        ValueError: an unknown descriptor or parameter (from `cbir.descriptors.make_descriptor`).
    """
    config = {"name": spec} if isinstance(spec, str) else dict(spec)
    params = {key: value for key, value in config.items() if key not in ("name", "label")}
    if config["name"] == "mop_cnn":
        params["patch_features"] = patch_features
    descriptor = make_descriptor(config["name"], **params)
    rows = np.random.default_rng(seed).permutation(len(database_images))[:fit_images]
    start = time.perf_counter()
    descriptor.fit(database_images[np.sort(rows)], progress=progress)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    database = descriptor.transform(database_images, progress=progress)
    query = descriptor.transform(query_images, progress=progress)
    ms = 1000 * (time.perf_counter() - start) / (len(database_images) + len(query_images))
    name = str(config.get("label") or config["name"])
    return DescriptorResult(name, descriptor.metric, query, database, ms, fit_s if fit_s > 0.01 else 0.0)


def cnn_ms_per_image(backbone: str, input_size: int, image_set: ImageSet, n: int = 256, seed: int = 0) -> float:
    """Milliseconds per image of a backbone's GeM features, measured on `n` images without the cache."""
    extractor = FeatureExtractor(get_backbone(backbone, input_size=input_size), pooling="gem")
    sample = image_set.sample(n, seed)
    extractor.extract(sample.subset(np.arange(min(8, len(sample)))), cache=False, progress=False)  # warm-up
    start = time.perf_counter()
    extractor.extract(sample, cache=False, progress=False)
    return 1000 * (time.perf_counter() - start) / len(sample)


def deep_results(
    gem_query: np.ndarray,
    gem_database: np.ndarray,
    learned: Mapping[str, Representation],
    cnn_ms: float,
) -> list[DescriptorResult]:
    """The deep rows of the descriptor table: GeM (cosine), DLBHC's codes (Hamming) and the triplet
    embedding (cosine); their time per image is the backbone's (the heads cost microseconds)."""
    results = [DescriptorResult("gem", "cosine", gem_query, gem_database, cnn_ms)]
    for name, representation in learned.items():
        if name.startswith("dlbhc"):
            query, database = (
                np.asarray(x, np.float32) for x in (representation.binary_query, representation.binary_database)
            )
            results.append(DescriptorResult(name, "hamming", query, database, cnn_ms))
        else:
            results.append(DescriptorResult(name, "cosine", representation.query, representation.database, cnn_ms))
    return results


def mop_cnn_comparison(
    database: ImageSet,
    queries: ImageSet,
    deep: Mapping,
    params: Mapping,
    image_size: int,
    patch_input: int = 64,
    seed: int = 0,
) -> pd.DataFrame:
    """MOP-CNN against GeM of the same backbone on one (smaller) database and query set.

    The patches are described by the backbone's GeM features at `patch_input` pixels (each patch is
    resized to it); GeM on the whole images uses ``deep["input_size"]`` as elsewhere.
    """
    extractor = FeatureExtractor(get_backbone(deep["backbone"], input_size=patch_input), pooling="gem", batch_size=128)

    def patch_features(patches: np.ndarray) -> np.ndarray:
        return np.concatenate([extractor(patches[i : i + 256]) for i in range(0, len(patches), 256)])

    config = {"name": "mop_cnn", **params}
    mop_images = images_at(database, image_size), images_at(queries, image_size)
    mop = extract_descriptor(config, *mop_images, patch_features, seed=seed)
    gem_query, gem_database = gem_features(deep["backbone"], deep["input_size"], queries, database)
    gem_ms = cnn_ms_per_image(deep["backbone"], deep["input_size"], queries, seed=seed)  # not the cached read
    gem = DescriptorResult("gem_same_subset", "cosine", gem_query, gem_database, gem_ms)
    return evaluate([mop, gem], queries.labels, database.labels)


def evaluate(
    results: Sequence[DescriptorResult], query_labels: np.ndarray, database_labels: np.ndarray
) -> pd.DataFrame:
    """mAP, P@1, P@10 of each representation over the whole database, with its dimension, distance and cost.

    Returns:
        one row per result, best mAP first: ``representation``, ``distance``, ``dim``, ``mAP``, ``P@1``,
        ``P@10``, ``ms / image``, ``fit s``.
    """
    rows = []
    for result in tqdm(results, desc="mAP per representation", unit="representation"):
        scores = retrieval_metrics(
            result.query,
            query_labels,
            result.database,
            database_labels,
            ks=KS,
            metric=result.metric,
            normalize=result.metric == "cosine",
        )
        rows.append(
            {
                "representation": result.name,
                "distance": result.metric,
                "dim": result.database.shape[1],
                **metric_columns(scores, ("map", "p1", "p10")),
                "ms / image": result.ms_per_image,
                "fit s": result.fit_s,
            }
        )
    return pd.DataFrame(rows).sort_values("mAP", ascending=False, ignore_index=True)


def binary_code_maps(
    query_features: np.ndarray,
    database_features: np.ndarray,
    query_labels: np.ndarray,
    database_labels: np.ndarray,
    bits_list: Sequence[int],
    seed: int = 0,
) -> pd.DataFrame:
    """mAP of the Hamming ranking of unsupervised codes: sign LSH and ITQ at each code length.

    The baselines of DLBHC's comparison (Lin et al. 2015, after Gong & Lazebnik 2011): both are fitted on
    the database features (ITQ: PCA + rotation; LSH: random hyperplanes through the mean), the whole
    database is ranked by Hamming distance, equal distances tied (`retrieval_metrics` levels).

    Returns:
        one row per bits: ``bits``, ``LSH mAP``, ``ITQ mAP``.
    """
    rows = []
    for bits in tqdm(bits_list, desc="LSH / ITQ codes", unit="length"):
        row = {"bits": bits}
        for name, encoder in (("LSH", SignLSH(bits, seed=seed)), ("ITQ", ITQ(bits, seed=seed))):
            encoder.fit(database_features)
            query_codes = pack_codes(encoder.encode(query_features))
            database_codes = pack_codes(encoder.encode(database_features))
            result = retrieval_metrics(
                None,
                query_labels,
                None,
                database_labels,
                levels_fn=lambda rows, q=query_codes, d=database_codes: hamming_distances(q[rows], d),
                n_levels=bits + 1,
                ks=KS,
            )
            row[f"{name} mAP"] = result["map"]
        rows.append(row)
    return pd.DataFrame(rows)


def with_dlbhc_maps(codes: pd.DataFrame, metrics: Mapping[str, float]) -> pd.DataFrame:
    """`codes` with a ``DLBHC mAP`` column: notebook 02's ``map_hamming_<bits>`` from `metrics` (the contents
    of ``metrics.json``; NaN where it did not run)."""
    values = [metrics.get(f"02_deep_binary_hashing/map_hamming_{int(bits)}", np.nan) for bits in codes["bits"]]
    return codes.assign(**{"DLBHC mAP": values})


def descriptor_figure(table: pd.DataFrame) -> plt.Figure:
    """mAP per representation (bars), classic descriptors and deep features in two colours."""
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.2))
    deep = table["representation"].str.match(r"(gem|dlbhc|triplet)")
    ax.barh(table["representation"], table["mAP"], color=np.where(deep, "tab:blue", "tab:orange"))
    for y, (value, ms) in enumerate(zip(table["mAP"], table["ms / image"])):
        ax.text(value, y, f" {value:.3f} ({ms:.2f} ms/img)", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mAP (whole database)")
    ax.set_xlim(0, min(1.0, table["mAP"].max() * 1.35))
    ax.set_title("Classic descriptors (orange) against deep features (blue)")
    figure.tight_layout()
    return figure


def codes_figure(codes: pd.DataFrame) -> plt.Figure:
    """mAP against code length: sign LSH, ITQ and (where recorded) DLBHC."""
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for column, marker in (("LSH mAP", "o"), ("ITQ mAP", "s"), ("DLBHC mAP", "^")):
        if column in codes and codes[column].notna().any():
            ax.plot(codes["bits"], codes[column], marker=marker, label=column.replace(" mAP", ""))
    ax.set_xscale("log", base=2)
    ax.set_xticks(codes["bits"], [str(b) for b in codes["bits"]])
    ax.set_xlabel("bits")
    ax.set_ylabel("mAP (Hamming ranking)")
    ax.set_title("Unsupervised binary codes against DLBHC's learned codes")
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure


def summary_metrics(
    descriptors: pd.DataFrame, codes: pd.DataFrame, qps: Mapping[int, Mapping[str, float]], mop: pd.DataFrame
) -> dict[str, float]:
    """The ``metrics.json`` values: ``map_<representation>`` (MOP-CNN's and its same-subset GeM's too),
    ``map_lsh_<bits>``, ``map_itq_<bits>``, ``qps_at_recall90_<index>`` / ``qps_at_recall95_<index>``
    (``_1m`` for the 10⁶-vector set); NaN values are left out."""
    rows = pd.concat([descriptors, mop], ignore_index=True)
    metrics = {f"map_{row['representation']}": row["mAP"] for _, row in rows.iterrows()}
    for _, row in codes.iterrows():
        metrics[f"map_lsh_{int(row['bits'])}"] = row["LSH mAP"]
        metrics[f"map_itq_{int(row['bits'])}"] = row["ITQ mAP"]
    for target, best in qps.items():
        metrics.update({f"qps_at_recall{target}_{name}": value for name, value in best.items()})
    return {key: float(value) for key, value in metrics.items() if np.isfinite(value)}


def summary_text(
    descriptors: pd.DataFrame,
    mop: pd.DataFrame,
    sweeps: Mapping[str, pd.DataFrame],
    codes: pd.DataFrame,
) -> str:
    """The closing paragraph: the numbers of this run, in words (`sweeps`: set name → `run_sweep` table)."""
    deep_rows = descriptors["representation"].str.match(r"(gem|dlbhc|triplet)")
    best_classic, best_deep = descriptors[~deep_rows].iloc[0], descriptors[deep_rows].iloc[0]
    lines = [
        f"Best classic descriptor: {best_classic['representation']} (mAP {best_classic['mAP']:.3f}, "
        f"{best_classic['ms / image']:.2f} ms/image); best deep representation: {best_deep['representation']} "
        f"(mAP {best_deep['mAP']:.3f}).",
        "MOP-CNN vs GeM on the same subset: "
        + ", ".join(f"{r['representation']} {r['mAP']:.3f}" for _, r in mop.iterrows())
        + ".",
    ]
    for name, sweep in sweeps.items():
        exact = sweep.loc[sweep["kind"] == "flat", "qps"].max()
        for target in (0.9, 0.95):
            best = sweep[sweep["recall"] >= target].sort_values("qps", ascending=False)
            if len(best):
                top = best.iloc[0]
                lines.append(
                    f"{name}: fastest at recall@10 >= {target}: {top['index']} ({top['search']}) "
                    f"{top['qps']:.0f} queries/s, {top['qps'] / exact:.1f}x exact search ({exact:.0f} q/s)."
                )
    row = codes.iloc[-1]
    dlbhc = row.get("DLBHC mAP", np.nan)
    learned = f"DLBHC {dlbhc:.3f}" if np.isfinite(dlbhc) else "DLBHC not recorded (run notebook 02)"
    lines.append(f"At {int(row['bits'])} bits: LSH mAP {row['LSH mAP']:.3f}, ITQ {row['ITQ mAP']:.3f}, {learned}.")
    return "\n".join(lines)


def summary_rows(summary: Mapping[str, float]) -> list[tuple[str, str, str | None]]:
    """Notebook 05's Summary rows for `cbir.report_tables.summary_table`, from its `summary_metrics`.

    Every representation's mAP, best first; sign-LSH and ITQ mAP at DLBHC's code lengths (its
    ``map_dlbhc<bits>`` keys) and at the longest recorded one; per recall target (0.9, 0.95) and set
    (deep features, the large overlapping-cluster set), the fastest index's queries/s beside exact search's. No paper
    reports these descriptors on this protocol: the only published cell is DLBHC's claim over LSH and ITQ.

    Args:
        summary: `summary_metrics`'s mapping (``map_<representation>``, ``map_lsh_<bits>``,
            ``map_itq_<bits>``, ``qps_at_recall<target>_<index>[_1m]``).
    Returns:
        ``(metric name, label, published)`` per row; no row for a set or target that no index reached.
        A row whose key `summary` lacks (LSH / ITQ at a length not swept) is left out by `summary_table`.
    """
    codes = ("map_lsh_", "map_itq_")
    maps = sorted((k for k in summary if k.startswith("map_") and not k.startswith(codes)), key=summary.get)
    dlbhc = [key for key in maps if re.fullmatch(r"map_dlbhc\d+", key)]
    rows = [(key, f"mAP, {key.removeprefix('map_')}", PUBLISHED_DLBHC if key in dlbhc else None) for key in maps[::-1]]
    recorded_bits = sorted({int(key.rsplit("_", 1)[1]) for key in summary if key.startswith("map_itq_")})
    for bits in sorted({*(int(key.removeprefix("map_dlbhc")) for key in dlbhc), *recorded_bits[-1:]}):
        rows += [(f"map_lsh_{bits}", f"mAP, sign-LSH {bits} bits", None)]
        rows += [(f"map_itq_{bits}", f"mAP, ITQ {bits} bits", None)]
    for target in (90, 95):
        for suffix, name in (("", "deep features"), ("_1m", "overlapping clusters")):
            prefix = f"qps_at_recall{target}_"
            indexes = {
                key.removeprefix(prefix).removesuffix(suffix): value
                for key, value in summary.items()
                if key.startswith(prefix) and key.endswith("_1m") == bool(suffix)
            }
            if indexes:
                fastest = max(indexes, key=indexes.get)
                label = f"queries/s at recall@10 ≥ {target / 100:g}, {name}"
                rows.append((f"{prefix}{fastest}{suffix}", f"{label}: fastest, {fastest}", None))
                if fastest != "exact":
                    rows.append((f"{prefix}exact{suffix}", f"{label}: exact search", None))
    return rows
