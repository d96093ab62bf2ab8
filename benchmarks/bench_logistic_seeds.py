"""Large L2 logistic problems on several seeds: ``BilevelLogisticRegressionCV`` against
``LogisticRegressionCV(Cs=20)`` side by side in one process (issue 18).

The two estimators alternate ``--reps`` times on the same data and folds
(``StratifiedKFold(5, shuffle=True, random_state=0)``); the table reports the best wall
time of each, their ratio, the chosen ``C`` and the CV log-loss of scikit-learn refits at
it on those folds (``bench_logistic_cv.cv_log_loss``), with the gap relative to
``LogisticRegressionCV``'s choice (its grid's best). Problems: ``bench_sparse``'s
``logistic_synthetic(50000, 1000, seed)`` and ``bench_logistic_cv``'s
``make_classification(n, 200, n_informative=30)``.

Usage::

    python benchmarks/bench_logistic_seeds.py            # writes results/logistic_seeds.md
    python benchmarks/bench_logistic_seeds.py --quick    # n = 5,000, prints only
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from numpy._core.multiarray import _set_madvise_hugepage  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV  # noqa: E402
from sklearn.model_selection import StratifiedKFold  # noqa: E402

from _common import load_average, machine_info, markdown_table  # noqa: E402
from bench_logistic_cv import cv_log_loss, dense_problem  # noqa: E402
from bench_sparse import logistic_synthetic  # noqa: E402
from skbilevel import BilevelLogisticRegressionCV  # noqa: E402


def problems(quick):
    n_big = 5000 if quick else 50000
    for seed in (0, 1, 2):
        yield (f"logistic_synthetic n={n_big} d=1000 seed {seed}",
               logistic_synthetic(n_big, 1000, seed)[:2])
    for n, seed in ((n_big, 1), (n_big, 2), (n_big // 5, 1)):
        yield f"make_classification n={n} d=200 seed {seed}", dense_problem(n, 200, seed)


def compare(X, y, reps):
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    makers = {"LogisticRegressionCV(Cs=20)": lambda: LogisticRegressionCV(
                  Cs=20, cv=splits, scoring="neg_log_loss"),
              "BilevelLogisticRegressionCV()": lambda: BilevelLogisticRegressionCV(cv=splits)}
    walls, Cs = {k: [] for k in makers}, {}
    for _ in range(reps):
        for name, make in makers.items():
            start = time.perf_counter()
            est = make().fit(X, y)
            walls[name].append(time.perf_counter() - start)
            Cs[name] = float(np.ravel(est.C_)[0])
    losses = {k: cv_log_loss(X, y, C, "l2", splits) for k, C in Cs.items()}
    return {k: (min(walls[k]), Cs[k], losses[k]) for k in makers}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=FutureWarning)
    rows = []
    for label, (X, y) in problems(args.quick):
        # numpy's huge-page advice as numpy sets it, then off for both estimators (the
        # package's fits always run without it: results/measurements.md).
        for advice in (True, False):
            _set_madvise_hugepage(advice)
            result = compare(X, y, args.reps)
            (base, _, ref), = [v for k, v in result.items() if k.startswith("Logistic")]
            for name, (wall, C, loss) in result.items():
                rows.append([label, "numpy's default" if advice else "off", name, f"{C:.4g}",
                             f"{loss:.6f}", f"{(loss - ref) / ref:+.2e}", f"{wall:.2f}",
                             f"{wall / base:.3f}"])
                print(rows[-1], flush=True)
        _set_madvise_hugepage(True)
    header = ["problem", "huge-page advice", "method", "C", "CV log-loss (refits)",
              "gap to LogisticRegressionCV", "wall (s, best of reps)", "ratio"]
    text = ["# Large L2 logistic problems on several seeds (issue 18)", "",
            "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
            f"Command: `python benchmarks/bench_logistic_seeds.py "
            f"{' '.join(sys.argv[1:])}`; load average at the end {load_average()}.", "",
            "One process, one thread; the two estimators alternate on the same data and "
            "folds and the best wall time of each is kept. Ratio: wall / "
            "`LogisticRegressionCV(Cs=20)`'s (target <= 0.5). Huge-page advice: each "
            "problem runs with numpy's setting as numpy makes it, then with it off for "
            "both estimators (`NUMPY_MADVISE_HUGEPAGE=0`); on this machine fresh memory "
            "under the advice costs ~15x more (results/measurements.md), which "
            "`LogisticRegressionCV`'s fold copies pay and our fits (always run without "
            "it) do not.", "",
            markdown_table(header, rows)]
    print("\n".join(text))
    if not args.quick:
        (HERE / "results" / "logistic_seeds.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
