"""BilevelLassoCV and BilevelElasticNetCV: CV-optimal L1-type penalties by hypergradients."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import ElasticNet, ElasticNetCV, Lasso, LassoCV
from sklearn.metrics import f1_score
from sklearn.model_selection import KFold

from skbilevel import BilevelElasticNetCV, BilevelLassoCV
from skbilevel._duality_gap import duality_gap
from skbilevel.engine import inner


def _data(seed, n=80, d=20):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:5] = rng.uniform(1, 3, 5) * rng.choice([-1, 1], 5)
    return X, X @ coef + 1.0 + rng.standard_normal(n)


def _cv_mse(X, y, splits, alpha):
    errors = []
    for tr, va in splits:
        fit = Lasso(alpha=alpha, tol=1e-12, max_iter=100000).fit(X[tr], y[tr])
        errors.append(np.mean((fit.predict(X[va]) - y[va]) ** 2))
    return float(np.mean(errors))


def test_alpha_is_cv_optimal_and_refit_is_sklearn_lasso(global_random_seed):
    X, y = _data(global_random_seed)
    splits = list(KFold(4, shuffle=True, random_state=global_random_seed).split(X))
    reg = BilevelLassoCV(cv=splits).fit(X, y)
    ref = Lasso(alpha=reg.alpha_, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(reg.intercept_, ref.intercept_, atol=1e-6)
    # within one step of a fine grid's optimum, with a CV error no worse
    alpha_max = np.abs((X - X.mean(0)).T @ (y - y.mean())).max() / len(y)
    grid = alpha_max * np.logspace(0, -3, 61)
    values = [_cv_mse(X, y, splits, a) for a in grid]
    best = int(np.argmin(values))
    assert _cv_mse(X, y, splits, reg.alpha_) <= values[best] * (1 + 1e-8)
    assert abs(np.log(reg.alpha_ / grid[best])) <= np.log(grid[0] / grid[1]) + 1e-12
    np.testing.assert_allclose(reg.best_cv_error_, _cv_mse(X, y, splits, reg.alpha_), rtol=1e-6)


@pytest.mark.parametrize("hypergradient", ["forward", "reverse"])
def test_hypergradient_methods_find_the_same_alpha(hypergradient):
    X, y = _data(0)
    splits = list(KFold(4, shuffle=True, random_state=0).split(X))
    implicit = BilevelLassoCV(cv=splits).fit(X, y)
    other = BilevelLassoCV(cv=splits, hypergradient=hypergradient).fit(X, y)
    np.testing.assert_allclose(other.alpha_, implicit.alpha_, rtol=1e-4)


def test_per_feature_penalties_beat_the_shared_one_on_cv():
    X, y = _data(1)
    splits = list(KFold(4, shuffle=True, random_state=1).split(X))
    shared = BilevelLassoCV(cv=splits).fit(X, y)
    weighted = BilevelLassoCV(cv=splits, alpha_per_feature=True).fit(X, y)
    assert weighted.alpha_.shape == (X.shape[1],)
    assert weighted.best_cv_error_ <= shared.best_cv_error_
    assert weighted.history_["alpha"].shape[1] == X.shape[1]


@pytest.mark.parametrize("seed", range(4))
def test_weighted_lasso_recovers_the_support(seed):
    # n=600, d=300, 10 true features. LassoCV's CV-optimal alpha keeps many spurious
    # features (F1 0.24-0.53 on these seeds); the per-feature penalties, started from the
    # adaptive-Lasso weights and early-stopped on a holdout, find the true support
    # (F1 0.91-1.0) and predict better on fresh data.
    rng = np.random.default_rng(seed)
    n, d = 600, 300
    X = rng.standard_normal((n + 500, d))
    coef = np.zeros(d)
    coef[:10] = rng.uniform(1, 2, 10) * rng.choice([-1, 1], 10)
    y = X @ coef + 2.0 * rng.standard_normal(n + 500)
    X_test, y_test, X, y = X[n:], y[n:], X[:n], y[:n]
    weighted = BilevelLassoCV(alpha_per_feature=True, random_state=0).fit(X, y)
    lasso_cv = LassoCV(cv=5).fit(X, y)
    assert "holdout_objective" in weighted.history_  # early_stopping="auto" is on
    assert f1_score(coef != 0, weighted.coef_ != 0) >= 0.9
    assert f1_score(coef != 0, weighted.coef_ != 0) > f1_score(coef != 0, lasso_cv.coef_ != 0)

    def test_mse(model):
        return np.mean((model.predict(X_test) - y_test) ** 2)

    assert test_mse(weighted) < test_mse(lasso_cv)


def _correlated(seed, n=120, d=30):
    """Groups of strongly correlated columns: the elastic net's home ground."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 6))
    X = np.repeat(latent, 5, axis=1) + 0.3 * rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:10] = rng.uniform(0.5, 1.5, 10)
    return X, X @ coef + rng.standard_normal(n)


