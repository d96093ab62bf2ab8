"""Benchmark of HDM (``HDMSolver``, ``HDMLogisticRegression``) against L-BFGS, Adam and GD.

Part A replays the HDM paper's protocol (see ``_hdm_problems.py``): unregularised logistic
regression and squared-hinge SVM, same start for everyone, 1,000 gradient evaluations,
success at ``||grad f||_inf <= 1e-4``. Opponents: scipy L-BFGS-B with memory 1, 3, 5, 10
(untuned, as in the paper), torch Adam (best of six learning rates), gradient descent with
step 1/L; HDM variants with default settings, and HDM-Best best-of-grid (the paper tuned
HDM over 20 configurations: both are reported). Gradient counts are deterministic; times
are not.

Part B compares ``HDMLogisticRegression`` with ``LogisticRegression`` (lbfgs, newton-cg,
saga) on the same L2-regularised objective (C=1, tol=1e-4).

Usage::

    python benchmarks/bench_hdm.py            # full run, writes results/hdm.md and a PNG
    python benchmarks/bench_hdm.py --quick    # smaller, writes results/hdm_quick.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import _hdm_problems as P  # noqa: E402
from _common import fmt, load_average, machine_info, markdown_table  # noqa: E402
from skbilevel import HDMLogisticRegression  # noqa: E402

ADAM_LRS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # and 1/L
GAP = 1e-6  # the "same objective gap" for the wall-time targets (relative)
TUNED_LR, TUNED_BETA_LR = (0.1, 1.0, 10.0, 100.0), (1.0, 3.0, 5.0, 10.0, 100.0)


def part_a(quick):
    rows, traces, verdicts = [], {}, {"hdm": [], "m10": [], "m3": []}
    for name, problem in P.protocol_problems(quick).items():
        x0 = P.start_point(problem.size)
        f_star = P.reference_optimum(problem, x0)
        big = problem.size * getattr(problem, "X", torch.zeros(1, 1)).shape[0] > 1e7
        runs = {}
        for m in (1, 3, 5, 10):
            runs[f"L-BFGS-M{m}"] = P.run_lbfgs(problem, x0, m)
        for variant in ("hdm-best", "hdm-hb", "hdm-diag", "hdm"):
            runs[f"{variant} (default)"] = P.run_hdm(problem, x0, variant)
        # OSGM-Best as its reference code runs it: L from three sampled differences.
        runs["osgm-best (default)"] = P.run_hdm(problem, x0, "osgm-best", smoothness="sample")
        runs["osgm-best (paper's L)"] = P.run_hdm(problem, x0, "osgm-best")
        best = None
        # The 20-run HDM grid and the Adam grid cost too much on the large set.
        for a in TUNED_LR if not big else ():
            for b in TUNED_BETA_LR:
                run = P.run_hdm(problem, x0, "hdm-best", lr=a / problem.L, beta_lr=b)
                count = P.first_success(run[0], f_star)[0]
                if count is not None and (best is None or count < best[0]):
                    best = (count, run, f"lr={a:g}/L, beta_lr={b:g}")
        if best is not None:
            runs[f"hdm-best (tuned: {best[2]})"] = best[1]
        adam = None
        for lr in ADAM_LRS + (1.0 / problem.L,) if not big else ():
            run = P.run_torch(problem, x0, lambda p, lr=lr: torch.optim.Adam(p, lr=lr), 3)
            key = (P.first_success(run[0], f_star)[0] or 10 ** 9, run[0][-1][1])
            if adam is None or key < adam[0]:
                adam = (key, run, lr)
        if adam is not None:
            runs[f"Adam (best lr={adam[2]:.3g})"] = adam[1]
            runs["GD (1/L)"] = P.run_torch(
                problem, x0, lambda p, problem=problem: torch.optim.SGD(p, lr=1.0 / problem.L), 1)
        counts = {k: P.first_success(r[0], f_star) for k, r in runs.items()}
        m10 = counts["L-BFGS-M10"][0]
        for key, (trace, seconds, memory) in runs.items():
            to_tol, to_gap = counts[key]
            ratio = to_tol / m10 if (to_tol and m10) else None
            rows.append([name, key, fmt(to_tol), fmt(to_gap), len(trace),
                         fmt(min(g for _, g in trace), ".1e"), fmt(seconds, ".3f"),
                         fmt(ratio, ".2f"), memory])
        hdm = counts["osgm-best (default)"][0]
        verdicts["hdm"].append((name, hdm))
        verdicts["m10"].append((name, hdm, m10))
        verdicts["m3"].append((name, hdm, counts["L-BFGS-M3"][0]))
        traces[name] = {k: r[0] for k, r in runs.items()}
        print(f"  {name}: osgm-best {hdm}, hdm-best {counts['hdm-best (default)'][0]}, "
              f"L-BFGS-M10 {m10}", flush=True)
    header = ["problem", "method", "evals to ‖g‖∞ ≤ 1e-4", "evals to rel. gap 1e-8",
              "evals used", "min ‖g‖∞", "wall (s)", "evals / L-BFGS-M10",
              "optimizer state (floats)"]
    return markdown_table(header, rows), traces, verdicts


def _objective(clf, X, y, C):
    """scikit-learn's lbfgs objective at a fitted model, computed by the same numpy code."""
    Z = X @ clf.coef_.T + clf.intercept_
    if Z.shape[1] == 1:
        yb = (y == clf.classes_[1]).astype(float)
        loss = np.logaddexp(0.0, Z[:, 0]) - yb * Z[:, 0]
    else:
        idx = np.searchsorted(clf.classes_, y)
        loss = np.logaddexp.reduce(Z, axis=1) - Z[np.arange(len(y)), idx]
    return loss.mean() + 0.5 * (clf.coef_ ** 2).sum() / (C * len(y))


