"""HypergradientSearchCV: points scored as the engine evaluates them, and the polish of
closed-form ridge paths (never below a 41-point grid on a flat CV curve)."""

import re

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import HypergradientSearchCV
from skbilevel._search_adapters._ridge import RidgeAdapter

CV = KFold(5, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def flat():
    # n >> d: a CV curve flat over decades of alpha. Without the polish the search stopped
    # 2.7e-6 (relative) below the 41-point grid's best here.
    return make_regression(n_samples=2000, n_features=6, n_informative=4, noise=30.0,
                           random_state=11)


def _search(**kwargs):
    return HypergradientSearchCV(Ridge(), {"alpha": (1e-4, 1e4)}, cv=CV,
                                 scoring="neg_mean_squared_error", **kwargs)


def test_polish_never_stops_below_the_41_point_grid(flat, monkeypatch):
    X, y = flat
    grid = GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 4, 41)}, cv=CV,
                        scoring="neg_mean_squared_error").fit(X, y)
    search = _search().fit(X, y)
    assert search.best_score_ >= grid.best_score_
    # The polish's points are the engine's: only the final best is scored, so the
    # search scores one point more than without it.
    phases = [p["phase"] for p in search.path_]
    polish = [p for p in search.path_ if p["phase"] == "polish"]
    assert 1 <= len(polish) <= 10 and phases[-len(polish):] == ["polish"] * len(polish)
    assert all(np.isfinite(p["hypergradient"]["alpha"]) for p in polish)
    best = search.best_params_["alpha"]
    assert [p["params"]["alpha"] for p in polish if p["scored"]] == [best]
    assert abs(search.cv_results_["hypergradient"][search.best_index_]) < 1e-4
    # Without it (the search stops at tol=1e-6 relative) it is below the grid's best
    # (by 1.5e-7 relative here).
    monkeypatch.setattr(RidgeAdapter, "polish_tol", lambda self, folds: None)
    unpolished = _search().fit(X, y)
    assert unpolished.best_score_ < grid.best_score_
    assert "polish" not in {p["phase"] for p in unpolished.path_}
    assert len(unpolished.cv_results_["params"]) == len(search.cv_results_["params"]) - 1


def _announcing_scorer(estimator, X, y):
    """neg MSE, announcing on stdout the penalty it scores."""
    print(f"SCORED alpha={estimator[-1].alpha!r}")
    return -mean_squared_error(y, estimator.predict(X))


def _events(out):
    """The engine's evaluations ("eval", phase) and the scorer's calls ("scored", alpha),
    in the order printed."""
    events = []
    for line in out.splitlines():
        if m := re.search(r" eval +\d+ +(\w+) ", line):
            events.append(("eval", m.group(1)))
        elif m := re.match(r"SCORED alpha=(.*)$", line):
            events.append(("scored", float(m.group(1))))
    return events


def test_each_point_is_scored_as_it_is_evaluated(capsys):
    # One job: each combination tuned in turn here, each hypergradient point scored by
    # scikit-learn before the engine evaluates the next (parallel jobs give the same rows
    # in the same order: tests/test_search_dask.py).
    X, y = make_regression(n_samples=150, n_features=8, noise=20.0, random_state=0)
    search = HypergradientSearchCV(
        make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": (1e-3, 1e3)},
        param_grid={"ridge__fit_intercept": [True, False]}, cv=CV,
        scoring=_announcing_scorer, verbose=2).fit(X, y)
    events = _events(capsys.readouterr().out)
    assert sum(kind == "eval" for kind, _ in events) == search.n_iter_
    # One group of 5 fold scores per row of cv_results_, in its order.
    scored = [alpha for kind, alpha in events if kind == "scored"]
    assert scored[::5] == [p["ridge__alpha"] for p in search.cv_results_["params"]]
    assert all(scored[i:i + 5] == [scored[i]] * 5 for i in range(0, len(scored), 5))
    # Each group right after the evaluation of its point by the hypergradient search,
    # but for a path's best point when it is a screened or polished one (scored last).
    starts = [i for i, (kind, _) in enumerate(events) if kind == "scored"][::5]
    after_optimize = sum(events[i - 1] == ("eval", "optimize") for i in starts)
    assert after_optimize >= max(4, len(starts) - 2)
    for combo in (True, False):
        path = [p for p in search.path_ if p["params"]["ridge__fit_intercept"] is combo]
        n_optimize = sum(p["phase"] == "optimize" for p in path)
        scored_points = {p["params"]["ridge__alpha"] for p in path if p["scored"]}
        assert n_optimize >= 2 and len(scored_points) <= n_optimize + 1


def test_score_screening_rows_in_the_order_first_evaluated(flat):
    X, y = flat
    search = _search(score_screening=True).fit(X[:300], y[:300])
    results = search.cv_results_
    assert np.all(np.diff(results["iter"]) > 0)
    path = search.path_
    assert len(results["params"]) == len({p["params"]["alpha"] for p in path})
    # A screened point evaluated again by the search reports that evaluation's
    # hypergradient (it was scored once its path was over).
    rows = {p["alpha"]: g for p, g in zip(results["params"], results["hypergradient"])}
    again = [p for p in path if p["phase"] != "grid" and any(
        q["phase"] == "grid" and q["params"] == p["params"] for q in path)]
    assert again
    for p in again:
        assert rows[p["params"]["alpha"]] == p["hypergradient"]["alpha"]
