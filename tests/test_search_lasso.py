"""HypergradientSearchCV on scikit-learn's Lasso and ElasticNet (the lasso adapters)."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet, Lasso, enet_path
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import HypergradientSearchCV

CV = KFold(5, shuffle=True, random_state=0)
TIGHT = dict(max_iter=100_000, tol=1e-12)  # scikit-learn's refits solved to the end
GRID = np.logspace(-3, 2, 41)
RATIOS = [0.1, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0]  # ElasticNetCV's advice


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(n_samples=120, n_features=15, n_informative=6, noise=20.0,
                           random_state=0)
    return X, y, np.random.default_rng(0).uniform(0.5, 2.0, len(y))


@pytest.fixture(scope="module")
def lasso_search(data):
    X, y, _ = data
    pipe = make_pipeline(StandardScaler(), Lasso(**TIGHT))
    return HypergradientSearchCV(pipe, {"lasso__alpha": (1e-3, 1e2)}, cv=CV,
                                 scoring="neg_mean_squared_error").fit(X, y)


@pytest.fixture(scope="module")
def enet_search(data):
    X, y, _ = data
    pipe = make_pipeline(StandardScaler(), ElasticNet(**TIGHT))
    return HypergradientSearchCV(pipe, {"elasticnet__alpha": (1e-3, 1e2),
                                        "elasticnet__l1_ratio": (0.0, 1.0)}, cv=CV,
                                 scoring="r2").fit(X, y)


def _cv_scores(X, y, alphas, l1_ratio, score="mse"):
    """GridSearchCV's mean_test_score of StandardScaler + ElasticNet at ``alphas`` (one
    warm-started path per fold: the same folds and objective, far cheaper)."""
    out = np.zeros(len(alphas))
    for train, val in CV.split(X):
        scaler = StandardScaler().fit(X[train])
        X_tr, X_va = scaler.transform(X[train]), scaler.transform(X[val])
        x_mean, y_mean = X_tr.mean(0), y[train].mean()
        _, coefs, _ = enet_path(X_tr - x_mean, y[train] - y_mean, l1_ratio=l1_ratio,
                                alphas=alphas, **TIGHT)
        err = (((X_va - x_mean) @ coefs + y_mean - y[val][:, None]) ** 2).sum(0)
        out += -err / len(val) if score == "mse" else \
            1 - err / ((y[val] - y[val].mean()) ** 2).sum()
    return out / CV.get_n_splits()


def test_lasso_at_least_as_good_as_a_41_point_grid(data, lasso_search):
    X, y, _ = data
    grid = GridSearchCV(make_pipeline(StandardScaler(), Lasso(**TIGHT)),
                        {"lasso__alpha": GRID}, cv=CV,
                        scoring="neg_mean_squared_error").fit(X, y)
    assert lasso_search.best_score_ >= grid.best_score_
    # The grid's best is a kink-free basin's floor: the search lands within 0.1 decade.
    found = lasso_search.best_params_["lasso__alpha"]
    assert abs(np.log10(found / grid.best_params_["lasso__alpha"])) < 0.1
    assert len(lasso_search.cv_results_["params"]) < 15  # vs the grid's 41


def test_elastic_net_at_least_as_good_as_a_2d_grid(data, enet_search):
    X, y, _ = data
    grid = max(_cv_scores(X, y, GRID[::-1], r, "r2").max() for r in RATIOS)
    # The path helper is GridSearchCV's mean_test_score: check it on the search's best.
    best = enet_search.best_params_
    mine = _cv_scores(X, y, [best["elasticnet__alpha"]], best["elasticnet__l1_ratio"], "r2")
    assert mine[0] == pytest.approx(enet_search.best_score_, rel=1e-9)
    assert enet_search.best_score_ >= grid
    assert len(enet_search.cv_results_["params"]) < 287 / 4  # a quarter of the grid


def _fd_scores(pipe, X, y, params, sample_weight=None, score="mse"):
    """The mean over ``CV``'s folds of scikit-learn's refits at ``params``."""
    total = 0.0
    for train, val in CV.split(X):
        model = clone(pipe).set_params(**params)
        fit = {} if sample_weight is None else {
            f"{pipe.steps[-1][0]}__sample_weight": sample_weight[train]}
        pred = model.fit(X[train], y[train], **fit).predict(X[val])
        err = ((pred - y[val]) ** 2).sum()
        total += err / len(val) if score == "mse" else \
            err / ((y[val] - y[val].mean()) ** 2).sum()  # 1 - R^2
    return total / CV.get_n_splits()


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lasso_hypergradient_equals_finite_differences_of_sklearn_refits(data, fit_intercept):
    # With sample weights in the fits: the engine's weighted problem is scikit-learn's.
    X, y, sw = data
    y = y + 50.0  # an intercept to fit, or not
    pipe = make_pipeline(StandardScaler(), Lasso(fit_intercept=fit_intercept, **TIGHT))
    search = HypergradientSearchCV(pipe, {"lasso__alpha": (1e-2, 1e1)}, cv=CV,
                                   scoring="neg_mean_squared_error", refit=False)
    search.fit(X, y, lasso__sample_weight=sw)
    grads = np.asarray(search.cv_results_["hypergradient"], dtype=float)
    i = int(np.nanargmax(np.abs(grads)))  # the steepest point: a relative check means much
    alpha, h = search.cv_results_["params"][i]["lasso__alpha"], 1e-4
    up, down = (_fd_scores(pipe, X, y, {"lasso__alpha": alpha * np.exp(s)}, sw)
                for s in (h, -h))
    # The support is stable over +-h (the CV MSE is smooth there): tight agreement.
    assert grads[i] == pytest.approx((up - down) / (2 * h), rel=1e-5)  # observed: 3e-7
    assert abs(grads[i]) > 1.0


def test_elastic_net_hypergradients_equal_finite_differences(data):
    # l1_ratio's box keeps the search's points inside (0, 1), where the derivative in
    # l1_ratio is two-sided; the tuned criterion is one minus the mean fold R^2.
    X, y, _ = data
    pipe = make_pipeline(StandardScaler(), ElasticNet(**TIGHT))
    search = HypergradientSearchCV(pipe, {"elasticnet__alpha": (1e-2, 1e1),
                                          "elasticnet__l1_ratio": (0.2, 0.8)}, cv=CV,
                                   scoring="r2", refit=False).fit(X, y)
    results = search.cv_results_
    g_alpha = np.asarray(results["hypergradient"], dtype=float)
    g_ratio = np.asarray(results["hypergradient_l1_ratio"], dtype=float)
    i = int(np.nanargmax(np.abs(g_ratio)))
    params, h = results["params"][i], 1e-5
    alpha, ratio = params["elasticnet__alpha"], params["elasticnet__l1_ratio"]

    def cv(a, r):
        return _fd_scores(pipe, X, y, {"elasticnet__alpha": a, "elasticnet__l1_ratio": r},
                          score="r2")

    d_log_alpha = (cv(alpha * np.exp(h), ratio) - cv(alpha * np.exp(-h), ratio)) / (2 * h)
    d_ratio = (cv(alpha, ratio + h) - cv(alpha, ratio - h)) / (2 * h)
    # (Observed: both agree to 2e-6 relative.)
    assert g_alpha[i] == pytest.approx(d_log_alpha, rel=1e-4)
    assert g_ratio[i] == pytest.approx(d_ratio, rel=1e-4)
    assert abs(g_ratio[i]) > 1e-4


def test_cv_results_columns(data, lasso_search, enet_search):
    X, y, _ = data
    reference = GridSearchCV(make_pipeline(StandardScaler(), Lasso()), {"lasso__alpha": [1.0]},
                             cv=CV).fit(X, y).cv_results_
    assert set(lasso_search.cv_results_) == set(reference) | {"iter", "hypergradient"}
    enet = enet_search.cv_results_
    assert {"param_elasticnet__alpha", "param_elasticnet__l1_ratio", "hypergradient",
            "hypergradient_l1_ratio", "iter"} <= set(enet)
    path = enet_search.path_
    ratios = np.array([p["params"]["elasticnet__l1_ratio"] for p in path])
    # The screening grid's 5 values of l1_ratio (dense near the Lasso), the optimum at 1.
    np.testing.assert_array_equal(np.unique(ratios), [0.0, 0.5, 0.9, 0.99, 1.0])
    # The screening grid (no gradient) then the L-BFGS-B points (both gradients); only
    # the latter are scored by scikit-learn (score_screening=False).
    grads = np.array([[p["hypergradient"]["alpha"], p["hypergradient"]["l1_ratio"]]
                      for p in path])
    assert np.isnan(grads[0]).all() and np.isfinite(grads[-1]).all()
    assert np.array_equal(np.isnan(grads[:, 0]), np.isnan(grads[:, 1]))
    assert np.isfinite(enet["hypergradient"].astype(float)).all()
    assert np.isfinite(enet["hypergradient_l1_ratio"].astype(float)).all()
    scored = {tuple(p["params"].values()) for p in path if p["scored"]}
    assert scored == {tuple(params.values()) for params in enet["params"]}


def test_elastic_net_alpha_only_keeps_its_l1_ratio(data):
    X, y, _ = data
    pipe = make_pipeline(StandardScaler(), ElasticNet(l1_ratio=0.3, **TIGHT))
    search = HypergradientSearchCV(pipe, {"elasticnet__alpha": (1e-3, 1e2)}, cv=CV,
                                   scoring="neg_mean_squared_error").fit(X, y)
    assert search.best_estimator_[-1].l1_ratio == 0.3
    assert "hypergradient_l1_ratio" not in search.cv_results_
    assert search.best_score_ >= _cv_scores(X, y, GRID[::-1], 0.3).max()


@pytest.mark.parametrize("estimator, bounds, match", [
    (ElasticNet(), {"alpha": (1e-2, 1.0), "l1_ratio": (0.5, 1.5)},
     r"param_bounds\['l1_ratio'\] .* 0 <= low < high <= 1"),
    (make_pipeline(StandardScaler(), ElasticNet()),
     {"elasticnet__alpha": (1e-2, 1.0), "elasticnet__l1_ratio": (0.6, 0.2)},
     r"'elasticnet__l1_ratio'.* 0 <= low < high <= 1"),
    (ElasticNet(), {"alpha": (1e-2, 1.0), "l1_ratio": "all"}, r"'l1_ratio'"),
    (Lasso(), {"alpha": (1e-2, 1.0), "l1_ratio": (0.1, 0.9)}, "'l1_ratio'"),
    (Lasso(positive=True), {"alpha": (1e-2, 1.0)}, "positive=False"),
    (ElasticNet(positive=True), {"alpha": (1e-2, 1.0)}, "positive=False"),
    (ElasticNet(l1_ratio=1.5), {"alpha": (1e-2, 1.0)}, r"l1_ratio must be in \[0, 1\]"),
    (Lasso(), {"alpha": (0.0, 1.0)}, "0 < low < high"),
])
def test_clear_errors(data, estimator, bounds, match):
    X, y, _ = data
    with pytest.raises(ValueError, match=match):
        HypergradientSearchCV(estimator, bounds, cv=3).fit(X, y)


def test_two_targets_are_refused(data):
    X, y, _ = data
    with pytest.raises(ValueError, match="y must be 1-D"):
        HypergradientSearchCV(Lasso(), {"alpha": (1e-2, 1.0)}, cv=3).fit(
            X, np.c_[y, y])
