"""Lasso with many more features than samples: working-set coordinate descent and the
refined screening grid (issue 18)."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet, Lasso, LassoCV
from sklearn.model_selection import KFold

from skbilevel import BilevelLassoCV
from skbilevel._coordinate_descent import _WS_MIN_FEATURES, CoordinateDescent
from skbilevel._duality_gap import duality_gap
from skbilevel.engine import inner
from skbilevel.engine.loop import GridScreening


def _wide(seed, n=120, d=_WS_MIN_FEATURES + 200, k=15):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:k] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
    return X, X @ coef + 1.0 + 2.0 * rng.standard_normal(n)


def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=torch.float64)


@pytest.mark.parametrize("penalty", ["l1", "elastic_net"])
def test_working_sets_solve_the_full_problem(penalty, global_random_seed):
    """Cold and warm starts along a path, from the null model to a support of ~n/2 (the
    first working set, 100 columns, misses most of it): scikit-learn's solution of the
    whole problem, and a residual that is the full problem's duality gap."""
    X, y = _wide(global_random_seed)
    n = len(y)
    alpha_max = np.abs((X - X.mean(0)).T @ (y - y.mean())).max() / n
    pen = inner.L1() if penalty == "l1" else inner.ElasticNet()
    problem = inner.ProximalProblem.least_squares(_t(X), _t(y)[:, None], pen)
    solver = CoordinateDescent(tol=1e-12, max_iter=100000)
    loose_solver = CoordinateDescent(tol=1e-4)
    w = None
    for fraction in (0.5, 0.1, 0.02, 0.1):
        theta = [np.log(fraction * alpha_max)] if penalty == "l1" else \
            [np.log(fraction * alpha_max / 0.7), np.log(0.7 / 0.3)]
        for w0 in (None, w):  # cold, then warm from the previous point of the path
            sol = solver.solve(problem, _t(theta), w0)
            ref = Lasso(alpha=fraction * alpha_max, tol=1e-12, max_iter=100000) \
                if penalty == "l1" else \
                ElasticNet(alpha=fraction * alpha_max / 0.7, l1_ratio=0.7, tol=1e-12,
                           max_iter=100000)
            ref.fit(X, y)
            np.testing.assert_allclose(sol.w.numpy()[:, 0], ref.coef_, atol=1e-6)
            assert sol.converged
            # A loose solve stops on its gap, which must be the whole problem's.
            loose = loose_solver.solve(problem, _t(theta), w0)
            gap = duality_gap(problem, loose.w, _t(theta))
            assert gap > 1e-9
            np.testing.assert_allclose(loose.residual, gap, rtol=1e-8)
        w = sol.w
    assert np.count_nonzero(ref.coef_) > 30  # the path went well past the first set


def test_refined_grid_finds_a_minimum_between_grid_points():
    """A path whose values have a narrow dip between its best point and the next: the
    coarse points miss it, the three refined points on each side find it."""
    grid = [torch.tensor([t]) for t in np.linspace(0.0, -6.0, 7)]  # step 1, downwards

    def curve(t):  # best coarse point t = -2; the dip at t = -2.5 is deeper
        return (t + 2.0) ** 2 - 0.5 * np.exp(-((t + 2.5) / 0.1) ** 2)

    seen = []

    def evaluate(theta, phase, solver):
        seen.append(float(theta[0]))
        return curve(seen[-1])

    GridScreening(grid, patience=2, refine=3).run(evaluate)
    coarse, refined = seen[:5], seen[5:]
    assert coarse == [0.0, -1.0, -2.0, -3.0, -4.0]  # stopped 2 points past the best
    np.testing.assert_allclose(refined, [-2.75, -2.5, -2.25, -1.25, -1.5, -1.75])
    assert min(curve(t) for t in seen) == curve(-2.5) < min(curve(t) for t in coarse)
    seen.clear()
    GridScreening(grid, patience=2).run(evaluate)
    assert seen == coarse  # refine=0: the coarse path only


def test_wide_lasso_is_no_worse_than_the_lassocv_grid(global_random_seed):
    """On a d >> n design (working sets), the CV error of scikit-learn refits at the tuned
    alpha is no worse than at LassoCV's choice from 100 alphas, to 5e-4."""
    X, y = _wide(global_random_seed)
    splits = list(KFold(5, shuffle=True, random_state=global_random_seed).split(X))

    def cv_mse(alpha):
        return np.mean([np.mean((Lasso(alpha=alpha, tol=1e-12, max_iter=100000)
                                 .fit(X[tr], y[tr]).predict(X[va]) - y[va]) ** 2)
                        for tr, va in splits])

    reg = BilevelLassoCV(cv=splits).fit(X, y)
    # The screening grid was refined: 3 points on each side of its best point, LassoCV's
    # spacing (a factor 10**(1/8 / 4) = 1.07 apart).
    screened = np.sort(reg.history_["alpha"][reg.history_["phase"] == "grid"])[::-1]
    alpha_max = np.abs((X - X.mean(0)).T @ (y - y.mean())).max() / len(y)
    on_grid = np.isclose(np.log10(screened / alpha_max) * 8,
                         np.round(np.log10(screened / alpha_max) * 8))
    assert np.count_nonzero(~on_grid) == 6
    best = np.flatnonzero(on_grid)[np.argmin(np.abs(screened[on_grid] - screened[~on_grid]
                                                    .mean()))]
    np.testing.assert_allclose(np.diff(np.log10(screened[best - 4:best + 5])), -1 / 32)
    grid = LassoCV(alphas=100, cv=splits).fit(X, y)
    assert cv_mse(reg.alpha_) <= cv_mse(grid.alpha_) * (1 + 5e-4)
    ref = Lasso(alpha=reg.alpha_, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-6)


def test_solver_arrays_stay_off_the_problem():
    """The centred copy of the design that coordinate descent builds is cached beside the
    problem, not in it: a fold's problem pickled to a joblib worker carries its design
    once, and the cache dies with the problem."""
    import gc
    import pickle

    from skbilevel import _coordinate_descent

    X, y = _wide(0, n=60, d=300)
    problem = inner.ProximalProblem.least_squares(_t(X), _t(y)[:, None], inner.L1())
    before = len(pickle.dumps(problem))
    CoordinateDescent(tol=1e-8).solve(problem, _t([np.log(0.1)]))
    assert problem in _coordinate_descent._CACHE
    assert len(pickle.dumps(problem)) == before
    cached = len(_coordinate_descent._CACHE)
    del problem
    gc.collect()
    assert len(_coordinate_descent._CACHE) <= cached - 1
