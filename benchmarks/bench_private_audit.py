"""Empirical privacy audits of the private mechanisms, with their noise scaled down step by step.

Each mechanism is calibrated to epsilon = 1 (delta = 1e-5) and audited by the threshold test
of :mod:`skbilevel.utils._audit` (a canary row at the bounds, ``--runs`` releases on each of
D and D + canary, Clopper-Pearson bounds at alpha = 0.05) with its noise multiplied by 1,
1/2, 1/4, 1/10, 1/30 and 0. Two checks per row: the proven ``eps_lb`` never exceeds the
accountant's epsilon *at that noise* (``eps_upper``: a larger value would be a bug in the
noise or in the accounting), and at factor 1 it stays below the claim; the rows at small
factors show the audit's power (it refutes the claim once the noise is gone).

The test suite (tests/private/test_audit.py) runs the two ends of this table with fewer
releases. Usage::

    python benchmarks/bench_private_audit.py              # 2000 runs a side, writes
                                                          # results/private_audit.md
    python benchmarks/bench_private_audit.py --runs 400   # quicker, prints only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from skbilevel._private_base import PrivateTask  # noqa: E402
from skbilevel._private_grid_path import GridPathMethod, path_event  # noqa: E402
from skbilevel._private_logistic import (fit_event, private_logistic_fit,  # noqa: E402
                                         release_grams)
from skbilevel._private_random_search import (RandomSearchMethod, calibrated_noise,  # noqa: E402
                                              search_event, train_ridge)
from skbilevel.engine.dp import (PrivacyLedger, calibrate, epsilon_of,  # noqa: E402
                                 gaussian_event)
from skbilevel.utils._audit import audit, canary_row, method_release, with_row  # noqa: E402

EPSILON, DELTA = 1.0, 1e-5
FACTORS = (1.0, 1 / 2, 1 / 4, 1 / 10, 1 / 30, 0.0)
SIGMA = calibrate(gaussian_event, EPSILON, DELTA)
SIGMA_FIT = calibrate(fit_event, EPSILON, DELTA)  # the logistic fit: Gram + 20 gradients
SIGMA_PATH = calibrate(lambda s: path_event(s, 4, 2, 3.0), EPSILON, DELTA)  # its default boost


def dataset(n=24, d=3, classes=False, seed=0):
    """Rows leaving feature 0 empty: the canary ``(e_0, +1)`` is all that feature sees."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, d))
    X[:, 1:] = rng.uniform(-1, 1, (n, d - 1)) / math.sqrt(d - 1)
    y = (rng.uniform(size=n) < 0.5).astype(float) if classes else rng.uniform(-1, 1, n)
    return X, y


def neighbours(X, y):
    return (X, y), with_row(X, y, *canary_row(X.shape[1], 1.0, 1.0))


def gaussian(factor):
    def release(data, rng):
        return float(data[0][:, 0] @ data[1] + rng.normal(0.0, factor * SIGMA))
    return release, neighbours(*dataset()), gaussian_event(factor * SIGMA)


def ridge_ssp(factor):
    def release(data, rng):
        return train_ridge(*data, 1.0, norm=1.0, y_bound=1.0, intercept=False,
                           sigma=factor * SIGMA, rng=rng)[0]
    return release, neighbours(*dataset()), gaussian_event(factor * SIGMA)


def logistic_fit(factor):
    """The noisy majorize-minimize fit at C=100 (little shrinkage: the canary moves w_0)."""
    def release(data, rng):
        X, y = data
        (gram,) = release_grams(X, [np.arange(len(y))], 1.0, SIGMA_FIT, PrivacyLedger(), rng,
                                phase="audit", noise_factor=factor)
        return private_logistic_fit(X, y, 100.0, gram, 1.0, SIGMA_FIT, rng,
                                    noise_factor=factor)[0]
    return release, neighbours(*dataset(classes=True)), fit_event(factor * SIGMA_FIT)


