"""Benchmark of the issue-4 estimators against scikit-learn's CV tuners, on the same folds.

Problems: Lasso on a synthetic n=1,000 d=10,000 design with 50 true features and on the
bundled diabetes set with degree-3 features; elastic net on a correlated design; logistic
regression on breast cancer and a synthetic n=50,000 d=1,000 set. Every competitor gets the
same ``KFold(5, shuffle=True, random_state=0)`` (stratified for classification) split list.
CV errors are recomputed by one scorer (scikit-learn fits at tight tolerance on the shared
folds) from the hyperparameters each competitor chose, so no estimator's own bookkeeping
enters the table. Part B compares forward / reverse / implicit hypergradients at one point
against a high-accuracy reference and plots the derivative iterates (``sparse_jacobians.png``).

Usage::

    python benchmarks/bench_sparse.py            # full run, writes results/sparse.md
    python benchmarks/bench_sparse.py --quick    # smaller sizes, prints only
"""

from __future__ import annotations

import argparse
import os  # noqa: I001
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
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import (ElasticNet, ElasticNetCV, Lasso, LassoCV,  # noqa: E402
                                  LogisticRegression, LogisticRegressionCV)
from sklearn.metrics import f1_score, log_loss  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold  # noqa: E402
from sklearn.preprocessing import PolynomialFeatures, StandardScaler  # noqa: E402

from _common import PeakMemory, fmt, machine_info, markdown_table  # noqa: E402
from skbilevel import (BilevelElasticNetCV, BilevelLassoCV,  # noqa: E402
                       BilevelLogisticRegressionCV)

L1_RATIOS = [.1, .3, .5, .7, .9, .95, .99]


# -- problems ------------------------------------------------------------------------------
def lasso_synthetic(n, d, k=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 1000, d))
    coef = np.zeros(d)
    coef[:k] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
    y = X @ coef + 3.0 * rng.standard_normal(n + 1000)
    return X[:n], y[:n], X[n:], y[n:], coef != 0


def diabetes_cubic():
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(PolynomialFeatures(3, include_bias=False)
                                       .fit_transform(X))
    rng = np.random.default_rng(0)
    test = rng.permutation(len(y))[:92]
    mask = np.ones(len(y), bool)
    mask[test] = False
    return X[mask], y[mask], X[test], y[test], None


def enet_correlated(n=500, d=200, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n + 1000, d // 10))
    X = np.repeat(latent, 10, axis=1) + 0.5 * rng.standard_normal((n + 1000, d))
    coef = np.zeros(d)
    coef[:40] = rng.uniform(0.5, 1.5, 40)
    y = X @ coef + 5.0 * rng.standard_normal(n + 1000)
    return X[:n], y[:n], X[n:], y[n:], coef != 0


def logistic_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(y))
    return X[perm[:450]], y[perm[:450]], X[perm[450:]], y[perm[450:]], None


def logistic_synthetic(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + 10000, d))
    coef = rng.standard_normal(d) * (rng.random(d) < 0.1) / 2
    y = (X @ coef + rng.logistic(size=n + 10000) > 0).astype(int)
    return X[:n], y[:n], X[n:], y[n:], None


# -- scoring -------------------------------------------------------------------------------
def cv_error(model, X, y, splits, classification):
    """Mean validation MSE (regression) or log-loss of ``model`` refitted on each fold."""
    errs = []
    for tr, va in splits:
        fit = model.fit(X[tr], y[tr])
        if classification:
            errs.append(log_loss(y[va], fit.predict_proba(X[va]), labels=np.unique(y)))
        else:
            errs.append(np.mean((fit.predict(X[va]) - y[va]) ** 2))
    return float(np.mean(errs))


def timed(fit, repeat_below=2.0, repeats=3):
    """``(estimator, wall, peak RSS MiB)``; fits shorter than ``repeat_below`` seconds are
    repeated and the fastest kept (sub-second walls vary by tens of percent here)."""
    walls, peak = [], 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        while not walls or (len(walls) < repeats and walls[0] < repeat_below):
            with PeakMemory() as mem:
                t0 = time.perf_counter()
                est = fit()
                walls.append(time.perf_counter() - t0)
            peak = max(peak, mem.rss_peak / 2 ** 20)
    return est, min(walls), peak