def part_b(quick):
    rng = np.random.default_rng(0)
    n_big = 20000 if quick else 100000
    Xs = rng.standard_normal((n_big, 500))
    ys = (rng.random(n_big) < 1 / (1 + np.exp(-Xs @ (rng.standard_normal(500) / 10)))).astype(int)
    # Badly scaled: the same data with column scales spanning 1e4, not standardised.
    scales = np.logspace(-2, 2, 500)
    sets = {"breast cancer": load_breast_cancer(return_X_y=True),
            "digits (10 classes)": load_digits(return_X_y=True),
            f"synthetic n={n_big}, d=500": (Xs, ys),
            f"badly scaled n={n_big}, d=500": (Xs * scales, ys)}
    estimators = {
        "HDMLogisticRegression": lambda: HDMLogisticRegression(C=1.0, tol=1e-4),
        "HDMLogisticRegression(hdm-best, power)": lambda: HDMLogisticRegression(
            C=1.0, tol=1e-4, variant="hdm-best", smoothness="power"),
        "LogisticRegression(lbfgs)": lambda: LogisticRegression(C=1.0, tol=1e-4, max_iter=5000),
        "LogisticRegression(newton-cg)": lambda: LogisticRegression(
            C=1.0, tol=1e-4, max_iter=5000, solver="newton-cg"),
        "LogisticRegression(saga)": lambda: LogisticRegression(
            C=1.0, tol=1e-4, max_iter=5000, solver="saga"),
    }
    rows, wall, gaps = [], {}, {}
    for name, (X, y) in sets.items():
        if not name.startswith("badly"):
            X = StandardScaler().fit_transform(X)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
        tight = LogisticRegression(C=1.0, tol=1e-10, max_iter=20000).fit(X_tr, y_tr)
        fits = {}
        for est_name, build in estimators.items():
            if name.startswith("badly") and est_name.endswith(("saga)", "newton-cg)")):
                continue  # minutes each on badly scaled data, and not the question here
            best, clf = np.inf, None
            for _ in range(1 if X.shape[0] > 10000 else 3):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    start = time.perf_counter()
                    clf = build().fit(X_tr, y_tr)
                    best = min(best, time.perf_counter() - start)
            fits[est_name] = (clf, best)
            wall[(name, est_name)] = best
        f_best = min([_objective(c, X_tr, y_tr, 1.0) for c, _ in fits.values()]
                     + [_objective(tight, X_tr, y_tr, 1.0)])
        for est_name, (clf, seconds) in fits.items():
            f = _objective(clf, X_tr, y_tr, 1.0)
            gaps[(name, est_name)] = (f - f_best) / abs(f_best)
            evals = (f"{clf.n_grad_evals_} grad evals" if hasattr(clf, "n_grad_evals_")
                     else f"{int(np.max(clf.n_iter_))} iterations")
            dist = np.abs(clf.coef_ - tight.coef_).max() / np.abs(tight.coef_).max()
            rows.append([name, est_name, fmt(seconds, ".3f"),
                         fmt(seconds / fits["LogisticRegression(lbfgs)"][1], ".2f"), evals,
                         fmt(f, ".10g"), fmt((f - f_best) / abs(f_best), ".1e"),
                         fmt(dist, ".1e"), fmt(clf.score(X_te, y_te), ".4f")])
        print(f"  {name}: done", flush=True)
    header = ["data", "estimator", "wall (s)", "wall / lbfgs", "work", "objective",
              "rel. gap to best", "max |coef − tight lbfgs| / max |coef|", "test accuracy"]
    big = [s for s in sets if s.endswith(f"n={n_big}, d=500")]
    return markdown_table(header, rows), [
        (s, *(wall[(s, e)] for e in ("HDMLogisticRegression", "LogisticRegression(lbfgs)")),
         *(gaps[(s, e)] for e in ("HDMLogisticRegression", "LogisticRegression(lbfgs)")))
        for s in big]


