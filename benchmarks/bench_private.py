"""Benchmark of ``PrivateHyperparamSearch``: the three private methods against non-private
tuning and a private fit at the default hyperparameter (issue 14).

Problems (the ``_private_problems`` module): ridge and logistic regression on features whose
column scales span a decade, with small rows (norm at most ``data_norm``, far below 1), so
that the default ``alpha=1`` / ``C=1`` over-shrinks and tuning matters; the script checks
and prints that the default is >= 20 % worse than non-private tuning on every dataset.

Every private row reports the test loss, its ratio to the non-private tuner (the price of
privacy, all of it), the chosen hyperparameter, the epsilon spent, the wall time and the
TUNING REGRET: the test loss of the chosen value over the best test loss of the *same*
private refit mechanism (same released noise) at any value of a fine grid. The refit is
recorded while the search runs (its noisy moments for ridge; its ledger, released Gram and
noise draw for the logistic majorize-minimize fit) and replayed on the grid; the replay
at the chosen value reproduces ``best_estimator_`` (checked). The "private fit, default"
row is the refit mechanism with the whole budget at ``alpha=1`` / ``C=1`` (the estimator
rejects a degenerate box ``(1, 1)``, so ``refit_ridge`` / ``refit_logistic`` of
``skbilevel._private_refit`` are called directly); its grid optimum is the ORACLE private
fit: the best any tuning could do with the whole budget, hence the unavoidable price of a
private fit.

Usage::

    python benchmarks/bench_private.py            # full run, writes results/private.md + png
    python benchmarks/bench_private.py --quick    # smaller sizes, prints only
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

from _common import machine_info  # noqa: E402
from _private_problems import (DELTA, Replay, Recorder, default_private_fit,  # noqa: E402
                               exact_cv_slope, make_problem, nonprivate_rows, test_loss)
from skbilevel import PrivateHyperparamSearch  # noqa: E402

METHODS = ("sufficient-statistics", "grid-path", "penalty", "random-search")


def private_rows(kind, prob, eps_list, seed, opts, out, trend):
    """Runs every private method at every epsilon on one dataset; appends result dicts."""
    X, y, Xt, yt, bounds = prob["X"], prob["y"], prob["Xt"], prob["yt"], prob["bounds"]
    replay = Replay(kind, prob)
    for eps in eps_list:
        fit = default_private_fit(kind, prob, eps, seed)
        losses = replay.grid_losses(fit["capture"])
        out.append(dict(method="private fit, default", eps=eps, loss=fit["loss"],
                        value=prob["default"], spent=fit["spent"], wall=fit["wall"],
                        regret=fit["loss"] / min(losses.min(), fit["loss"]),
                        oracle=min(losses.min(), fit["loss"])))
        for method in METHODS:
            if method not in opts.methods[kind]:
                continue
            if (method == "sufficient-statistics" and kind != "ridge") or (
                    method == "grid-path" and kind != "logistic"):
                continue
            if method == "penalty" and kind == "logistic" and (
                    prob["n"] > opts.penalty_logistic_n or eps not in opts.penalty_logistic_eps):
                continue
            name = "alpha" if kind == "ridge" else "C"
            est = prob["estimator"]
            with Recorder() as rec, warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                search = PrivateHyperparamSearch(
                    est, {name: bounds}, epsilon=eps, delta=DELTA, data_norm=prob["data_norm"],
                    y_bound=prob["y_bound"], method=method, max_iter=opts.max_iter[kind],
                    random_state=seed).fit(X, y)
                wall = time.perf_counter() - t0
            loss = test_loss(kind, search, Xt, yt)
            value = search.best_params_[name]
            losses, check = replay.grid_losses(rec.capture, chosen=value, search=search)
            best = min(losses.min(), loss)
            out.append(dict(method=method, eps=eps, loss=loss, value=value,
                            spent=search.epsilon_, wall=wall, regret=loss / best,
                            oracle=best, replay_error=check))
            if method == "penalty" and kind == "ridge":
                slope = exact_cv_slope(rec.capture["task"], np.log(value))
                trend.append(dict(n=prob["n"], eps=eps, seed=seed, grad=abs(slope)))


class Options:
    pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--kinds", default="ridge,logistic")
    args = parser.parse_args()
    torch.set_num_threads(1)
    opts = Options()
    if args.quick:
        sizes, eps_list, seeds = [2000, 10000], [1.0, 4.0], 2
        opts.penalty_logistic_n, opts.penalty_logistic_eps = 2000, (1.0,)
    else:
        sizes, eps_list, seeds = [10_000, 50_000, 200_000], [0.5, 1.0, 2.0, 4.0, 8.0], 3
        opts.penalty_logistic_n, opts.penalty_logistic_eps = 10_000, (1.0,)
    seeds = args.seeds or seeds
    opts.max_iter = {"ridge": 100, "logistic": 10}
    opts.methods = {"ridge": METHODS, "logistic": METHODS}
    results = defaultdict(list)  # (kind, n) -> list of dicts
    trend, checks = [], []
    t_start = time.perf_counter()
    for kind in args.kinds.split(","):
        for n in sizes:
            for seed in range(seeds):
                prob = make_problem(kind, n, 20, seed)
                rows = nonprivate_rows(kind, prob)
                checks.append((kind, n, seed, rows["default_ratio"], rows["tuned_value"]))
                print(f"[{kind} n={n} seed={seed}] non-private: default/tuned test loss "
                      f"{rows['default_ratio']:.3f} (>= 1.2 needed), tuned "
                      f"{rows['tuned_value']:.3g}", flush=True)
                for r in rows["rows"]:
                    results[(kind, n)].append(dict(r, eps=np.inf, seed=seed,
                                                   ref=rows["ref_loss"]))
                out = []
                private_rows(kind, prob, eps_list, seed, opts, out, trend)
                for r in out:
                    r.update(seed=seed, ref=rows["ref_loss"])
                    print(f"  {r['method']:<22} eps={r['eps']:<4g} loss/ref="
                          f"{r['loss'] / r['ref']:.4f} regret={r['regret']:.4f} "
                          f"value={r['value']:.3g} wall={r['wall']:.2f}", flush=True)
                results[(kind, n)] += out
    total = time.perf_counter() - t_start
    from _private_report import write_report
    text = write_report(results, trend, checks, eps_list, seeds, total, machine_info(),
                        " ".join(sys.argv[1:]), opts, HERE / "results",
                        save=not args.quick)
    print(text)


if __name__ == "__main__":
    main()