def support_f1(coef, truth):
    return "" if truth is None else f"{f1_score(truth, coef != 0):.3f}"


def run_regression(name, data, kind, rows, quick):
    X, y, Xt, yt, truth = data
    splits = list(KFold(5, shuffle=True, random_state=0).split(X))
    tight = dict(tol=1e-8, max_iter=100000)
    if kind == "lasso":
        competitors = [("LassoCV(alphas=100)", lambda: LassoCV(alphas=100, cv=splits))]
        if X.shape[1] <= 1000:
            grid = LassoCV(alphas=100, cv=splits).fit(X, y).alphas_
            competitors.append(("GridSearchCV(Lasso, same 100 alphas)", lambda: GridSearchCV(
                Lasso(), {"alpha": grid}, cv=splits, scoring="neg_mean_squared_error")
                .fit(X, y).best_estimator_))
        if sparho_lasso(X[:50], y[:50], list(KFold(2).split(X[:50]))) is not None:
            competitors.append(("sparho hoag_search (alpha_max / 10)",
                                lambda: sparho_lasso(X, y, splits)))
        competitors += [("BilevelLassoCV()", lambda: BilevelLassoCV(cv=splits).fit(X, y)),
                        ("BilevelLassoCV(alpha_per_feature=True)",
                         lambda: BilevelLassoCV(cv=splits, alpha_per_feature=True,
                                                random_state=0,
                                                max_iter=30 if quick else 100).fit(X, y))]
    else:
        competitors = [("ElasticNetCV(7 l1_ratios x 100)",
                        lambda: ElasticNetCV(l1_ratio=L1_RATIOS, alphas=100, cv=splits)),
                       ("BilevelElasticNetCV()",
                        lambda: BilevelElasticNetCV(cv=splits).fit(X, y))]
    base = None
    for label, make in competitors:
        est, wall, mem = timed(lambda make=make: _fit(make, X, y))
        alpha = getattr(est, "alpha_", getattr(est, "alpha", None))
        l1 = getattr(est, "l1_ratio_", getattr(est, "l1_ratio", 1.0))
        if np.ndim(alpha):  # weighted Lasso = Lasso(alpha=1) on the columns X_j / alpha_j
            cv = cv_error(Lasso(alpha=1.0, **tight), X / alpha, y, splits, False)
            hyper = f"{len(alpha)} alphas (median {np.median(alpha):.3g})"
        else:
            model = Lasso(alpha=alpha, **tight) if kind == "lasso" else \
                ElasticNet(alpha=alpha, l1_ratio=l1, **tight)
            cv = cv_error(model, X, y, splits, False)
            hyper = f"alpha={alpha:.4g}" + ("" if kind == "lasso" else f", l1_ratio={l1:.3g}")
        base = base or wall
        test = np.mean((est.predict(Xt) - yt) ** 2)
        rows.append([name, label, hyper, fmt(cv, ".6g"), fmt(test, ".5g"),
                     int(np.sum(est.coef_ != 0)), support_f1(est.coef_, truth), fmt(wall, ".3f"),
                     fmt(wall / base, ".3f"), fmt(mem, ".0f")])
        print(rows[-1], flush=True)


def sparho_lasso(X, y, splits):
    """sparho's ``hoag_search`` (Pedregosa's HOAG, warm-started CV, exponentially decreasing
    inner tolerance) from ``alpha_max / 10``, then a scikit-learn refit at its alpha.

    sparho's Lasso adapter fits no intercept, so it tunes on data centred once; the refit,
    like everyone's CV error here, has an intercept. None when sparho is not installed.
    """
    try:
        from sparho import L1, CrossVal, Problem, SquaredLoss, hoag_search
        from sparho.adapters import SklearnLasso
    except ImportError:
        return None
    Xc, yc = X - X.mean(0), y - y.mean()
    folds = tuple((tr.astype(np.int32), va.astype(np.int32)) for tr, va in splits)
    alpha_max = np.abs(Xc.T @ yc).max() / len(y)
    result = hoag_search(Problem(SquaredLoss(), L1(), Xc, yc), alpha_max / 10,
                         solver=SklearnLasso(tol=1e-8), criterion=CrossVal(folds, warm_start=True),
                         tolerance_decrease="exponential")
    alpha = float(np.ravel(result.best_hyperparam)[0])
    return Lasso(alpha=alpha, tol=1e-8, max_iter=100000).fit(X, y)


