"""Benchmark of ``HyperCleaningClassifier`` (issue 15) against the scikit-learn baselines
and cleanlab, on the issue's protocol.

Digits: bundled ``load_digits``, X/16, 60/10/30 stratified split (train 1078, trusted 179,
test 540), exactly ``p n`` training labels moved to a uniformly random *other* class (p =
0.2, 0.4, 0.6) or to the next class (``pair``: asymmetric), ``LogisticRegression(C=1)`` as
the final estimator, seeds 0-4. Rows: oracle, noisy, trusted only, noisy + trusted,
cleanlab ``CleanLearning`` and "drop flagged, refit with trusted" (when cleanlab is
importable), and every cleaning method with the linear inner model, each refitted on the
training set alone ("-") or with the trusted set appended ("+trusted"), with the learned
weights as they are (``confidence=None``) or turned into the cross-validated probability
of the given label (``confidence="cv"``). Detection: F1 of ``label_issues_`` (quality <
0.5) and AUROC of ``-label_quality_`` for the flipped samples. Also pgd-cqa with the MLP
inner model on one setting, and a large synthetic problem (n = 50,000).

The ``-`` / ``+trusted`` and ``confidence`` variants of one method share one bilevel run:
the weights do not depend on them; the refits, the cross-validation and the neighbour
vote are redone here with the estimator's own helpers (``cv_quality``, ``vote_weights``;
checked once against ``fit(confidence="cv")``).

Usage::

    python benchmarks/bench_cleaning.py           # full, writes results/cleaning.md + png
    python benchmarks/bench_cleaning.py --quick   # one seed, fewer rows, prints only
    # a subset, printed only (never writes results/): some methods, settings and seeds
    python benchmarks/bench_cleaning.py --methods reweight,pgd-cqa:qp1,pgd-cqa:qp2 \
        --settings p=0.2,p=0.4 --seeds 5 --json rows.json
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# One BLAS thread: on a loaded machine two threads made a 1078 x 64 logistic fit 100x slower.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
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
from sklearn.utils import check_random_state  # noqa: E402

from _cleaning_problems import (baseline_rows, blobs_split, cleanlab_rows,  # noqa: E402
                                detection, digits_split, final_estimator, refit)
from _cleaning_report import write_report  # noqa: E402
from _common import PeakMemory, machine_info, run_isolated  # noqa: E402
from skbilevel import HyperCleaningClassifier  # noqa: E402
from skbilevel._cleaning_data import cv_quality, refit_weights, vote_weights  # noqa: E402


def cleaning_rows(data, method, variant, max_iter, seed, model="linear", derived=True):
    """One bilevel run; its rows (refit alone / +trusted, weights / cv confidence)."""
    # The raw weights and the refit on the training set alone; the other rows derive.
    est = HyperCleaningClassifier(final_estimator(), model=model, method=method,
                                  variant=variant or "qp1", max_iter=max_iter,
                                  confidence=None, refit_with_val=False, random_state=seed)
    with PeakMemory() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(data["X"], data["y"], X_val=data["X_val"], y_val=data["y_val"])
        wall = time.perf_counter() - t0
    name = method + (f" {variant}" if method == "pgd-cqa" else "") + \
        (f" ({model})" if model != "linear" else "")
    w = est.bilevel_weight_
    common = dict(iters=est.n_iter_, mem=mem.rss_peak)
    f1, auroc = detection(data["flipped"], w, w < est.threshold)
    rows = [dict(common, method=name, refit="-", acc=float(est.score(data["X_test"],
                                                                      data["y_test"])),
                 f1=f1, auroc=auroc, wall=wall)]
    if not derived:
        return rows
    # The refits use the estimator's rule (refit_threshold), as est.score's row does.
    rows.append(dict(rows[0], refit="+trusted",
                     acc=refit(data, refit_weights(w, est.refit_threshold), with_val=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        q = cv_quality(final_estimator(), data["X"], data["y"], data["X_val"],
                       data["y_val"], w, np.ones(len(w)), est.n_folds,
                       check_random_state(seed).randint(2**31 - 1), est.cv_rounds,
                       est.refit_threshold)
        # The estimator's neighbour vote (n_neighbors) on the cv quality, its own helper.
        w_cv, voted = vote_weights(q, est.refit_threshold, np.ones(len(q)), data["X"],
                                   data["y"], data["X_val"], data["y_val"], est.n_neighbors)
        wall_cv = wall + time.perf_counter() - t0
    f1, auroc = detection(data["flipped"], q, (q < est.threshold) | voted)
    for with_val in (False, True):
        rows.append(dict(common, method=name + " + cv", refit="+trusted" if with_val else "-",
                         acc=refit(data, w_cv, with_val), f1=f1, auroc=auroc, wall=wall_cv))
    return rows


def isolated_rows(*args, **kwargs):
    """:func:`cleaning_rows` in a fresh process, with its exact peak memory (the large
    problem: one bilevel fit per process, so no method reuses another's freed memory)."""
    torch.set_num_threads(1)
    return cleaning_rows(*args, **kwargs)


def check_confidence(data, seed):
    """The derived cv rows are the estimator's ``confidence="cv"``: max abs difference of
    the quality and of the refit weights (with the neighbour vote)."""
    kw = dict(method="reweight", max_iter=20, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = HyperCleaningClassifier(final_estimator(), confidence="cv", **kw).fit(
            data["X"], data["y"], X_val=data["X_val"], y_val=data["y_val"])
        q = cv_quality(final_estimator(), data["X"], data["y"], data["X_val"],
                       data["y_val"], est.bilevel_weight_, np.ones(len(data["y"])),
                       est.n_folds, check_random_state(seed).randint(2**31 - 1),
                       est.cv_rounds, est.refit_threshold)
        w, _ = vote_weights(q, est.refit_threshold, np.ones(len(q)), data["X"], data["y"],
                            data["X_val"], data["y_val"], est.n_neighbors)
    return float(max(np.abs(est.label_quality_ - q).max(),
                     np.abs(est.sample_weight_ - w).max()))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--methods", help="comma-separated subset of the cleaning rows, "
                        "e.g. reweight,pgd-cqa:qp1 (digits settings only, nothing written)")
    parser.add_argument("--settings", help="comma-separated subset, e.g. p=0.2,p=0.4")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--json", help="also dump the digits rows to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    all_methods = [("reweight", None, 100), ("pgd-cqa", "qp1", 100), ("pgd-cqa", "qp2", 100),
                   ("implicit", None, 10), ("penalty", None, 30)]
    subset = bool(args.methods or args.settings or args.seeds)
    if args.methods:
        wanted = args.methods.split(",")
        all_methods = [m for m in all_methods
                       if (m[0] if m[1] is None else f"{m[0]}:{m[1]}") in wanted
                       or m[0] in wanted]
    if args.quick:
        settings = [("p=0.2", "uniform", 0.2, all_methods)]
        seeds, mlp_seeds, large = [0], [0], dict(n=5000, iters={"reweight": 10,
                                                              "pgd-cqa": 10, "penalty": 3,
                                                              "implicit": 2})
    else:
        settings = [("p=0.2", "uniform", 0.2, all_methods),
                    ("p=0.4", "uniform", 0.4, all_methods),
                    ("p=0.6", "uniform", 0.6, all_methods),
                    ("pair p=0.3", "pair", 0.3, all_methods)]
        seeds, mlp_seeds, large = range(5), range(3), dict(
            n=50_000, iters={"reweight": 100, "pgd-cqa": 100, "penalty": 20, "implicit": 5})
    if args.settings:
        settings = [s for s in settings if s[0] in args.settings.split(",")]
    if args.seeds:
        seeds = range(args.seeds)
    results = defaultdict(list)  # setting -> result dicts
    t_start = time.perf_counter()
    for label, kind, rate, methods in settings:
        for seed in seeds:
            data = digits_split(seed, kind, rate)
            out = [dict(method=name, refit="", acc=acc, seed=seed)
                   for name, acc in baseline_rows(data)]
            out += cleanlab_rows(data, seed)
            for method, variant, max_iter in methods:
                out += cleaning_rows(data, method, variant, max_iter, seed)
            for r in out:
                r["seed"] = seed
                print(f"[{label} seed={seed}] {r['method']:<24} {r['refit']:<9} "
                      f"acc={r['acc']:.3f} auroc={r.get('auroc') or float('nan'):.3f} "
                      f"wall={r.get('wall') or 0:.1f}s", flush=True)
            results[label] += out
    if args.json:
        import json
        Path(args.json).write_text(json.dumps(results))
    if subset:
        from _cleaning_report import setting_table
        for label, rows in results.items():
            print(f"## {label}\n\n{setting_table(rows)}\n")
        return
    mlp = []
    for seed in mlp_seeds:
        data = digits_split(seed, "uniform", 0.4)
        mlp += cleaning_rows(data, "pgd-cqa", "qp1", 100, seed, model="mlp")
        print(f"[mlp seed={seed}] acc={mlp[-4]['acc']:.3f} auroc={mlp[-4]['auroc']:.3f}",
              flush=True)
    data = blobs_split(0, n=large["n"])
    big = []
    for method, variant, _ in all_methods:
        rows, peak = run_isolated(isolated_rows, data, method, variant,
                                  large["iters"][method], 0, derived=False)
        big += [dict(r, mem=peak) for r in rows]
        print(f"[large n={large['n']}] {big[-1]['method']} wall={big[-1]['wall']:.1f}s "
              f"mem={big[-1]['mem'] / 2**20:.0f} MiB", flush=True)
    check = check_confidence(digits_split(0, "uniform", 0.2), 0)
    total = time.perf_counter() - t_start
    text = write_report(results, mlp, big, large, check, list(seeds), total,
                        machine_info(), " ".join(sys.argv[1:]), HERE / "results",
                        save=not args.quick)
    print(text)


if __name__ == "__main__":
    main()
