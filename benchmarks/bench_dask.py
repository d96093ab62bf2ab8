"""``BilevelRidgeCV`` and ``HypergradientSearchCV(Ridge())`` on a ``dask.array`` (moments by
map-reduce on a LocalCluster) against the in-memory ``BilevelRidgeCV`` and scikit-learn's
``RidgeCV``.

The data are generated chunk by chunk on the workers (``map_blocks`` from a seed per
chunk): no process ever holds all of X. Rows: the dask path at n = 10^7 (and at the
in-memory n, on the same data as the in-memory fits), the in-memory ``BilevelRidgeCV`` and
``RidgeCV(alphas=np.logspace(-6, 6, 50))`` (efficient leave-one-out, its default) at the
largest n that fits comfortably here. Columns: wall time of ``fit``, peak memory (dask:
the workers' own high-water RSS, ``ru_maxrss`` read on each worker after the fit, on a
fresh cluster per fit, and its value at rest after the imports; in memory: this process's
RSS sampled during the fit, above its level before), the chosen alpha and the R^2 on 200k
fresh rows.

Usage::

    python benchmarks/bench_dask.py            # n = 10^7, writes results/dask.md
    python benchmarks/bench_dask.py --quick    # n = 10^6, prints only
    python benchmarks/bench_dask.py --search-only [--quick]  # the search's row at
                                               # n = 2 x 10^6 (2.5 x 10^5), prints only
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import PeakMemory, machine_info, markdown_table  # noqa: E402

D, CHUNK, SEED = 50, 250_000, 0
BETA = np.random.default_rng(SEED).standard_normal(D) * np.logspace(0, -2, D)
NOISE = 2.0


def _rows(seed, n_rows):
    rng = np.random.default_rng([SEED, int(seed)])
    X = rng.standard_normal((n_rows, D))
    return X, X @ BETA + NOISE * rng.standard_normal(n_rows)


def dask_data(n):
    """X (n, D) and y, each chunk made on a worker from its own seed."""
    import dask.array as da

    sizes = [CHUNK] * (n // CHUNK) + ([n % CHUNK] if n % CHUNK else [])
    seeds = da.from_array(np.arange(len(sizes)), chunks=1)

    def x_block(s, block_info=None):
        return _rows(s[0], block_info[None]["chunk-shape"][0])[0]

    def y_block(s, block_info=None):
        return _rows(s[0], block_info[None]["chunk-shape"][0])[1]

    X = seeds.map_blocks(x_block, chunks=(tuple(sizes), (D,)), new_axis=1, dtype=float)
    y = seeds.map_blocks(y_block, chunks=(tuple(sizes),), dtype=float)
    return X, y


def worker_peaks(client):
    """Each worker's high-water resident memory (MiB), as its own process reports it."""
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return sorted(client.run(peak).values())


def r2_on_fresh_rows(model):
    X, y = _rows(10**6, 200_000)
    return model.score(X, y)


def search():
    """``HypergradientSearchCV`` over ``Ridge``'s alpha, scored by scikit-learn (R^2)."""
    from sklearn.linear_model import Ridge

    from skbilevel import HypergradientSearchCV

    return HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e6)}, cv=5)


def alpha_of(model):
    return model.best_params_["alpha"] if hasattr(model, "best_params_") else model.alpha_


def run_dask(n, make=None):
    """Fit ``make()`` (default ``BilevelRidgeCV(cv=5)``) on a fresh 2-worker LocalCluster
    (fresh processes: their high-water marks are this fit's)."""
    from distributed import Client, LocalCluster

    from skbilevel import BilevelRidgeCV

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit="6GiB") as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("skbilevel"))  # the imports' memory is the baseline
        rest = worker_peaks(client)
        X, y = dask_data(n)
        start = time.perf_counter()
        model = (make or (lambda: BilevelRidgeCV(cv=5)))().fit(X, y)
        wall = time.perf_counter() - start
        return model, wall, worker_peaks(client), rest


def run_memory(estimator, X, y):
    with PeakMemory() as mem:
        start = time.perf_counter()
        estimator.fit(X, y)
        wall = time.perf_counter() - start
    return estimator, wall, mem.rss_peak / 2**20


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--search-only", action="store_true",
                        help="only HypergradientSearchCV on the dask array at the smaller n")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sklearn.linear_model import RidgeCV

    from skbilevel import BilevelRidgeCV

    n_big, n_mem = (10**6, 250_000) if args.quick else (10**7, 2_000_000)
    rows = []
    methods = [("HypergradientSearchCV(Ridge()), dask.array, 2 workers", search)]
    if not args.search_only:
        methods.insert(0, ("BilevelRidgeCV, dask.array, 2 workers", None))
    for n in (n_mem,) if args.search_only else (n_mem, n_big):
        for name, make in methods:
            model, wall, peaks, rest = run_dask(n, make)
            rows.append((name, n, wall, " / ".join(f"{p:.0f}" for p in peaks),
                         " / ".join(f"{p:.0f}" for p in rest), alpha_of(model),
                         r2_on_fresh_rows(model)))
            print(rows[-1], flush=True)
            if make is not None:
                print(f"  {len(model.cv_results_['params'])} points scored by scikit-learn, "
                      f"{model.n_iter_} evaluations", flush=True)
    if args.search_only:
        header = ["method", "n", "fit wall (s)", "peak RSS per worker (MiB)",
                  "worker RSS at rest (MiB)", "alpha", "R^2 on 200k fresh rows"]
        print(markdown_table(header, [(m, f"{n:.0e}", f"{w:.1f}", p, r, f"{a:.4g}",
                                       f"{s:.6f}") for m, n, w, p, r, a, s in rows]))
        return
    import dask

    X, y = dask_data(n_mem)
    with dask.config.set(scheduler="threads"):  # the in-memory competitors' copy, same rows
        X, y = X.compute(), y.compute()
    for name, est in (("BilevelRidgeCV, numpy, this process", BilevelRidgeCV(cv=5)),
                      ("RidgeCV (LOO, 50 alphas), this process",
                       RidgeCV(alphas=np.logspace(-6, 6, 50)))):
        model, wall, peak = run_memory(est, X, y)
        rows.append((name, n_mem, wall, f"{peak:.0f} (above rest)", "—", alpha_of(model),
                     r2_on_fresh_rows(model)))
        print(rows[-1], flush=True)
    header = ["method", "n", "fit wall (s)", "peak RSS per worker (MiB)",
              "worker RSS at rest (MiB)", "alpha", "R^2 on 200k fresh rows"]
    table = markdown_table(header, [(m, f"{n:.0e}", f"{w:.1f}", p, r, f"{a:.4g}", f"{s:.6f}")
                                    for m, n, w, p, r, a, s in rows])
    print(table)
    if not args.quick:
        info = machine_info()
        text = ("# BilevelRidgeCV and HypergradientSearchCV on a dask.array "
                "(benchmarks/bench_dask.py)\n\n"
                f"d = {D}, chunks of {CHUNK} rows generated on the workers, cv=5 (KFold), "
                "LocalCluster(n_workers=2, threads_per_worker=1, processes=True).\n\n"
                + table + "\n\nMachine: " + ", ".join(f"{k}={v}" for k, v in info.items())
                + "\n")
        out = Path(__file__).resolve().parent / "results" / "dask.md"
        out.write_text(text)
        print("wrote", out)


if __name__ == "__main__":
    main()
