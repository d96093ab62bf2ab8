"""Lasso with d >> n: ``BilevelLassoCV`` against ``LassoCV(alphas=100, cv=5)`` (issue 18).

Synthetic designs ``n x d`` with ``k`` true features (uniform(1, 2) with random signs, noise
sd 3), several seeds. Both estimators get the same ``KFold(5, shuffle=True)`` split list.
Every chosen ``alpha`` is scored by the same scorer: the mean validation MSE of
``Lasso(alpha, tol=1e-8)`` refitted on each fold ("CV error"). "LassoCV best grid point
(refit)" is the lowest such error over LassoCV's ``alpha_`` and its two neighbours on
either side of its 100-point grid (LassoCV ranks its grid at ``tol=1e-4``, which may
misrank neighbours); "gap" is the relative excess of a method's CV error over it.

Usage::

    python benchmarks/bench_lasso_wide.py           # full run, writes results/lasso_wide.md
    python benchmarks/bench_lasso_wide.py --quick   # one small problem, prints only
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import Lasso, LassoCV  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

from _common import fmt, machine_info, markdown_table  # noqa: E402
from skbilevel import BilevelLassoCV  # noqa: E402

SIZES = [(600, 3000, 30), (600, 3000, 50), (1000, 10000, 50)]
SEEDS = (0, 1, 2)


def problem(n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:k] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
    return X, X @ coef + 3.0 * rng.standard_normal(n)


def cv_error(X, y, splits, alpha, cache):
    """Mean validation MSE of tight scikit-learn Lasso refits on the folds (memoised)."""
    if alpha not in cache:
        errs = []
        for tr, va in splits:
            fit = Lasso(alpha=alpha, tol=1e-8, max_iter=100000).fit(X[tr], y[tr])
            errs.append(np.mean((fit.predict(X[va]) - y[va]) ** 2))
        cache[alpha] = float(np.mean(errs))
    return cache[alpha]


def timed(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0, c0 = time.perf_counter(), time.process_time()
        est = fit()
        return est, time.perf_counter() - t0, time.process_time() - c0


def run(n, d, k, seed):
    X, y = problem(n, d, k, seed)
    splits = list(KFold(5, shuffle=True, random_state=seed).split(X))
    ref, t_ref, c_ref = timed(lambda: LassoCV(alphas=100, cv=splits).fit(X, y))
    ours, t_ours, c_ours = timed(lambda: BilevelLassoCV(cv=splits).fit(X, y))
    cache = {}
    i = int(np.argmin(np.abs(ref.alphas_ - ref.alpha_)))
    near = ref.alphas_[max(0, i - 2):i + 3]
    grid_best = min(cv_error(X, y, splits, float(a), cache) for a in near)
    out = []
    for name, est, wall, cpu in [("LassoCV(alphas=100)", ref, t_ref, c_ref),
                                 ("BilevelLassoCV()", ours, t_ours, c_ours)]:
        err = cv_error(X, y, splits, float(est.alpha_), cache)
        out.append([f"{n}x{d}, {k} true, seed {seed}", name, fmt(float(est.alpha_)),
                    fmt(err, ".6g"), fmt((err - grid_best) / grid_best, "+.2e"),
                    int(np.count_nonzero(est.coef_)), fmt(wall, ".2f"),
                    fmt(wall / t_ref, ".3f"), fmt(cpu, ".2f"), fmt(cpu / c_ref, ".3f")])
        print(" | ".join(map(str, out[-1])), flush=True)
    return out, t_ours / t_ref, c_ours / c_ref


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None, help="e.g. 600x3000x30,1000x10000x50")
    parser.add_argument("--seeds", default=None, help="e.g. 0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [(300, 1500, 20)] if args.quick else SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    seeds = (0,) if args.quick else SEEDS
    if args.seeds:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    rows, ratios, cpu_ratios = [], [], []
    for n, d, k in sizes:
        for seed in (seeds if n * d <= 2_000_000 else seeds[:1]):
            out, ratio, cpu_ratio = run(n, d, k, seed)
            rows += out
            ratios.append(ratio)
            cpu_ratios.append(cpu_ratio)
    header = ["problem", "method", "alpha", "CV error (refit)", "gap to LassoCV best grid",
              "support", "wall (s)", "ratio", "CPU (s)", "CPU ratio"]
    table = markdown_table(header, rows)
    print(table)
    summary = (f"Wall ratio: median {np.median(ratios):.3f}, max {np.max(ratios):.3f}; CPU "
               f"ratio: median {np.median(cpu_ratios):.3f}, max {np.max(cpu_ratios):.3f}.")
    print(summary)
    if args.quick or args.sizes or args.seeds:
        return
    info = ", ".join(f"{k}={v}" for k, v in machine_info().items())
    text = (f"# Lasso with d >> n: BilevelLassoCV vs LassoCV(alphas=100, cv=5)\n\n"
            f"Machine: {info}\n\nCommand: `python benchmarks/bench_lasso_wide.py`\n\n"
            f"{__doc__.split('Usage')[0].strip()}\n\nThe 1000 x 10000 problem runs one "
            f"seed (its LassoCV takes ~30 s). Ratio = wall / LassoCV's wall, one run each, "
            f"1 thread; CPU = process time (this shared 2-core machine runs other jobs: "
            f"the CPU ratio is the steadier one).\n\n{table}\n\n{summary}\n")
    (HERE / "results" / "lasso_wide.md").write_text(text)


if __name__ == "__main__":
    main()