def _fit(make, X, y):
    est = make()
    return est if hasattr(est, "coef_") else est.fit(X, y)


def run_logistic(name, data, rows):
    X, y, Xt, yt, _ = data
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    Cs = np.logspace(-4, 4, 20)
    competitors = [("LogisticRegressionCV(Cs=20)", lambda: LogisticRegressionCV(
        Cs=20, cv=splits, scoring="neg_log_loss").fit(X, y))]
    if X.shape[0] <= 1000:
        competitors.append(("GridSearchCV(LogisticRegression, same 20 Cs)", lambda: GridSearchCV(
            LogisticRegression(), {"C": Cs}, cv=splits, scoring="neg_log_loss")
            .fit(X, y).best_estimator_))
    competitors.append(("BilevelLogisticRegressionCV()",
                        lambda: BilevelLogisticRegressionCV(cv=splits).fit(X, y)))
    base = None
    for label, make in competitors:
        est, wall, mem = timed(make)
        C = float(np.ravel(getattr(est, "C_", getattr(est, "C", None)))[0])
        cv = cv_error(LogisticRegression(C=C, tol=1e-10, max_iter=10000), X, y, splits, True)
        base = base or wall
        test = log_loss(yt, est.predict_proba(Xt))
        rows.append([name, label, f"C={C:.4g}", fmt(cv, ".6g"), fmt(test, ".5g"), "", "",
                     fmt(wall, ".3f"), fmt(wall / base, ".3f"), fmt(mem, ".0f")])
        print(rows[-1], flush=True)