def test_elastic_net_beats_the_elastic_net_cv_grid_and_refits_sklearn(global_random_seed):
    X, y = _correlated(global_random_seed)
    splits = list(KFold(4, shuffle=True, random_state=global_random_seed).split(X))
    reg = BilevelElasticNetCV(cv=splits).fit(X, y)
    ref = ElasticNet(alpha=reg.alpha_, l1_ratio=reg.l1_ratio_, tol=1e-12,
                     max_iter=100000).fit(X, y)
    np.testing.assert_allclose(reg.coef_, ref.coef_, atol=1e-6)
    np.testing.assert_allclose(reg.intercept_, ref.intercept_, atol=1e-6)
    grid = ElasticNetCV(l1_ratio=[.1, .3, .5, .7, .9, .95, .99], alphas=100, cv=splits,
                        tol=1e-10, max_iter=100000).fit(X, y)
    best_grid = grid.mse_path_.mean(axis=2).min()
    assert reg.best_cv_error_ <= best_grid * (1 + 1e-8)
    assert reg.history_["l1_ratio"].shape == reg.history_["alpha"].shape


def test_sparse_input_gives_the_dense_answer():
    X, y = _data(2)
    splits = list(KFold(4, shuffle=True, random_state=2).split(X))
    dense = BilevelLassoCV(cv=splits).fit(X, y)
    sparse = BilevelLassoCV(cv=splits).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.alpha_, dense.alpha_, rtol=1e-6)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-8)
    fista = BilevelLassoCV(cv=splits, solver="fista").fit(sp.csr_matrix(X), y)
    assert fista.solver_ == "fista"
    np.testing.assert_allclose(fista.alpha_, dense.alpha_, rtol=1e-3)


def test_bad_solver_combinations_are_named():
    X, y = _data(3)
    with pytest.raises(ValueError, match="solver='fista' or 'ista'"):
        BilevelLassoCV(hypergradient="forward", solver="cd").fit(X, y)
    with pytest.raises(ValueError, match="hypergradient"):
        BilevelLassoCV(hypergradient="adjoint").fit(X, y)


