"""Every index type on 1 000 000 overlapping-cluster vectors: recall@10 against queries/s, as a ratio to exact search.

    python benchmarks/bench_indexes.py [--n 1000000] [--dim 128] [--queries 500] [--centres 10000] [--noise 1]

The data are `cbir.data.synthetic.clustered_unit_vectors`: 10 000 centres (ten times the IVF's √n lists)
and noise as large as the spread of the centres. The clusters overlap, so a candidate list of one cluster's
size does not hold the true neighbours and an index must earn its recall (an IVF of 1 000 lists probing one
finds 42 % of the true ten nearest neighbours). The sweep is notebook 05's
(`cbir.experiments.index_benchmark.default_sweep`, trees left out at this size); ground truth is exact
search. Searches run on one thread over the whole query batch (best of --repeats); builds use every
core. The peer is exact search itself (`cbir.retrieval.indexes` ``flat``: one BLAS product per block of
pre-normalised queries + partial sort, what a competent NumPy user writes).

For each index: the best queries/s among its settings with recall@10 >= 0.95, its ratio to exact search,
its build time and bytes per vector. The last line reads
``best_index=<name> qps_ratio_at_recall95=<ratio>`` (ratio > 1: faster than exact search). Results go to
``reports/benchmarks.json`` (`cbir.benchmark_records.record_benchmark`) unless --no-record or n is below 10⁶.
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
    parser.add_argument("--queries", type=int, default=500, help="queries (ground truth by exact search)")
    parser.add_argument("--centres", type=int, default=10000, help="cluster centres")
    parser.add_argument("--noise", type=float, default=1.0, help="noise scale relative to the centres' spread")
    parser.add_argument("--repeats", type=int, default=1, help="search runs per setting (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-record", action="store_true", help="do not write reports/benchmarks.json")
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
    name = reached.idxmax() if not reached.empty else "none"
    ratio = reached[name] / exact_qps if not reached.empty else 0.0
    if reached.empty:
        print("no index reached recall@10 >= 0.95", file=sys.stderr)
    if not args.no_record and args.n >= 1_000_000:
        from cbir.benchmark_records import record_benchmark

        data = f"{args.n:,} x {args.dim} unit vectors around {args.centres:,} overlapping centres (noise {args.noise})"
        summary = [
            f"Index sweep on {data}, {args.queries} queries, one thread: exact search {exact_qps:.0f} queries/s; "
            + (
                f"fastest at recall@10 >= 0.95: {name}, {reached[name]:.0f} queries/s ({ratio:.1f}x exact)."
                if not reached.empty
                else "no index reached recall@10 >= 0.95."
            ),
            "Queries/s at recall@10 >= 0.95 by index: "
            + ", ".join(f"{index} {qps:.0f}" for index, qps in reached.sort_values(ascending=False).items())
            + (f"; below 0.95 throughout: {', '.join(sorted(set(best.index) - set(reached.index) - {'exact'}))}."),
        ]
        results = {"exact_qps": exact_qps, "best_ratio_at_recall95": ratio}
        results |= {f"qps_at_recall95_{index}": float(qps) for index, qps in reached.items()}
        record_benchmark("bench_indexes", "python benchmarks/bench_indexes.py", results, summary)
    print(f"best_index={name} qps_ratio_at_recall95={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
