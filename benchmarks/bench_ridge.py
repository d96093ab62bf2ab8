"""Benchmark of ``BilevelRidgeCV`` against the ridge tuners of scikit-learn, himalaya and bbai.

All competitors run in one process on the same folds (one ``KFold(5, shuffle=True,
random_state=0)`` split list, passed as ``cv=`` to everyone that accepts it). Every row is
scored by the same code (``benchmarks/_common.py``) from the penalties the competitor chose:

* CV MSE: ridge with those (per-feature) penalties on the shared folds, solved exactly (dense)
  or by scipy CG to 1e-10 (sparse), so no estimator's own CV bookkeeping enters the table;
* test MSE on a held-out split; on (b2) the excess risk over the known noise variance;
* wall time of ``fit``, and its ratio to ``RidgeCV(alphas=np.logspace(-6, 6, 50), cv=5)``;
* peak memory: resident set size sampled every 5 ms during ``fit``, minus the RSS before it
  (whole process: numpy, scipy, BLAS and torch's allocator alike);
* "refit check": relative distance between the competitor's ``coef_`` and a ridge refitted
  on the training set with the penalties read off it, which validates that reading.

Usage::

    python benchmarks/bench_ridge.py                 # full run, writes results/ridge.md
    python benchmarks/bench_ridge.py --quick         # smoke run on small sizes
    python benchmarks/bench_ridge.py --problems b1,c
"""

from __future__ import annotations

import argparse
import atexit
import sys
import time
import traceback
import warnings
from pathlib import Path

# OpenMP threads that spin while waiting make torch's small LAPACK calls (eigh, cholesky of a
# few hundred rows) 10-250x slower as soon as another process shares the CPUs (measured here:
# eigh of a 500 x 500 matrix 4-10 s with 2 spinning threads, 0.08 s passive). Must be set
# before torch (and its OpenMP runtime) is imported; an explicit setting is respected.
import os  # noqa: E402,I001
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root, for an uninstalled checkout
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import ARDRegression, Ridge, RidgeCV  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from _common import (DenseRidgeCV, PeakMemory, SparseRidgeCV, cpu_seconds, fmt,  # noqa: E402
                     load_average, machine_info, markdown_table, sparse_ridge_refit)
from skbilevel import BilevelRidgeCV  # noqa: E402
from skbilevel._demo import load_demo_data  # noqa: E402

GRID = np.logspace(-6, 6, 50)
BASELINE = "RidgeCV(cv=5), 50 alphas"
AUTO_SPARSE = "BilevelRidgeCV() [auto = cg]"
SOLVER_ROWS = {k: f"BilevelRidgeCV(linear_solver='{k}', optimizer='lbfgs')"
               for k in ("recycled_minres", "minres", "cg")}
N_GROUPS = 10  # feature blocks of himalaya's GroupRidgeCV
HIMALAYA_N_ITER = 20  # random-search points of GroupRidgeCV
HIMALAYA_MAX_FLOPS = 2e12


# ---------------------------------------------------------------------------------------
# problems


def problem_a(quick):
    X_train, X_test, y_train, y_test = load_demo_data(random_state=0)
    return dict(key="a", title="(a) diabetes, degree-2 polynomial features, standardised",
                X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)


def _gaussian(rng, n, d, coef, intercept, sigma):
    X = rng.standard_normal((n, d))
    return X, X @ coef + intercept + sigma * rng.standard_normal(n)


def problem_b1(quick):
    n, d, n_test, sigma = (4000, 200, 2000, 10.0) if quick else (20000, 500, 5000, 10.0)
    rng = np.random.default_rng(1)
    coef = rng.standard_normal(d)
    X, y = _gaussian(rng, n + n_test, d, coef, 3.0, sigma)
    return dict(key="b1", title=f"(b1) speed: Gaussian X, n={n}, d={d}, dense coef ~ N(0, 1), "
                                f"noise sd {sigma:g}",
                X_train=X[:n], y_train=y[:n], X_test=X[n:], y_test=y[n:],
                coef=coef, intercept=3.0, sigma2=sigma ** 2)