def test_duplicated_features_tune_like_the_original():
    """With every column twice, the Lasso splits each coefficient between the copies (its
    solution is not unique, its fitted values are): the CV curve, hence ``alpha_``, is the
    original's. The support system is then exactly singular (minimum-norm solution)."""
    X, y = _data(4, n=60, d=8)
    splits = list(KFold(5, shuffle=True, random_state=0).split(X))
    once = BilevelLassoCV(cv=splits).fit(X, y)
    twice = BilevelLassoCV(cv=splits).fit(np.hstack([X, X]), y)
    # the same curve, searched to the outer tolerance (1e-4) with hypergradients that
    # differ in their fourth digit (coordinate descent is slower on repeated columns)
    np.testing.assert_allclose(twice.alpha_, once.alpha_, rtol=1e-3)
    np.testing.assert_allclose(twice.best_cv_error_, once.best_cv_error_, rtol=1e-6)
    ref = Lasso(alpha=twice.alpha_, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(twice.coef_[:8] + twice.coef_[8:], ref.coef_, atol=1e-6)


def _sklearn_gap(X, y, sw, w, alpha, l1_ratio, c):
    """scikit-learn's ``enet_coordinate_descent`` duality gap (formulation A), divided by
    ``n``, on the centred, weight-scaled design with columns ``X_j / c_j``."""
    n = len(y)
    xm, ym = sw @ X / sw.sum(), sw @ y / sw.sum()
    root = np.sqrt(sw * n / sw.sum())
    Xt, yt = (X - xm) * root[:, None] / c, (y - ym) * root
    v = c * w
    R = yt - Xt @ v
    a, b = alpha * l1_ratio * n, alpha * (1 - l1_ratio) * n
    dual_norm = np.abs(Xt.T @ R - b * v).max()
    primal = 0.5 * (R @ R + b * v @ v) + a * np.abs(v).sum()
    scale = a / dual_norm if dual_norm > a else 1.0
    dual = -0.5 * scale ** 2 * (R @ R + b * v @ v) + scale * (R @ yt)
    return (primal - dual) / n


@pytest.mark.parametrize("penalty", ["l1", "weighted_l1", "elastic_net"])
def test_duality_gap_is_sklearns_at_any_point(penalty, global_random_seed):
    X, y = _data(global_random_seed)
    rng = np.random.default_rng(global_random_seed)
    sw, w = rng.uniform(0.5, 2.0, len(y)), rng.standard_normal(X.shape[1]) * 0.3
    d = X.shape[1]
    theta, alpha, l1_ratio, c = {
        "l1": ([np.log(0.2)], 0.2, 1.0, np.ones(d)),
        "weighted_l1": (np.log(np.linspace(0.05, 0.4, d)), np.linspace(0.05, 0.4, d).mean(),
                        1.0, np.linspace(0.05, 0.4, d) / np.linspace(0.05, 0.4, d).mean()),
        "elastic_net": ([np.log(0.3), np.log(0.7 / 0.3)], 0.3, 0.7, np.ones(d)),
    }[penalty]
    pen = {"l1": inner.L1(), "weighted_l1": inner.WeightedL1(d),
           "elastic_net": inner.ElasticNet()}[penalty]

    def t(a):
        return torch.as_tensor(np.asarray(a), dtype=torch.float64)

    problem = inner.ProximalProblem.least_squares(t(X), t(y)[:, None], pen, t(sw))
    gap = duality_gap(problem, t(w)[:, None], t(theta))
    expected = _sklearn_gap(X, y, sw, w, alpha, l1_ratio, c)
    assert expected > 1e-3  # a point far from the solution: the comparison means something
    np.testing.assert_allclose(gap, expected, rtol=1e-10)


@pytest.mark.parametrize("solver", ["cd", "fista"])
def test_dual_gap_is_a_duality_gap_whatever_the_solver(solver):
    X, y = _data(0)
    reg = BilevelLassoCV(cv=3, solver=solver).fit(X, y)
    expected = _sklearn_gap(X, y, np.ones(len(y)), reg.coef_, reg.alpha_, 1.0, 1.0)
    # The refit is tight: the gap is tiny, and the one at the returned coefficients.
    scale = np.sum((y - y.mean()) ** 2) / len(y)
    assert -1e-12 * scale <= reg.dual_gap_ <= 1e-10 * scale
    np.testing.assert_allclose(reg.dual_gap_, expected, atol=1e-13 * scale)


@pytest.mark.parametrize("make", ["lasso", "logistic"])
def test_a_fold_of_zero_weight_is_refused_by_name(make):
    # KFold without shuffling: the first fifth of the rows is one validation fold.
    from sklearn.model_selection import KFold

    from skbilevel import BilevelLogisticRegressionCV

    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 4))
    y = X[:, 0] + rng.standard_normal(100)
    if make == "logistic":
        y = (y > 0).astype(int)
    sw = np.ones(100)
    sw[:20] = 0.0
    est = BilevelLassoCV(cv=KFold(5)) if make == "lasso" else \
        BilevelLogisticRegressionCV(cv=KFold(5))
    with pytest.raises(ValueError, match="sample_weight .* sums to zero"):
        est.fit(X, y, sample_weight=sw)
    sw[:20] = 1e-3  # small but positive: fitted
    est.fit(X, y, sample_weight=sw)
