"""Fast folds of the search's ridge adapter: validation-block moments against a Gram per fold.

``HypergradientSearchCV(Ridge())`` (no pipeline prefix, or one that learns nothing from the
data) builds every fold from the moments ``X^T X``, ``X^T y`` of its validation block, a
training fold's being the total minus the block, as ``BilevelRidgeCV`` does; with a fitted
prefix each fold's features differ and its Gram comes from its own rows. Both routes run in
one process on the same data and folds (``KFold(5, shuffle=True, random_state=0)``):

* "tuning": the adapter's part of one combination (fold data, engine folds, the screening
  grid and the hypergradient search), block moments vs a Gram per fold
  (``RidgeAdapter.folds(..., from_blocks=False)``, the route before this change);
* "search": the whole ``fit`` (tuning plus scikit-learn's scoring of every evaluated point
  and the refit): ``Ridge()`` against ``make_pipeline(<fitted identity>, Ridge())``, whose
  prefix forces the per-fold route, and ``GridSearchCV`` with 41 alphas for scale.

Both routes evaluate the same alphas (checked: the largest relative difference of the
paths is printed). Wall time is the best of ``--repeats`` runs.

Usage::

    python benchmarks/bench_search_ridge_folds.py             # n=20000, d=100
    python benchmarks/bench_search_ridge_folds.py --n 5000 --d 50 --repeats 1
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
import torch  # noqa: E402
from sklearn.datasets import make_regression  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakMemory, fmt, load_average, machine_info, markdown_table  # noqa: E402

from skbilevel import HypergradientSearchCV  # noqa: E402
from skbilevel._search import _transform_fold  # noqa: E402
from skbilevel._search_adapters._base import tune_path  # noqa: E402
from skbilevel._search_adapters._ridge import RidgeAdapter  # noqa: E402

BOUNDS = (1e-4, 1e4)


class _PerFold(RidgeAdapter):
    """The ridge adapter with every fold's Gram from its own rows."""

    def folds(self, estimator, data, objective, *, from_blocks=True):
        return super().folds(estimator, data, objective, from_blocks=False)


def timed(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        with PeakMemory() as mem:
            start = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - start)
    return best, mem.rss_peak / 2 ** 20, out


def tuning(adapter, X, y, folds):
    data = [_transform_fold(None, None, X, y, {}, tr, va) for tr, va in folds]
    return tune_path(adapter, Ridge(), data, *BOUNDS, "mse", max_iter=20, tol=1e-6)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "search_ridge_folds.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    X, y = make_regression(n_samples=args.n, n_features=args.d, n_informative=args.d // 2,
                           noise=30.0, random_state=0)
    cv = KFold(5, shuffle=True, random_state=0)
    folds = list(cv.split(X))
    load_before = load_average()

    rows, paths = [], {}
    for name, adapter in (("block moments", RidgeAdapter()), ("Gram per fold", _PerFold())):
        wall, mem, path = timed(lambda a=adapter: tuning(a, X, y, folds), args.repeats)
        paths[name] = np.array([p[0] for p in path])
        best = min(path, key=lambda p: p[1])
        rows.append(["tuning", name, fmt(best[0], ".6g"), fmt(best[1], ".10g"), len(path),
                     fmt(wall, ".3f"), fmt(mem, ".0f")])
    same = float(np.max(np.abs(paths["block moments"] / paths["Gram per fold"] - 1)))

    def search(estimator, key):
        return HypergradientSearchCV(estimator, {key: BOUNDS}, cv=cv,
                                     scoring="neg_mean_squared_error").fit(X, y)

    identity = StandardScaler(with_mean=False, with_std=False)  # fitted, so per fold
    for name, fn in (
            ("HypergradientSearchCV(Ridge()): block moments",
             lambda: search(Ridge(), "alpha")),
            ("HypergradientSearchCV(pipeline(fitted identity, Ridge())): Gram per fold",
             lambda: search(make_pipeline(identity, Ridge()), "ridge__alpha")),
            ("GridSearchCV(Ridge(), 41 alphas)",
             lambda: GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 4, 41)}, cv=cv,
                                  scoring="neg_mean_squared_error").fit(X, y))):
        wall, mem, found = timed(fn, args.repeats)
        alpha = next(iter(found.best_params_.values()))
        rows.append(["search", name, fmt(alpha, ".6g"), fmt(-found.best_score_, ".10g"),
                     len(found.cv_results_["params"]), fmt(wall, ".3f"), fmt(mem, ".0f")])

    def ratio(i, j):
        return float(rows[j][5]) / float(rows[i][5])

    header = ["stage", "route", "alpha", "CV MSE", "points", "wall (s)", "peak RSS (MiB)"]
    table = markdown_table(header, rows)
    summary = (f"Speed-up of block moments: tuning {ratio(0, 1):.2f}x, whole search "
               f"{ratio(2, 3):.2f}x (GridSearchCV / block-moment search: {ratio(2, 4):.2f}x). "
               f"Largest relative difference between the two routes' evaluated alphas: "
               f"{same:.2e}.")
    print(table)
    print(summary)
    info = ", ".join(f"{k}={v}" for k, v in machine_info().items())
    text = "\n\n".join([
        "# Search: ridge folds from block moments vs a Gram per fold",
        f"Machine: {info}", f"Load average before / after: {load_before} / {load_average()}",
        f"Command: `python benchmarks/bench_search_ridge_folds.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Data: make_regression n={args.n}, d={args.d}, KFold(5, shuffle, random_state=0); "
        f"bounds {BOUNDS}; wall = best of {args.repeats}; peak RSS sampled (a lower bound).",
        table, summary])
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