def problem_b2(quick):
    n, d, n_rel, n_test, sigma = (500, 150, 100, 20000, 5.0) if quick else \
        (1000, 300, 200, 20000, 5.0)
    rng = np.random.default_rng(2)
    coef = np.zeros(d)
    coef[:n_rel] = rng.choice([-1.0, 1.0], n_rel) * 10.0 ** rng.uniform(-2, 1, n_rel)
    coef = coef[rng.permutation(d)]  # relevance not aligned with feature blocks
    X, y = _gaussian(rng, n + n_test, d, coef, 3.0, sigma)
    return dict(key="b2", title=f"(b2) quality: Gaussian X, n={n}, d={d}; {n_rel} coef = "
                                f"±10^U(-2,1), {d - n_rel} zero; noise sd {sigma:g} (known), "
                                f"{n_test} test samples",
                X_train=X[:n], y_train=y[:n], X_test=X[n:], y_test=y[n:],
                coef=coef, intercept=3.0, sigma2=sigma ** 2)


def problem_c(quick):
    n, d, n_test = (5000, 2000, 2000) if quick else (50000, 20000, 10000)
    nnz_row, frac_rel, sigma = 20, 0.05, 0.5
    rng = np.random.default_rng(3)
    X = sp.random(n + n_test, d, density=nnz_row / d, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    coef = np.zeros(d)
    rel = rng.choice(d, int(frac_rel * d), replace=False)
    coef[rel] = rng.standard_normal(rel.size)
    y = X @ coef + 3.0 + sigma * rng.standard_normal(n + n_test)
    return dict(key="c", title=f"(c) sparse: CSR n={n}, d={d}, density {nnz_row / d:.0e} "
                               f"({X[:n].nnz} nnz), {rel.size} non-zero coef ~ N(0, 1), "
                               f"noise sd {sigma:g}",
                X_train=X[:n], y_train=y[:n], X_test=X[n:], y_test=y[n:], sparse=True)


PROBLEMS = {"a": problem_a, "b1": problem_b1, "b2": problem_b2, "c": problem_c}


# ---------------------------------------------------------------------------------------
# competitors: (name, builder, penalty reader, notes); the builder gets the shared splits


def _himalaya_np(x):
    from himalaya.backend import get_backend
    return np.asarray(get_backend().to_numpy(x), dtype=float)


def _himalaya_groups(d):
    return np.arange(d) * N_GROUPS // d


def _per_feature_rows(splits, kfold):
    """The per-feature variants: the library default, and early stopping toggled.

    Built from the installed default of ``early_stopping`` so the row names stay true. Both
    get the shared split list; an early-stopping fit that rejects it (it holds out rows and
    splits the rest) falls back to the same KFold splitter, which draws its folds on the
    remaining rows.
    """
    default_es = BilevelRidgeCV().get_params()["early_stopping"]
    es_on_by_default = default_es is True or default_es == "auto"
    toggled = not es_on_by_default
    pf = dict(alpha_per_feature=True, random_state=0)
    rows = [("BilevelRidgeCV(alpha_per_feature=True)",
             lambda: BilevelRidgeCV(cv=splits, **pf),
             lambda: BilevelRidgeCV(cv=kfold, **pf),
             f"library defaults (early_stopping={default_es!r}) on the shared folds"),
            (f"BilevelRidgeCV(alpha_per_feature=True, early_stopping={toggled})",
             lambda: BilevelRidgeCV(cv=splits, early_stopping=toggled, **pf),
             lambda: BilevelRidgeCV(cv=kfold, early_stopping=toggled, **pf),
             "early stopping holds out 20% of the rows" if toggled else "")]
    if "cv_repeats" in BilevelRidgeCV().get_params():
        rows.append(("BilevelRidgeCV(alpha_per_feature=True, cv=5)",
                     lambda: BilevelRidgeCV(cv=5, **pf), None,
                     "cv=5 as a user would write it: the library's repeated K-fold "
                     "(cv_repeats='auto', seeded by random_state=0), NOT the shared folds; "
                     "the CV MSE column is still computed on the shared folds"))
    return rows


PER_FEATURE_PREFIX = "BilevelRidgeCV(alpha_per_feature=True"


def stop_bbai():
    """Stop bbai's helper process and forget the package, so the next import starts afresh.

    bbai starts its compute server when ``bbai`` is imported, and the server busy-waits on
    a whole CPU for as long as it lives (measured: 2.9 CPU seconds per 3 idle seconds).
    """
    bridge = sys.modules.get("bbai._computation._bridge")
    if bridge is None:
        return
    try:
        bridge.handle.terminate()
        bridge.handle.wait(10)
    except Exception:  # noqa: BLE001
        bridge.handle.kill()
    for name in [m for m in sys.modules if m == "bbai" or m.startswith("bbai.")]:
        del sys.modules[name]


def competitors(problem, splits, with_c_per_feature=False):
    d = problem["X_train"].shape[1]
    sparse = problem.get("sparse", False)
    groups = _himalaya_groups(d)
    kfold = KFold(5, shuffle=True, random_state=0)
    rows = []

    def add(name, build, penalty, note="", dense_only=False, fallback=None, skip=None,
            cleanup=None):
        rows.append(dict(name=name, build=build, penalty=penalty, note=note,
                         dense_only=dense_only, fallback=fallback, skip=skip,
                         cleanup=cleanup))

    # himalaya scores all alphas at once through (n_alphas, n_val, n_train) resolution
    # matrices (built for thousands of targets): its cost per fit does not depend on the
    # number of targets, so with one target it is ~2 n_alphas n_val n_train d flops per fold
    # and per random-search point. Fits that would exceed HIMALAYA_MAX_FLOPS are not run.
    n_val = max(len(va) for _, va in splits)
    n_tr = max(len(tr) for tr, _ in splits)
    him_flops = 2.0 * len(GRID) * n_val * n_tr * d * len(splits)

    def him_skip(n_iter):
        if sparse:  # himalaya rejects sparse X at once: let it say so in its row
            return None
        if him_flops * n_iter > HIMALAYA_MAX_FLOPS:
            return (f"not run: ~{him_flops * n_iter:.1e} flops ({len(GRID)} x {n_val} x "
                    f"{n_tr} resolution matrices per fold and search point, x {n_iter} "
                    f"point(s)); limit {HIMALAYA_MAX_FLOPS:.0e}")
        return None

    add(BASELINE, lambda: RidgeCV(alphas=GRID, cv=splits), lambda e: e.alpha_)
    add("GridSearchCV(Ridge), 50 alphas",
        lambda: GridSearchCV(Ridge(), {"alpha": GRID}, cv=splits,
                             scoring="neg_mean_squared_error"),
        lambda e: e.best_params_["alpha"])
    if sparse:
        add(AUTO_SPARSE, lambda: BilevelRidgeCV(cv=splits),
            lambda e: e.alpha_, note="auto resolves to cg for sparse X with more than 4000 "
            "features (or n_features**3 > 4000 nnz), the same run as linear_solver='cg'")
        # The solver comparison (recycle_section) on L-BFGS-B's path: the default
        # bracketing search makes only ~2 hypergradient evaluations, too few for a
        # recycle space to pay; these rows keep the multi-step path it was built for.
        for name in ("cg", "recycled_minres", "minres"):
            add(SOLVER_ROWS[name],
                lambda name=name: BilevelRidgeCV(cv=splits, linear_solver=name,
                                                 optimizer="lbfgs"),
                lambda e: e.alpha_)
    else:
        add("BilevelRidgeCV()", lambda: BilevelRidgeCV(cv=splits), lambda e: e.alpha_)
    for name, build, fallback, note in _per_feature_rows(splits, kfold):
        skip = None
        if sparse and not with_c_per_feature:
            skip = ("not run by default (pass --c-per-feature): one penalty per feature, "
                    f"{d} penalties, too slow for the time budget (see the report)")
        add(name, build, lambda e: e.alpha_, note=note, fallback=fallback, skip=skip)
    add("ARDRegression()", lambda: ARDRegression(), lambda e: e.lambda_ / e.alpha_,
        note="penalty = lambda_ / alpha_ (its posterior mean is that ridge)", dense_only=True)
    add("RidgeCV() (LOO, default alphas)", lambda: RidgeCV(), lambda e: e.alpha_,
        note="efficient LOO, alphas (0.1, 1, 10)", dense_only=True)
    add("RidgeCV(alphas=50) (LOO)", lambda: RidgeCV(alphas=GRID), lambda e: e.alpha_,
        note="efficient LOO over the 50-point grid", dense_only=True)

    def him_ridge():
        from himalaya.ridge import RidgeCV as HRidgeCV
        return HRidgeCV(alphas=GRID, cv=splits, fit_intercept=True)

    def him_group():
        from himalaya.ridge import GroupRidgeCV
        return GroupRidgeCV(groups=groups, cv=splits, fit_intercept=True, random_state=0,
                            solver_params=dict(alphas=GRID, n_iter=HIMALAYA_N_ITER,
                                               progress_bar=False))

    add("himalaya RidgeCV, 50 alphas (torch)", him_ridge,
        lambda e: float(_himalaya_np(e.best_alphas_).ravel()[0]), skip=him_skip(1))
    add(f"himalaya GroupRidgeCV, {N_GROUPS} blocks (torch)", him_group,
        lambda e: np.exp(-_himalaya_np(e.deltas_).ravel())[groups],
        note=f"random search: {HIMALAYA_N_ITER} simplex points (default 100; cost is linear "
             f"in it) x 50 alphas; {N_GROUPS} contiguous feature blocks; BandedRidgeCV is "
             "the same class", skip=him_skip(HIMALAYA_N_ITER))

    def bbai_ridge():
        from bbai.glm import RidgeRegression
        return RidgeRegression()

    add("bbai RidgeRegression (exact LOO optimum)", bbai_ridge, lambda e: e.alpha_,
        dense_only=True, cleanup=stop_bbai,
        note="bbai computes in a helper process that busy-waits on a full CPU from import "
             "on; it is stopped after each bbai fit (else it slows every later row); its "
             "CPU time includes the helper's")
    return rows


# ---------------------------------------------------------------------------------------
# running one competitor


def _coef(est):
    if isinstance(est, GridSearchCV):
        est = est.best_estimator_
    coef = getattr(est, "coef_", None)
    if coef is None:
        return None
    try:
        return np.asarray(coef, dtype=float).ravel()
    except TypeError:
        return _himalaya_np(coef).ravel()


def _intercept(est):
    if isinstance(est, GridSearchCV):
        est = est.best_estimator_
    b = getattr(est, "intercept_", 0.0)
    try:
        return float(np.asarray(b, dtype=float).ravel()[0])
    except TypeError:
        return float(_himalaya_np(b).ravel()[0])


def _predict(est, X):
    pred = est.predict(X)
    try:
        return np.asarray(pred, dtype=float).ravel()
    except TypeError:
        return _himalaya_np(pred).ravel()


def run_one(spec, problem, cv_mse, trace):
    X, y = problem["X_train"], problem["y_train"]
    sparse = problem.get("sparse", False)
    row = dict(name=spec["name"], note=spec["note"])
    if sparse and spec["dense_only"]:
        row["status"] = "not run: needs dense d x d or n x n matrices"
        return row, None
    if spec["skip"]:
        row["status"] = spec["skip"]
        return row, None
    builders = [spec["build"]] + ([spec["fallback"]] if spec["fallback"] else [])
    est = None
    for i, build in enumerate(builders):
        try:
            est = build()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", FutureWarning)
                with PeakMemory(trace=trace) as mem:
                    cpu0, start = cpu_seconds(), time.perf_counter()
                    est.fit(X, y)
                    row["time"] = time.perf_counter() - start
                    row["cpu"] = cpu_seconds() - cpu0
            row["rss"] = mem.rss_peak / 2 ** 20
            row["traced"] = None if mem.traced_peak is None else mem.traced_peak / 2 ** 20
            break
        except Exception as exc:  # noqa: BLE001 - one failure must not end the run
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
            if i + 1 < len(builders):
                row["note"] = (row["note"] + "; " if row["note"] else "") + \
                    f"cv=<shared split list> failed ({reason}), so cv=KFold(5, " \
                    "shuffle=True, random_state=0) was used"
                continue
            row["status"] = f"failed: {reason}"
            if os.environ.get("BENCH_TRACEBACK"):
                traceback.print_exc()
            return row, None
    try:
        alpha = spec["penalty"](est)
        row["n_hyper"] = int(np.size(alpha))
        row["alpha"] = alpha
        row["cv_mse"] = cv_mse(alpha)
        pred = _predict(est, problem["X_test"])
        row["test_mse"] = float(np.mean((pred - problem["y_test"]) ** 2))
        coef, intercept = _coef(est), _intercept(est)
        if "sigma2" in problem:
            row["excess_test"] = row["test_mse"] - problem["sigma2"]
            row["excess_exact"] = float(np.sum((coef - problem["coef"]) ** 2) +
                                        (intercept - problem["intercept"]) ** 2)
        ref_coef, ref_b = (sparse_ridge_refit if sparse else DenseRidgeCV.refit)(X, y, alpha)
        row["check"] = float(np.linalg.norm(np.append(coef - ref_coef, intercept - ref_b)) /
                             np.linalg.norm(np.append(ref_coef, ref_b)))
        if isinstance(est, GridSearchCV):
            row["own_cv_mse"] = -est.best_score_
        if isinstance(est, BilevelRidgeCV):
            row["own_cv_mse"] = est.best_cv_error_
            row["history"] = {k: np.asarray(v) for k, v in est.history_.items()
                              if k != "alpha" or np.ndim(alpha) == 0}
            row["n_iter"] = est.n_iter_
        row["status"] = "ok"
    except Exception as exc:  # noqa: BLE001
        row["status"] = f"failed after fit: {type(exc).__name__}: {str(exc)[:120]}"
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
    return row, est


# ---------------------------------------------------------------------------------------
# reporting


def _hyper(row):
    a = row.get("alpha")
    if a is None:
        return "—"
    if np.ndim(a) == 0:
        return f"α={float(a):.3g}"
    a = np.asarray(a, dtype=float)
    return f"α∈[{a.min():.2g}, {a.max():.2g}]"


def problem_table(problem, rows):
    base = next((r["time"] for r in rows if r["name"] == BASELINE and "time" in r), None)
    base_cpu = next((r["cpu"] for r in rows if r["name"] == BASELINE and "cpu" in r), None)
    quality = "excess test risk (MSE−σ²) | exact excess" if "sigma2" in problem \
        else "test MSE"
    header = ["method", "#hyper", "selected", "CV MSE (shared folds)",
              *quality.split(" | "), "wall (s)", f"wall / {BASELINE}", "CPU (s)",
              "CPU / baseline", "peak RSS Δ (MiB)", "refit check"]
    if any(r.get("traced") is not None for r in rows):
        header.insert(-1, "tracemalloc peak (MiB)")
    table = []
    for r in rows:
        if r.get("status") != "ok":
            cells = [r["name"], r.get("status", "?")] + [""] * (len(header) - 2)
            table.append(cells)
            continue
        q = [fmt(r["excess_test"]), fmt(r["excess_exact"])] if "sigma2" in problem \
            else [fmt(r["test_mse"])]
        cells = [r["name"], str(r["n_hyper"]), _hyper(r), fmt(r["cv_mse"], ".6g"), *q,
                 fmt(r["time"], ".3f"), fmt(r["time"] / base, ".3f") if base else "—",
                 fmt(r["cpu"], ".3f"), fmt(r["cpu"] / base_cpu, ".3f") if base_cpu else "—",
                 fmt(r["rss"], ".0f")]
        if "tracemalloc peak (MiB)" in header:
            cells.append(fmt(r.get("traced"), ".0f"))
        cells.append(fmt(r["check"], ".1e"))
        table.append(cells)
    notes = [f"- {r['name']}: {r['note']}" for r in rows if r.get("note")]
    return markdown_table(header, table) + ("\n\n" + "\n".join(notes) if notes else "")


def _phase_split(h, wall):
    """Seconds in grid and optimize evaluations, and outside the loop, from ``history_``.

    ``history_["time"]`` restarts at each stage of a fit (the per-feature fit runs a
    shared-alpha stage first), so the history is cut where the clock goes back.
    """
    t, grid = np.asarray(h["time"], dtype=float), h["phase"] == "grid"
    starts = [0] + [i for i in range(1, len(t)) if t[i] < t[i - 1]] + [len(t)]
    t_grid = t_opt = 0.0
    for a, b in zip(starts[:-1], starts[1:]):
        seg_t, seg_grid = t[a:b], grid[a:b]
        g = float(seg_t[seg_grid][-1]) if seg_grid.any() else 0.0
        t_grid += g
        t_opt += float(seg_t[-1]) - g
    return t_grid, t_opt, wall - t_grid - t_opt


def skbilevel_table(rows):
    """Where BilevelRidgeCV's time goes, from history_."""
    header = ["method", "wall (s)", "grid evals / time (s)", "optimize evals / time (s)",
              "outside the loop (s)", "n_iter_", "inner iters", "adjoint Krylov iters",
              "Hessian matvecs", "|own CV − shared CV| / CV"]
    out = []
    for r in rows:
        h = r.get("history")
        if r.get("status") != "ok" or h is None:
            continue
        t_grid, t_opt, rest = _phase_split(h, r["time"])
        grid = h["phase"] == "grid"
        out.append([r["name"], fmt(r["time"], ".3f"), f"{grid.sum()} / {t_grid:.3f}",
                    f"{(~grid).sum()} / {t_opt:.3f}", f"{rest:.3f}", str(r["n_iter"]),
                    str(int(h["n_inner_iter"].sum())), str(int(h["n_linsys_iter"].sum())),
                    str(int(h["n_matvec"].sum())),
                    fmt(abs(r["own_cv_mse"] - r["cv_mse"]) / r["cv_mse"], ".1e")])
    if not out:
        return ""
    return ("Where `BilevelRidgeCV`'s time goes (from `history_`, summed over the fit's stages: "
            "grid = value-only evaluations (the safety-net grid, per-feature starting points), "
            "incl. the per-fold Gram/factorisations computed on first use; optimize = "
            "hypergradient steps; outside = input validation, fold and holdout set-up, "
            "per-feature starting points and the final refit):\n\n" +
            markdown_table(header, out))


def _row(rows, name):
    return next((r for r in rows if r["name"] == name and r.get("status") == "ok"), None)


def _verdict(ok):
    return "PASS" if ok else "FAIL"


def _time_line(name, row, label, ref, factor=1.0):
    """Wall time of ``row`` below ``factor`` x that of ``ref`` (the verdict), CPU time too."""
    ok = row["time"] <= factor * ref["time"]
    ok_cpu = row["cpu"] <= factor * ref["cpu"]
    return (f"{_verdict(ok)}: {name} wall time {row['time']:.3f}s ≤ {label} "
            f"{factor * ref['time']:.3f}s (ratio to the reference {row['time'] / ref['time']:.4f})"
            f"; CPU time {row['cpu']:.3f}s vs {factor * ref['cpu']:.3f}s: {_verdict(ok_cpu)} "
            f"(ratio {row['cpu'] / ref['cpu']:.4f})")


def targets(key, rows):
    """PASS/FAIL lines computed from the rows of one problem."""
    lines = []
    grid = _row(rows, "GridSearchCV(Ridge), 50 alphas")
    base = _row(rows, BASELINE)
    scalar = _row(rows, "BilevelRidgeCV()") or \
        _row(rows, AUTO_SPARSE)
    loo = _row(rows, "RidgeCV(alphas=50) (LOO)")
    loo_default = _row(rows, "RidgeCV() (LOO, default alphas)")
    if scalar and grid:
        best_grid = grid["own_cv_mse"]
        ok = scalar["cv_mse"] <= best_grid * (1 + 1e-10)
        lines.append(f"{_verdict(ok)}: scalar-alpha CV MSE {scalar['cv_mse']:.6g} ≤ best grid "
                     f"point (GridSearchCV best_score_) {best_grid:.6g} "
                     f"[ratio {scalar['cv_mse'] / best_grid:.6f}; tolerance 1e-10 relative]")
    if key == "b1" and scalar and base:
        lines.append(_time_line("scalar-alpha", scalar, "1/20 of RidgeCV(cv=5)", base, 1 / 20))
        for loo_row, label in ((loo_default, "RidgeCV() LOO, default alphas"),
                               (loo, "RidgeCV(alphas=50) LOO")):
            if loo_row:
                lines.append(_time_line("scalar-alpha", scalar, label, loo_row))
    if key == "b2":
        ard = _row(rows, "ARDRegression()")
        for name in [r["name"] for r in rows if r["name"].startswith(PER_FEATURE_PREFIX)]:
            pf = _row(rows, name)
            if not (pf and base):
                lines.append(f"FAIL: {name} or the baseline did not run")
                continue
            for metric, label in (("excess_test", "excess test risk (test MSE − σ²)"),
                                  ("excess_exact", "exact excess risk")):
                red = 1 - pf[metric] / base[metric]
                lines.append(f"{_verdict(red >= 0.10)}: {name} {label} {pf[metric]:.4g} is "
                             f"{100 * red:.1f}% lower than RidgeCV(cv=5)'s {base[metric]:.4g} "
                             "(target ≥ 10%)")
                if ard:
                    lines.append(f"{_verdict(pf[metric] <= ard[metric])}: {name} {label} "
                                 f"{pf[metric]:.4g} ≤ ARDRegression's {ard[metric]:.4g}")
            lines.append(_time_line(name, pf, "RidgeCV(cv=5)", base))
    return lines


def recycle_section(rows):
    """(c): recycled vs plain warm-started MINRES (and CG) over the whole tuning run."""
    names = SOLVER_ROWS
    runs = {k: _row(rows, v) for k, v in names.items()}
    if not (runs["recycled_minres"] and runs["minres"]):
        return "", ["FAIL: recycled or plain MINRES run missing on (c)"]
    header = ["adjoint solver", "evals (grid+opt)", "n_iter_", "adjoint Krylov iters",
              "all Hessian matvecs (inner + adjoint + recycle set-up)", "inner iters", "wall (s)",
              "final alpha", "max |Δ hypergrad| / max |hypergrad| vs minres",
              "pointwise max rel. diff |hypergrad|",
              "max |Δ log α| of the path vs minres"]
    ref = runs["minres"]
    ref_h = ref["history"]
    table, stats = [], {}
    for key, r in runs.items():
        if r is None:
            table.append([key, "failed"] + [""] * (len(header) - 2))
            continue
        h = r["history"]
        m = min(len(h["theta"]), len(ref_h["theta"]))
        opt = (h["phase"][:m] == "optimize") & (ref_h["phase"][:m] == "optimize")
        dtheta = float(np.max(np.abs(h["theta"][:m] - ref_h["theta"][:m]))) if m else np.nan
        g, g_ref = h["grad_norm"][:m][opt], ref_h["grad_norm"][:m][opt]
        # Relative to the gradient scale of the run (max |g| along the path): near the
        # optimum |g| -> 0 and a pointwise ratio measures how converged the run is, not
        # whether the two solvers agree. The pointwise maximum is reported as well.
        dgrad = float(np.max(np.abs(g - g_ref)) / np.max(np.abs(g_ref))) \
            if opt.any() else np.nan
        dgrad_pt = float(np.max(np.abs(g - g_ref) / np.maximum(np.abs(g_ref), 1e-300))) \
            if opt.any() else np.nan
        stats[key] = dict(krylov=int(h["n_linsys_iter"].sum()), matvec=int(h["n_matvec"].sum()),
                          inner=int(h["n_inner_iter"].sum()), time=r["time"],
                          alpha=float(r["alpha"]), dgrad=dgrad, dgrad_pt=dgrad_pt,
                          dtheta=dtheta, gmin=float(np.min(np.abs(g))) if opt.any() else np.nan,
                          same_len=len(h["theta"]) == len(ref_h["theta"]))
        s = stats[key]
        table.append([key, f"{(h['phase'] == 'grid').sum()}+{(h['phase'] == 'optimize').sum()}",
                      str(r["n_iter"]), str(s["krylov"]), str(s["matvec"]), str(s["inner"]),
                      fmt(s["time"], ".3f"), fmt(s["alpha"], ".6g"), fmt(dgrad, ".1e"),
                      fmt(dgrad_pt, ".1e"), fmt(dtheta, ".1e")])
    rec, mr = stats["recycled_minres"], stats["minres"]
    lines = []
    red_k = 1 - rec["krylov"] / mr["krylov"] if mr["krylov"] else np.nan
    red_m = 1 - rec["matvec"] / mr["matvec"] if mr["matvec"] else np.nan
    lines.append(f"{_verdict(red_k >= 0.30)}: recycled MINRES {rec['krylov']} adjoint Krylov "
                 f"iterations vs warm MINRES {mr['krylov']}: {100 * red_k:.1f}% fewer "
                 "(target ≥ 30%)")
    lines.append(f"{_verdict(red_m >= 0.20)}: recycled MINRES {rec['matvec']} Hessian matvecs "
                 f"(inner fits, adjoint solves and recycle-space set-up: history_['n_matvec']) "
                 f"vs warm MINRES {mr['matvec']}: "
                 f"{100 * red_m:.1f}% fewer (target ≥ 20%)")
    dalpha = abs(rec["alpha"] - mr["alpha"]) / abs(mr["alpha"])
    ok = rec["dgrad"] <= 1e-6 and rec["same_len"] and dalpha <= 1e-6
    lines.append(f"{_verdict(ok)}: equal hypergradients: max |Δ hypergradient| / "
                 f"max |hypergradient| over the path {rec['dgrad']:.1e} (pointwise max "
                 f"relative difference {rec['dgrad_pt']:.1e}, at |hypergradient| down to "
                 f"{rec['gmin']:.1e} near the optimum), same number of evaluations: "
                 f"{rec['same_len']}, "
                 f"max |Δ log α| along the path {rec['dtheta']:.1e}, final alpha rel. diff "
                 f"{dalpha:.1e} (target ≤ 1e-6)")
    lines.append(_time_line("recycled MINRES", runs["recycled_minres"], "warm MINRES",
                            runs["minres"]))
    text = ("Recycled vs plain warm-started MINRES (and CG), whole tuning run with "
            "optimizer='lbfgs' (L-BFGS-B after the full-tolerance grid; the default "
            "bracketing search makes ~2 hypergradient evaluations), scalar alpha "
            "(totals over `history_`; `n_linsys_iter` counts the Krylov iterations of the "
            "adjoint solves, which the grid phase does not need; `n_matvec` counts every "
            "Hessian-vector product, inner fits included):\n\n" + markdown_table(header, table))
    return text, lines


# ---------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default="a,b1,b2,c",
                        help="comma-separated subset of a,b1,b2,c")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--output", default=None,
                        help="markdown file to write (default results/ridge.md, "
                             "results/ridge_quick.md with --quick)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and BLAS threads for every competitor (default: "
                             "os.cpu_count())")
    parser.add_argument("--c-per-feature", action="store_true",
                        help="also run the per-feature BilevelRidgeCV variants on (c)")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report tracemalloc's peak (slows the fits down)")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.problems.split(",") if k.strip()]
    unknown = set(keys) - set(PROBLEMS)
    if unknown:
        parser.error(f"unknown problems {sorted(unknown)}; choose from {sorted(PROBLEMS)}")

    atexit.register(stop_bbai)
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    try:  # the same thread count for numpy/scipy's BLAS as for torch
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass
    try:
        from himalaya.backend import set_backend
        set_backend("torch", on_error="warn")
    except Exception as exc:  # noqa: BLE001
        print(f"himalaya unavailable: {exc}")
    info = machine_info()
    load_start = load_average()
    t_start = time.perf_counter()
    out = [f"# Ridge benchmark{' (--quick)' if args.quick else ''}", "",
           "Machine: " + ", ".join(f"{k}={v}" for k, v in info.items()), "",
           f"Command: `python benchmarks/bench_ridge.py {' '.join(argv or sys.argv[1:])}`", "",
           f"Threads: torch and the BLAS/OpenMP pools of numpy and scipy limited to {threads} "
           "for every competitor" + ("." if threads >= (os.cpu_count() or 1) else
                                    f" (< {os.cpu_count()} CPUs: with other processes on the "
                                    "machine, threads that spin-wait for a descheduled "
                                    "sibling made identical computations vary several-fold "
                                    "between runs; one thread each keeps timings "
                                    "comparable)."), "",
           __doc__.split("Usage::")[0].split("\n", 2)[2].strip(), "",
           "Peak RSS Δ is sampled from /proc/self/statm every 5 ms during `fit`, minus the RSS "
           "before it: a lower bound (memory freed by earlier fits and reused by glibc does not "
           "show).", ""]
    all_lines = []
    for key in keys:
        t0 = time.perf_counter()
        problem = PROBLEMS[key](args.quick)
        X, y = problem["X_train"], problem["y_train"]
        splits = list(KFold(5, shuffle=True, random_state=0).split(X))
        cv_mse = (SparseRidgeCV if problem.get("sparse") else DenseRidgeCV)(X, y, splits)
        print(f"\n## {problem['title']}  (set-up {time.perf_counter() - t0:.1f}s, "
              f"load {load_average()})", flush=True)
        rows = []
        for spec in competitors(problem, splits, args.c_per_feature):
            try:
                row, est = run_one(spec, problem, cv_mse, args.tracemalloc)
                del est
            finally:
                if spec["cleanup"]:
                    spec["cleanup"]()
            rows.append(row)
            print(f"  {row['name']:<62} {row.get('status'):>4}  "
                  f"time={fmt(row.get('time'), '.3f')}s  cv={fmt(row.get('cv_mse'), '.6g')}  "
                  f"test={fmt(row.get('test_mse'), '.6g')}  {_hyper(row)}", flush=True)
        table = problem_table(problem, rows)
        section = [f"## {problem['title']}", "",
                   f"n_train={X.shape[0]}, n_test={problem['X_test'].shape[0]}, "
                   f"d={X.shape[1]}; load average before the problem: {load_average()}", "",
                   table, ""]
        breakdown = skbilevel_table(rows)
        if breakdown:
            section += [breakdown, ""]
        lines = targets(key, rows)
        if key == "c":
            text, rec_lines = recycle_section(rows)
            if text:
                section += [text, ""]
            lines += rec_lines
        if lines:
            section += ["Targets:", ""] + [f"- {ln}" for ln in lines] + [""]
        all_lines += [f"({key}) {ln}" for ln in lines]
        print("\n" + "\n".join(section), flush=True)
        out += section
    total = time.perf_counter() - t_start
    out += ["## Summary of targets", ""] + [f"- {ln}" for ln in all_lines] + [
        "", f"Total benchmark time {total:.0f}s; load average at start {load_start}, at end "
            f"{load_average()} (os.getloadavg: 1, 5, 15 min; >{os.cpu_count()} means other "
            "processes shared the CPUs and the timings are inflated).", ""]
    print(f"\nTotal {total:.0f}s", flush=True)
    path = Path(args.output) if args.output else \
        HERE / "results" / ("ridge_quick.md" if args.quick else "ridge.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
    print(f"written {path}")


if __name__ == "__main__":
    main()
