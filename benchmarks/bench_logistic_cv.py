"""``BilevelLogisticRegressionCV`` against ``LogisticRegressionCV`` on the same folds (issue 18).

Problems: L2 on ``make_classification(n, d=200, n_informative=30)`` for ``n`` from 10,000 to
100,000 (the issue's large-n case), and L1 on one-hot designs built by binning
``make_classification`` features into categories (``OneHotEncoder``; ~1,600 x 120, the size
of the issue's LIBSVM-style set, and larger with ``--l1-shapes``). The competitor is
``LogisticRegressionCV(Cs=20, cv=splits, scoring="neg_log_loss")`` (lbfgs for L2, liblinear
for L1, as a user would run it). Both get one
``StratifiedKFold(5, shuffle=True, random_state=0)`` split list.

CV log-loss: one scorer for both, scikit-learn refits at the chosen ``C`` on the shared
folds (``LogisticRegression`` lbfgs / saga at tight tolerance, unpenalised intercept, so
liblinear's penalised intercept does not enter). ``LogisticRegressionCV`` picks its grid's
best point by that criterion, so "gap" is ours relative to its grid's best (negative:
better). Each fit runs in a fresh process (``run_isolated``), one thread: the peak RSS
above the data is exact and neither competitor reuses the other's freed memory.

Usage::

    python benchmarks/bench_logistic_cv.py            # full run, writes results/logistic_cv.md
    python benchmarks/bench_logistic_cv.py --quick    # n <= 20k, prints only
    # the L1 rows only, several sizes and seeds (results/logistic_l1.md):
    python benchmarks/bench_logistic_cv.py --sizes --l1-seeds 0 1 2 \
        --l1-shapes 1600x12 4000x20 --out benchmarks/results/logistic_l1.md
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder  # noqa: E402

from _common import fmt, load_average, machine_info, markdown_table, run_isolated  # noqa: E402


# -- problems ------------------------------------------------------------------------------
def dense_problem(n, d=200, seed=0):
    return make_classification(n_samples=n, n_features=d, n_informative=30, random_state=seed)


def one_hot_problem(n=1600, n_features=12, n_bins=10, seed=0):
    """Categorical data: continuous features binned into ``n_bins`` quantile categories and
    one-hot encoded (``n_features * n_bins`` sparse 0/1 columns, a few rare)."""
    X, y = make_classification(n_samples=n, n_features=n_features, n_informative=6,
                               n_redundant=2, flip_y=0.05, random_state=seed)
    codes = KBinsDiscretizer(n_bins=n_bins, encode="ordinal", strategy="quantile",
                             quantile_method="averaged_inverted_cdf").fit_transform(X)
    return OneHotEncoder(sparse_output=False).fit_transform(codes), y


# -- fits (module level: they run in a fresh process) ---------------------------------------
def fit_one(kind, penalty, X, y, splits):
    """``(C, wall seconds, evaluations)`` of one tuner."""
    import torch
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", FutureWarning)
    if kind == "sklearn":
        model = LogisticRegressionCV(
            Cs=20, cv=splits, scoring="neg_log_loss", l1_ratios=(1.0 if penalty == "l1" else 0.0,),
            solver="liblinear" if penalty == "l1" else "lbfgs", max_iter=1000)
        start = time.perf_counter()
        model.fit(X, y)
        return float(np.ravel(model.C_)[0]), time.perf_counter() - start, 20
    from skbilevel import BilevelLogisticRegressionCV
    model = BilevelLogisticRegressionCV(penalty=penalty, cv=splits)
    start = time.perf_counter()
    model.fit(X, y)
    return float(model.C_), time.perf_counter() - start, len(model.Cs_)


def cv_log_loss(X, y, C, penalty, splits):
    """Mean validation log-loss of scikit-learn refits at ``C`` on ``splits``."""
    losses = []
    for train, val in splits:
        if penalty == "l1":
            model = LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-8,
                                       max_iter=100000)
        else:
            model = LogisticRegression(C=C, solver="lbfgs", tol=1e-10, max_iter=10000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[train], y[train])
        losses.append(log_loss(y[val], model.predict_proba(X[val]), labels=model.classes_))
    return float(np.mean(losses))


# -- the table -----------------------------------------------------------------------------
def run_problem(name, X, y, penalty):
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    results = {}
    for kind in ("sklearn", "bilevel"):
        (C, wall, n_eval), peak = run_isolated(fit_one, kind, penalty, X, y, splits)
        results[kind] = (C, wall, n_eval, peak, cv_log_loss(X, y, C, penalty, splits))
        print(f"{name:34s} {kind:8s} C={C:.4g} wall={wall:.2f}s loss={results[kind][4]:.6f}",
              flush=True)
    base_wall, base_loss = results["sklearn"][1], results["sklearn"][4]
    rows = []
    for kind, label in (("sklearn", "LogisticRegressionCV(Cs=20)"),
                        ("bilevel", "BilevelLogisticRegressionCV()")):
        C, wall, n_eval, peak, loss = results[kind]
        rows.append([name, label, fmt(C), n_eval, fmt(loss, ".6f"),
                     fmt((loss - base_loss) / base_loss, "+.2e"), f"{wall:.2f}",
                     f"{wall / base_wall:.3f}", f"{peak / 2 ** 20:.0f}"])
    return rows


HEADER = ["problem", "method", "C", "CV evaluations", "CV log-loss (refits)",
          "gap to grid's best", "wall (s)", "ratio", "peak RSS (MiB)"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=None,
                        help="n of the L2 problems (default 10k, 50k, 100k)")
    parser.add_argument("--l1-seeds", type=int, nargs="*", default=None,
                        help="seeds of the L1 one-hot problems (default 0 1)")
    parser.add_argument("--l1-shapes", nargs="*", default=None,
                        help="n x categorical features of the L1 one-hot problems, 10 "
                             "categories each (default 1600x12: 1600 x 120 columns)")
    parser.add_argument("--out", default=str(HERE / "results" / "logistic_cv.md"))
    args = parser.parse_args()
    sizes = args.sizes if args.sizes is not None else \
        (10_000, 20_000) if args.quick else (10_000, 50_000, 100_000)
    seeds = args.l1_seeds if args.l1_seeds is not None else (0,) if args.quick else (0, 1)
    rows = []
    for n in sizes:
        X, y = dense_problem(n)
        rows += run_problem(f"L2 make_classification n={n} d=200", X, y, "l2")
    shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.l1_shapes or ["1600x12"]]
    for n, n_categorical in shapes:
        for seed in seeds:
            X, y = one_hot_problem(n, n_categorical, seed=seed)
            rows += run_problem(f"L1 one-hot {n} x {X.shape[1]} (seed {seed})", X, y, "l1")
    table = markdown_table(HEADER, rows)
    print(table)
    if args.quick:
        return
    info = ", ".join(f"{k}={v}" for k, v in machine_info().items())
    text = f"""# Logistic CV tuning: BilevelLogisticRegressionCV vs LogisticRegressionCV (issue 18)

Machine: {info}

Command: `python benchmarks/bench_logistic_cv.py {" ".join(sys.argv[1:])}`; load average
at the end {load_average()} (2 cores shared with other jobs: wall times are noisy, ratios less).

One thread for torch and BLAS; every fit in a fresh process. Same
`StratifiedKFold(5, shuffle=True, random_state=0)` folds for both. CV log-loss: scikit-learn
refits at each chosen `C` on those folds (lbfgs at tol 1e-10 for L2, saga at 1e-8 for L1);
gap: relative to `LogisticRegressionCV`'s (its grid's best by that criterion; negative is
better). Ratio: wall time / `LogisticRegressionCV(Cs=20, cv=folds, scoring="neg_log_loss")`'s
(lbfgs for L2, liblinear for L1). Peak RSS: above the process's RSS before the fit.

{table}
"""
    out = Path(args.out)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