def verdict_lines(verdicts, big):
    ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
    hdm = verdicts["hdm"]
    lines = [f"- {ok(all(c is not None for _, c in hdm))}: osgm-best with default settings "
             f"reaches ‖g‖∞ ≤ 1e-4 within 1000 evaluations on every Part-A problem "
             f"({sum(c is not None for _, c in hdm)}/{len(hdm)}; failed: "
             f"{[n for n, c in hdm if c is None] or 'none'})"]
    pairs = verdicts["m10"]
    within = [n for n, h, m in pairs if h is not None and (m is None or h <= 1.5 * m)]
    worst = max((h / m for _, h, m in pairs if h and m), default=np.inf)
    lines.append(f"- {ok(len(within) >= 10)}: osgm-best within 1.5x L-BFGS-M10's evaluations "
                 f"on at least 10 of {len(pairs)} problems ({len(within)}; worst ratio "
                 f"{worst:.2f})")
    lost = [n for n, h, m in pairs if "(C=1)" in n and m is not None and h is None]
    lines.append(f"- {ok(not lost)}: osgm-best solves every regularised problem L-BFGS-M10 "
                 f"solves (failed: {lost or 'none'})")
    m3 = verdicts["m3"]
    fewer = [n for n, h, m in m3 if h is not None and (m is None or h < m)]
    lines.append(f"- {ok(len(fewer) == len(m3))}: fewer than L-BFGS-M3 on all "
                 f"({len(fewer)}/{len(m3)}; L-BFGS-M3 failing counts as fewer)")
    for name, ours, lbfgs, gap, lbfgs_gap in big:
        # The issue compares wall times "at the same objective gap (<= 1e-6 relative)": a
        # fit that stopped on its budget above that gap does not count, however fast.
        bound = 1.0 if name.startswith("badly") else 1.5
        lines.append(f"- {ok(ours <= bound * lbfgs and gap <= GAP)}: HDMLogisticRegression "
                     f"wall time {ours:.2f}s ≤ {bound}x LogisticRegression(lbfgs) {lbfgs:.2f}s "
                     f"on {name} (ratio {ours / lbfgs:.2f}) at a relative objective gap ≤ "
                     f"{GAP:g} (HDM {gap:.1e}, lbfgs {lbfgs_gap:.1e})")
    return lines


def plot(traces, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [n for n in ("svm a1a-like (unregularised)", "logistic a1a-like (C=1)",
                         "logistic ill-conditioned (C=1)") if n in traces][:2]
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for key, trace in traces[name].items():
            style = "-" if key.startswith("hdm-best") else ("--" if "L-BFGS" in key else ":")
            ax.semilogy(np.arange(1, len(trace) + 1), [g for _, g in trace], style, label=key,
                        lw=1.2)
        ax.axhline(P.TOL, color="k", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("gradient evaluations")
        ax.set_ylabel("‖∇f‖∞")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", default="A,B")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.threads)
    parts = args.parts.split(",")
    out = [f"# HDM benchmark{' (--quick)' if args.quick else ''}", "",
           "Machine: " + ", ".join(f"{k}={v}" for k, v in machine_info().items()), "",
           f"Command: `python benchmarks/bench_hdm.py {' '.join(argv or sys.argv[1:])}`", "",
           f"Threads: {args.threads} for torch and BLAS. Gradient counts are deterministic; "
           "times are wall-clock and noisy (compare ratios).", ""]
    start, lines, traces, verdicts, big = time.perf_counter(), [], {}, None, None
    if "A" in parts:
        print("Part A", flush=True)
        table, traces, verdicts = part_a(args.quick)
        out += ["## Part A: the paper's protocol", "", P.__doc__.strip(), "", table, ""]
    if "B" in parts:
        print("Part B", flush=True)
        table, big = part_b(args.quick)
        out += ["## Part B: HDMLogisticRegression vs LogisticRegression (C=1, tol=1e-4)", "",
                "Wall time: best of 3 fits (1 on the large set); 75/25 split; "
                "objective = scikit-learn's lbfgs objective computed by one numpy function; "
                "scikit-learn reports iterations, HDM gradient evaluations.", "", table, ""]
    if verdicts is not None and big is not None:
        lines = verdict_lines(verdicts, big)
        out += ["## Targets", ""] + lines + [""]
    png = HERE / "results" / ("hdm_grad_norm_quick.png" if args.quick else "hdm_grad_norm.png")
    if traces and plot(traces, png):
        out += [f"![‖∇f‖∞ against gradient evaluations]({png.name})", ""]
    out.append(f"Total {time.perf_counter() - start:.0f}s; load average {load_average()}")
    path = HERE / "results" / ("hdm_quick.md" if args.quick else "hdm.md")
    path.write_text("\n".join(out) + "\n")
    print("\n".join(lines))
    print(f"written {path}")


if __name__ == "__main__":
    main()
