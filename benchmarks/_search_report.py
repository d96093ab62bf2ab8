"""The markdown report of ``bench_search.py``: one table per problem, profile, targets."""

from __future__ import annotations

from _common import fmt, markdown_table

HEADER = ["method", "CV score", "vs grid best (rel.)", "test score", "wall s", "CPU s",
          "× grid wall", "points", "s to grid best", "s to near it", "peak MiB"]


def _rel(value, reference):
    return (value - reference) / abs(reference)


def _seconds(value):
    return "never" if value is None else fmt(value, ".2f")


def _median(times):
    """The median of seconds where None (never) counts as longer than any time."""
    ordered = sorted(times, key=lambda t: float("inf") if t is None else t)
    return ordered[len(ordered) // 2]  # an odd count of seeds: the middle one


def _faster(ours, theirs):
    return ours is not None and (theirs is None or ours < theirs)


def report(results, machine, load, args, rel_tol):
    out = ["# `HypergradientSearchCV` against grid, randomized, halving and Optuna searches",
           "", "Written by `benchmarks/bench_search.py` (`--enet-l1-points "
           f"{args.enet_l1_points}`). One process, one thread, the same 5 folds of the same "
           "75 % training split for every method. CV score: `cross_val_score` of each "
           "method's choice on those folds (higher is better; negative MSE or negative "
           "log-loss). Test score: the refitted estimator on the 25 % held out. \"s to grid "
           "best\": wall seconds until scikit-learn had scored on all folds the first "
           "candidate whose mean CV score reached the 41-point grid's best (>= it); \"s to "
           f"near it\": the same for a score within {rel_tol:g} (relative) of it, which on "
           "a flat CV curve almost any point is (Halving: its whole fit, if its choice gets "
           "there). "
           "Randomized search: log-uniform (uniform for `l1_ratio`), with the number of "
           "points the hypergradient search evaluated and with 41. Optuna: TPE, 41 trials, "
           "seed 0 in the tables; its time to the grid's best on seeds 1-4 as well (each "
           "run stopped there), whose median the targets compare with. "
           "Wall times on a loaded shared machine: CPU seconds are the steadier measure.",
           "", "Machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()),
           f"Load average at the end: {load}", ""]
    profile, targets = [], []
    for problem, rows in results:
        grid = next(r for r in rows if r["method"].startswith("GridSearchCV"))
        out += [f"## {problem.name}", "",
                f"n_train={len(problem.y_train)}, n_features={problem.X_train.shape[1]}, "
                f"scoring `{problem.scoring}`, bounds {problem.bounds}"
                + (f", param_grid {problem.param_grid}" if problem.param_grid else ""), ""]
        table = []
        for r in rows:
            if "unsupported" in r:
                table.append([r["method"], "not supported yet"] + [""] * (len(HEADER) - 2))
                continue
            table.append([r["method"], fmt(r["cv"], ".7g"), fmt(_rel(r["cv"], grid["cv"]),
                                                               "+.1e"),
                          fmt(r["test"], ".6g"), fmt(r["wall"], ".2f"), fmt(r["cpu"], ".2f"),
                          fmt(r["ratio"], ".3f"), r["points"],
                          _seconds(r["reach"]), _seconds(r["near"]),
                          fmt(r["memory"], ".0f")])
        out += [markdown_table(HEADER, table), ""]
        hg = rows[0]
        if "unsupported" in hg:
            out += [f"HypergradientSearchCV: `{hg['unsupported']}`", ""]
            targets.append([problem.name, "not supported yet", "", "", "", ""])
            continue
        p = hg["profile"]
        other = hg["wall"] - p["prefix"] - p["engine"] - p["scoring"] - p["refit"]
        profile.append([problem.name, fmt(hg["wall"], ".2f"), fmt(p["prefix"], ".2f"),
                        fmt(p["engine"], ".2f"), fmt(p["scoring"], ".2f"),
                        fmt(p["fit and score"], ".2f"),
                        fmt(p["refit"], ".2f"), fmt(other, ".2f"),
                        p["engine evaluations"], hg["points"]])
        optuna = next((r for r in rows if r["method"].startswith("OptunaSearchCV")), None)
        versus = {key: "optuna not installed" if optuna is None else
                  f"{_seconds(hg[key])} vs {_seconds(optuna[key])}, "
                  f"{'met' if _faster(hg[key], optuna[key]) else 'MISSED'}"
                  for key in ("reach", "near")}
        seeds = None if optuna is None else optuna.get("reach_seeds")
        if seeds:
            median = _median(seeds)
            versus["seeds"] = (f"{_seconds(hg['reach'])} vs {_seconds(median)} "
                               f"({' / '.join(_seconds(t) for t in seeds)}), "
                               f"{'met' if _faster(hg['reach'], median) else 'MISSED'}")
        else:
            versus["seeds"] = "not run"
        no_worse = hg["cv"] >= grid["cv"] - 1e-12 * abs(grid["cv"])
        targets.append([problem.name,
                        f"{fmt(_rel(hg['cv'], grid['cv']), '+.1e')} "
                        f"({'met' if no_worse else 'MISSED'})",
                        f"{hg['ratio']:.3f} ({'met' if hg['ratio'] <= 0.25 else 'MISSED'})",
                        versus["reach"], versus["seeds"], versus["near"]])
    out += ["## Where the hypergradient search's time goes (wall seconds)", "",
            "prefix: fitting the pipeline's transformers on each fold (once per fold and "
            "combination); engine: the path (screening grid, hypergradient steps, polish); "
            "scoring: the wall time of scikit-learn's `evaluate_candidates` calls, which "
            "score each point of the hypergradient search as the engine evaluates it (fit "
            "and score times of those calls summed over points and folds, from "
            "`cv_results_`, beside it); refit: `refit_time_`; other: the rest (joblib, "
            "bookkeeping).", "",
            markdown_table(["problem", "wall", "prefix", "engine", "scoring",
                            "of which fit + score", "refit", "other", "engine evaluations",
                            "scored points"], profile), "",
            "## Targets", "",
            markdown_table(["problem", "CV score vs the 41-point grid's best (rel.)",
                            "wall / GridSearchCV wall (≤ 0.25)",
                            "to the grid's best: hypergradient vs Optuna (s)",
                            "the same vs Optuna's median over seeds 0-4 (each seed)",
                            f"to within {rel_tol:g} of it (s)"], targets), ""]
    return "\n".join(out)