# -- part B: forward vs reverse vs implicit ---------------------------------------------------
def part_b(out_png):
    from skbilevel._coordinate_descent import CoordinateDescent
    from skbilevel.engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
    from skbilevel.engine.inner import L1, ProximalProblem
    from skbilevel.engine.outer import HeldOutMSE
    from skbilevel.engine.solvers import FISTA

    X, y, _, _, _ = diabetes_cubic()
    tr, va = next(KFold(5, shuffle=True, random_state=0).split(X))
    T = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    problem = ProximalProblem.least_squares(T(X[tr]), T(y[tr][:, None]), L1())
    crit = HeldOutMSE.for_problem(problem, T(X[va]), T(y[va][:, None]))
    alpha_max = float(problem.datafit.xty.abs().max())
    theta = T([np.log(0.01 * alpha_max)])
    ref = ImplicitSupport().compute(problem, crit, theta,
                                    solver=CoordinateDescent(tol=1e-13, max_iter=10 ** 6))
    g_ref = float(ref.grad[0])
    rows = []
    d = X.shape[1]
    for label, method, solver in [
            ("implicit (CD + support system)", ImplicitSupport(), CoordinateDescent(tol=1e-10)),
            ("implicit (FISTA to 1e-8 + support system)", ImplicitSupport(),
             FISTA(tol=1e-8 * alpha_max, max_iter=100000)),
            ("forward (FISTA to 1e-8)", ForwardMode(), FISTA(tol=1e-8 * alpha_max,
                                                             max_iter=100000)),
            ("reverse (FISTA to 1e-8)", ReverseMode(), FISTA(tol=1e-8 * alpha_max,
                                                             max_iter=100000))]:
        t0 = time.perf_counter()
        res = method.compute(problem, crit, theta, solver=solver)
        wall = time.perf_counter() - t0
        k = res.n_inner_iter
        memory = {"implicit": f"{d} (support system <= |S|^2)", "forward": f"{2 * d} (J_k, J_k-1)",
                  "reverse": f"~{k * (3 * d + len(tr))} (tape: {k} iterations)"}[label.split()[0]]
        error = abs(float(res.grad[0]) - g_ref) / abs(g_ref)
        rows.append([label, k, fmt(wall, ".3f"), f"{error:.2e}",
                     memory])
        print(rows[-1], flush=True)
    # derivative iterates of FISTA against the reference (the Mehmood-Ochs plot)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w_star = ref.w[:, 0].numpy()
    support = w_star != 0
    H = problem.smooth_hvp(None, None, torch.eye(d, dtype=torch.float64)).numpy()
    d_psi = np.zeros(d)
    alpha = float(np.exp(theta[0]))
    d_psi[support] = -alpha * np.linalg.solve(H[np.ix_(support, support)],
                                              np.sign(w_star[support]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for solver, label in [(FISTA(tol=0.0, max_iter=3000), "FISTA"),
                          (FISTA(tol=0.0, max_iter=3000, step="backtracking"),
                           "FISTA, backtracking")]:
        hist = solver.run(problem, theta, None, torch.zeros(d, 1, dtype=torch.float64),
                          n_iter=3000, record=True)[0].history
        ex = [np.linalg.norm(r["w"].numpy()[:, 0] - w_star) for r in hist]
        ej = [np.linalg.norm(r["J"].numpy()[:, 0] - d_psi) for r in hist]
        ax.semilogy(ex, label=f"{label}: ||x_k - x*||")
        ax.semilogy(ej, "--", label=f"{label}: ||J_k - Dpsi||")
    ax.set_xlabel("iteration k")
    ax.set_title("Lasso, diabetes degree 3: derivative iterates converge with the iterates")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    return rows, g_ref


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problems", default="lasso_synth,diabetes,enet,bc,logistic_synth,b")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wanted = args.problems.split(",")
    rows = []
    n, d = (300, 2000) if args.quick else (1000, 10000)
    if "lasso_synth" in wanted:
        run_regression(f"Lasso synthetic n={n} d={d}, 50 true", lasso_synthetic(n, d), "lasso",
                       rows, args.quick)
    if "diabetes" in wanted:
        run_regression("Lasso diabetes degree 3", diabetes_cubic(), "lasso", rows, args.quick)
    if "enet" in wanted:
        run_regression("ElasticNet correlated n=500 d=200", enet_correlated(), "enet", rows,
                       args.quick)
    if "bc" in wanted:
        run_logistic("logistic breast cancer", logistic_breast_cancer(), rows)
    if "logistic_synth" in wanted:
        ln, ld = (5000, 200) if args.quick else (50000, 1000)
        run_logistic(f"logistic synthetic n={ln} d={ld}", logistic_synthetic(ln, ld), rows)
    header = ["problem", "method", "hyperparameters", "CV error", "test error", "support",
              "support F1", "wall (s)", "ratio", "peak RSS (MiB)"]
    text = ["# Sparse / logistic tuning benchmark", "",
            "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
            f"Command: `python benchmarks/bench_sparse.py {' '.join(sys.argv[1:])}`", "",
            "Threads: 1 for torch and BLAS. CV error = mean validation MSE (regression) or "
            "log-loss (logistic) of scikit-learn refits at the chosen hyperparameters on the "
            "shared folds (the weighted Lasso: Lasso(alpha=1) on the columns X_j / alpha_j, "
            "the same model). Wall: best of 3 for fits under 2 s. Ratio = wall time / the "
            "first row of the problem (the scikit-learn CV estimator).", "",
            markdown_table(header, rows)]
    if "b" in wanted:
        b_rows, g_ref = part_b(HERE / "results" / "sparse_jacobians.png")
        text += ["", "## Forward vs reverse vs implicit (one fold of diabetes degree 3, "
                 "alpha = 0.01 alpha_max)", "",
                 f"Reference hypergradient {g_ref:.10g} (coordinate descent to a 1e-13 "
                 "relative gap, support system solved densely). Memory: floats kept by the "
                 "method.", "",
                 markdown_table(["method", "inner iterations", "wall (s)", "relative error",
                                 "memory (floats)"], b_rows), "",
                 "![derivative iterates](sparse_jacobians.png)"]
    print("\n".join(text))
    if not args.quick:
        (HERE / "results" / "sparse.md").write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
