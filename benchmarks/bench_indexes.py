"""Every index type on 1 000 000 overlapping-cluster vectors: recall@10 against queries/s, as a ratio to exact search.

    python benchmarks/bench_indexes.py [--n 1000000] [--dim 128] [--queries 1000] [--centres 1000] [--noise 1.5]

The data are `cbir.data.synthetic.clustered_unit_vectors` with noise 1.5 times the spread of
the cluster centres: the clusters overlap, so a candidate list of one cluster's size does not hold the
true neighbours and an index must earn its recall. The sweep is notebook 05's
(`cbir.experiments.index_benchmark.default_sweep`, trees left out at this size); ground truth is exact
search. Searches run on one thread over the whole query batch (best of --repeats); builds use every
core. The peer is exact search itself (`cbir.retrieval.indexes` ``flat``: one BLAS product per block of
pre-normalised queries + partial sort, what a competent NumPy user writes).

For each index: the best queries/s among its settings with recall@10 >= 0.95, its ratio to exact search,
its build time and bytes per vector. The last line reads
``best_index=<name> qps_ratio_at_recall95=<ratio>`` (ratio > 1: faster than exact search).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cbir.data.synthetic import clustered_unit_vectors  # noqa: E402
from cbir.experiments.index_benchmark import (  # noqa: E402
    build_table,
    default_sweep,
    ground_truth,
    qps_at_recall,
    run_sweep,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="database vectors")
    parser.add_argument("--dim", type=int, default=128, help="dimension")
    parser.add_argument("--queries", type=int, default=1000, help="queries (ground truth by exact search)")
    parser.add_argument("--centres", type=int, default=1000, help="cluster centres")
    parser.add_argument("--noise", type=float, default=1.5, help="noise scale relative to the centres' spread")
    parser.add_argument("--repeats", type=int, default=1, help="search runs per setting (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    vectors, _ = clustered_unit_vectors(args.n + args.queries, args.dim, args.centres, args.noise, args.seed)
    database, queries = vectors[: args.n], vectors[args.n :]
    truth = ground_truth(database, queries, k=10)
    sweep = default_sweep(args.n, args.dim, seed=args.seed, large=True)
    results = run_sweep(database, queries, truth, sweep, k=10, repeats=args.repeats)
    exact_qps = float(results.loc[results["kind"] == "flat", "qps"].max())
    best = qps_at_recall(results, 0.95)
    table = build_table(results).assign(qps_at_recall95=best, ratio_to_exact=best / exact_qps)
    print(
        f"{args.n:,} x {args.dim} vectors, {args.queries} queries, noise {args.noise}; exact search {exact_qps:.0f} q/s"
    )
    print(table.to_string(float_format=lambda value: f"{value:.3g}"))
    reached = best.drop("exact", errors="ignore").dropna()
    if reached.empty:
        print("no index reached recall@10 >= 0.95", file=sys.stderr)
        print("best_index=none qps_ratio_at_recall95=0")
        return 0
    name = reached.idxmax()
    print(f"best_index={name} qps_ratio_at_recall95={reached[name] / exact_qps:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