def _search(kind, factor, n_train_of, output):
    """Random search whose first ``n_train_of(n)`` rows train and the others validate."""
    method = type("Scaled", (RandomSearchMethod,), {"_noise_factor": factor})()
    name = "alpha" if kind == "ridge" else "C"

    def make_task(data):
        X, y = data
        n = X.shape[0]
        return PrivateTask(X, y, kind, 1.0, 1.0 if kind == "ridge" else None, False,
                           (math.log(1e-2), 0.0), lambda t: {name: math.exp(t)},
                           [(np.arange(n_train_of(n)), np.arange(n_train_of(n), n))])
    sigma = calibrated_noise(EPSILON, DELTA, 10.0, 1.0, kind)
    event = search_event(factor * sigma, 10.0, 1.0, kind)
    return method_release(method, make_task, EPSILON, DELTA, output), event


def search_score(factor):
    """Canary (last) in the validation rows; training rows ``(e_0, -1)`` make its loss ~4."""
    X, y = np.zeros((24, 3)), np.zeros(24)
    X[:12, 0], y[:12] = 1.0, -1.0
    release, event = _search("ridge", factor, lambda n: 12,
                             lambda t: t.history["noisy_score_sum"][0])
    return release, neighbours(X, y), event


def search_coef(factor, kind="ridge"):
    """Canary among the training rows (moved to row 12): ``w_0 = 0`` without it."""
    X, y = dataset(classes=kind == "logistic")
    without, (Xc, yc) = neighbours(X, y)
    order = np.r_[np.arange(12), X.shape[0], np.arange(12, X.shape[0])]
    release, event = _search(kind, factor, lambda n: 12 if n == X.shape[0] else 13,
                             lambda t: t.history["coef"][0])
    return release, (without, (Xc[order], yc[order])), event


def grid_path_score(factor):
    """Grid path: training rows ``(e_0, 0)``, the canary ``(e_0, 1)`` validates; output the
    smallest released score."""
    X, y = np.zeros((24, 3)), np.zeros(24)
    X[:12, 0] = 1.0
    method = type("Scaled", (GridPathMethod,), {"_noise_factor": factor})(n_values=4,
                                                                          steps_per_value=2)

    def make_task(data):
        Xd, yd = data
        return PrivateTask(Xd, yd, "logistic", 1.0, None, False, (math.log(1e-1), math.log(1e2)),
                           lambda t: {"C": math.exp(t)},
                           [(np.arange(12), np.arange(12, Xd.shape[0]))])
    release = method_release(method, make_task, EPSILON, DELTA,
                             lambda t: min(t.history["noisy_score_sum"]))
    return release, neighbours(X, y), path_event(factor * SIGMA_PATH, 4, 2, 3.0)


MECHANISMS = {
    "gaussian (sum x0*y)": gaussian,
    "ridge SSP, w0": ridge_ssp,
    "logistic majorize-minimize fit, w0": logistic_fit,
    "grid path logistic, score (val canary)": grid_path_score,
    "random search ridge, score (val canary)": search_score,
    "random search ridge, w0 (train canary)": search_coef,
    "random search logistic, w0 (train canary)": lambda f: search_coef(f, "logistic"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="releases per dataset")
    args = parser.parse_args(argv)
    header = ("| mechanism | noise factor | eps_upper | eps_lb | TP | FN | FP | TN | ok | s |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    print(header, flush=True)
    bad = 0
    for name, build in MECHANISMS.items():
        for factor in FACTORS:
            release, (without, with_canary), event = build(factor)
            upper = epsilon_of(event, DELTA) if factor > 0 else math.inf
            start = time.perf_counter()
            r = audit(release, without, with_canary, n_runs=args.runs, delta=DELTA, seed=1)
            ok = r.epsilon_lb <= upper and (factor < 1 or r.epsilon_lb < EPSILON)
            bad += not ok
            line = (f"| {name} | {factor:.3g} | {upper:.3g} | {r.epsilon_lb:.3f} | {r.tp} | "
                    f"{r.fn} | {r.fp} | {r.tn} | {'yes' if ok else 'NO'} | "
                    f"{time.perf_counter() - start:.1f} |")
            lines.append(line)
            print(line, flush=True)
    if args.runs >= 2000:
        out = HERE / "results" / "private_audit.md"
        out.write_text(f"# Privacy audits (epsilon = {EPSILON}, delta = {DELTA}, "
                       f"{args.runs} runs a side, alpha = 0.05)\n\n"
                       + "\n".join(lines) + "\n")
        print(f"wrote {out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
