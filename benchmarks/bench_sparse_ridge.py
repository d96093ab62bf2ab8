"""Sparse ridge: ``BilevelRidgeCV`` against ``RidgeCV(alphas=np.logspace(-6, 6, 50), cv=5)``.

Both run in one process on the same CSR data and the same folds
(``KFold(5, shuffle=True, random_state=seed)``), for several seeds and densities. The design
is ``problem_c`` of ``bench_ridge.py`` (N(0, 1) entries at the given density, 5 % of the
features relevant with N(0, 1) coefficients, intercept 3, noise sd 0.5), drawn per seed.

Columns: wall time (and its ratio to ``RidgeCV``), the chosen ``alpha``, the CV error of
each choice scored by scikit-learn refits on the same folds (``Ridge(alpha,
solver="sparse_cg", tol=1e-10)`` per training fold, mean validation MSE), and its relative
gap to ``RidgeCV``'s best grid point: the best, by those same refits, of the grid point
``RidgeCV`` chose and its two neighbours on the grid (``RidgeCV`` ranks by R^2, whose best
can differ from the best MSE's by a grid step). Peak memory is the RSS above the start of
each fit (a lower bound in a long-lived process; see ``_common.PeakMemory``).

Targets (issue 18): wall ratio <= 0.5 and gap <= 5e-4.

Usage::

    python benchmarks/bench_sparse_ridge.py                      # n=50000, d=20000
    python benchmarks/bench_sparse_ridge.py --n 5000 --d 2000 --seeds 0   # smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import Ridge, RidgeCV  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakMemory, fmt, load_average, machine_info, markdown_table  # noqa: E402

from skbilevel import BilevelRidgeCV  # noqa: E402

ALPHAS = np.logspace(-6, 6, 50)


def make_problem(n, d, density, seed):
    """Sparse CSR design and targets, as ``problem_c`` of ``bench_ridge.py``."""
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    coef = np.zeros(d)
    rel = rng.choice(d, int(0.05 * d), replace=False)
    coef[rel] = rng.standard_normal(rel.size)
    return X, X @ coef + 3.0 + 0.5 * rng.standard_normal(n)


def refit_cv_mse(X, y, splits, alpha):
    """Mean validation MSE of scikit-learn's ``Ridge(alpha)`` fitted on each training fold."""
    errors = []
    for train, val in splits:
        ridge = Ridge(alpha=alpha, solver="sparse_cg", tol=1e-10).fit(X[train], y[train])
        errors.append(np.mean((y[val] - ridge.predict(X[val])) ** 2))
    return float(np.mean(errors))


def timed(build, X, y):
    with PeakMemory() as mem:
        start = time.perf_counter()
        est = build().fit(X, y)
        wall = time.perf_counter() - start
    return est, wall, mem.rss_peak / 2 ** 20


def run(n, d, density, seed):
    X, y = make_problem(n, d, density, seed)
    splits = list(KFold(5, shuffle=True, random_state=seed).split(X))
    ref, ref_wall, ref_mem = timed(lambda: RidgeCV(alphas=ALPHAS, cv=splits), X, y)
    ours, wall, mem = timed(lambda: BilevelRidgeCV(cv=splits), X, y)
    k = int(np.argmin(np.abs(np.log(ALPHAS / ref.alpha_))))
    grid = {ALPHAS[j]: refit_cv_mse(X, y, splits, ALPHAS[j])
            for j in range(max(k - 1, 0), min(k + 2, len(ALPHAS)))}
    best = min(grid.values())
    cv_ours = refit_cv_mse(X, y, splits, ours.alpha_)
    h = ours.history_
    phases = {p: int(np.sum(h["phase"] == p)) for p in ("grid", "optimize")}
    rows = [[f"{density:g}", seed, "RidgeCV(cv=5), 50 alphas", fmt(ref.alpha_),
             fmt(grid[ALPHAS[k]], ".6g"),
             fmt(grid[ALPHAS[k]] / best - 1, ".1e"), fmt(ref_wall, ".2f"), "1.000",
             fmt(ref_mem, ".0f"), "—"],
            [f"{density:g}", seed, "BilevelRidgeCV()", fmt(ours.alpha_), fmt(cv_ours, ".6g"),
             fmt(cv_ours / best - 1, ".1e"), fmt(wall, ".2f"), fmt(wall / ref_wall, ".3f"),
             fmt(mem, ".0f"),
             f"{phases['grid']} / {phases['optimize']}, {int(h['n_matvec'].sum())}"]]
    return rows, X.nnz, wall / ref_wall, cv_ours / best - 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50000)
    parser.add_argument("--d", type=int, default=20000)
    parser.add_argument("--densities", default="0.001,0.005")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output", default=None, help="markdown file (default: "
                        "benchmarks/results/sparse_ridge.md for the default sizes)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    # Warm up both (imports, torch's first calls, scipy's sparse kernels) on a small
    # problem, so that the first timed seed does not pay them.
    X, y = make_problem(500, 200, 0.05, 0)
    RidgeCV(alphas=ALPHAS, cv=5).fit(X, y)
    BilevelRidgeCV(cv=5).fit(X, y)
    header = ["density", "seed", "method", "alpha", "CV MSE (sklearn refits)",
              "gap to best grid point", "wall (s)", "ratio", "peak RSS Δ (MiB)",
              "grid / optimize evals, Hessian products"]
    rows, verdicts = [], []
    for density in (float(s) for s in args.densities.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            load = load_average()
            out, nnz, ratio, gap = run(args.n, args.d, density, seed)
            rows += out
            verdicts.append((density, seed, nnz, ratio, gap, load))
            print(markdown_table(header, out), flush=True)
    lines = ["# Sparse ridge: BilevelRidgeCV vs RidgeCV(cv=5, 50 alphas)", "",
             "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
             f"Command: `python benchmarks/bench_sparse_ridge.py {' '.join(argv or sys.argv[1:])}`",
             "", __doc__.split("\n\n", 1)[1].split("Usage::")[0].strip(), "",
             f"n={args.n}, d={args.d}; threads: 1 for torch and BLAS.", "",
             markdown_table(header, rows), "", "Targets (ratio <= 0.5, gap <= 5e-4):", ""]
    for density, seed, nnz, ratio, gap, load in verdicts:
        ok = ratio <= 0.5 and gap <= 5e-4
        lines.append(f"- density {density:g} ({nnz} nnz), seed {seed}: ratio {ratio:.3f}, "
                     f"gap {gap:.1e}: {'PASS' if ok else 'FAIL'} (load before: {load})")
    text = "\n".join(lines) + "\n"
    print(text)
    output = args.output or (str(Path(__file__).resolve().parent / "results" /
                                 "sparse_ridge.md")
                             if (args.n, args.d) == (50000, 20000) else None)
    if output:
        Path(output).write_text(text)


if __name__ == "__main__":
    main()
