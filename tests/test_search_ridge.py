"""The ridge family of HypergradientSearchCV: folds from block moments, one source of truth
with BilevelRidgeCV, sparse prefix output."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, ShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

from skbilevel import BilevelRidgeCV, HypergradientSearchCV
from skbilevel._search import _transform_fold
from skbilevel._search_adapters._ridge import RidgeAdapter as Adapter
from skbilevel.engine.loop import FoldEvaluator

CV = KFold(5, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(n_samples=150, n_features=8, n_informative=5, noise=15.0,
                           random_state=0)
    return X, y, np.random.default_rng(0).uniform(0.5, 2.0, len(y))


def identity():
    """An identity step that is fitted (so the search transforms every fold by itself)."""
    return StandardScaler(with_mean=False, with_std=False)


def fold_data(X, y, prefix=None, sample_weight=None, cv=CV):
    params = {} if sample_weight is None else {"ridge__sample_weight": sample_weight}
    pipe = prefix and make_pipeline(prefix)
    return [_transform_fold(pipe, "ridge", X, y, params, tr, va) for tr, va in cv.split(X)]


def evaluate(folds, alpha):
    """Mean CV objective and its derivative in log(alpha), by the engine's evaluator."""
    adapter = Adapter()
    solver, method, _ = adapter.solvers(folds)
    theta = torch.tensor([np.log(alpha)], dtype=torch.float64)
    value, grad = FoldEvaluator(folds, solver, method)(theta, True, "optimize")
    return float(value), float(grad[0])


@pytest.mark.parametrize("objective", ["mse", "r2"])
@pytest.mark.parametrize("weighted", [False, True])
def test_block_moment_folds_equal_per_fold_grams(data, objective, weighted):
    X, y, sw = data
    folds = fold_data(X, y, sample_weight=sw if weighted else None)
    assert all(f.rows is not None for f in folds)
    fast = Adapter().folds(Ridge(), folds, objective)
    slow = Adapter().folds(Ridge(), folds, objective, from_blocks=False)
    # The fast folds hold no rows: every training Gram is the total minus a block's.
    assert all(f.problem.design is None for f in fast)
    assert all(f.problem.design is not None for f in slow)
    for alpha in (1e-3, 0.7, 30.0, 1e4):
        v_fast, g_fast = evaluate(fast, alpha)
        v_slow, g_slow = evaluate(slow, alpha)
        assert v_fast == pytest.approx(v_slow, rel=1e-10)
        assert g_fast == pytest.approx(g_slow, rel=1e-8, abs=1e-12 * abs(v_slow))


def test_fold_objective_is_scikit_learns_cv_error(data):
    X, y, _ = data
    folds = Adapter().folds(Ridge(), fold_data(X, y), "mse")
    for alpha in (0.01, 3.0, 300.0):
        mse = -cross_val_score(Ridge(alpha=alpha), X, y, cv=CV,
                               scoring="neg_mean_squared_error").mean()
        r2 = cross_val_score(Ridge(alpha=alpha), X, y, cv=CV, scoring="r2").mean()
        assert evaluate(folds, alpha)[0] == pytest.approx(mse, rel=1e-10)
        r2_folds = Adapter().folds(Ridge(), fold_data(X, y), "r2")
        assert evaluate(r2_folds, alpha)[0] == pytest.approx(1 - r2, rel=1e-10)
    # The hypergradient is the derivative of that error in log(alpha).
    h, alpha = 1e-5, 3.0
    up, down = (evaluate(folds, alpha * np.exp(s))[0] for s in (h, -h))
    assert evaluate(folds, alpha)[1] == pytest.approx((up - down) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("scoring", ["neg_mean_squared_error", "r2"])
def test_search_with_block_folds_equals_the_per_fold_route(data, scoring):
    X, y, sw = data

    def search(step):  # sample_weight of the final step (not forwarded to the scorer)
        return HypergradientSearchCV(make_pipeline(step, Ridge()), {"ridge__alpha": (1e-3, 1e4)},
                                     cv=CV, scoring=scoring).fit(X, y, ridge__sample_weight=sw)

    fast = search(FunctionTransformer())  # learns nothing: block moments
    slow = search(identity())  # fitted per fold: a Gram per fold
    results = fast.cv_results_, slow.cv_results_
    alphas = [[p["ridge__alpha"] for p in r["params"]] for r in results]
    np.testing.assert_allclose(*alphas, rtol=1e-10)
    np.testing.assert_allclose(*(r["hypergradient"] for r in results), rtol=1e-7, atol=1e-12)
    assert fast.best_score_ == pytest.approx(slow.best_score_, rel=1e-10)


def test_stateless_prefix_takes_the_block_route(data):
    X, y, _ = data
    for prefix in (PolynomialFeatures(2), FunctionTransformer(np.tanh)):
        folds = fold_data(X, y, prefix)
        assert all(f.rows is not None for f in folds)
        # The training features are computed on demand (a fold pickles without them).
        copy = pickle.loads(pickle.dumps(folds[0]))
        np.testing.assert_allclose(copy.X_train, prefix.fit_transform(X[folds[0].rows[0]]))
    # A prefix that learns from its rows: per fold.
    assert all(f.rows is None for f in fold_data(X, y, StandardScaler()))
    # Equal results through both routes (PolynomialFeatures then a fitted identity).
    fast = HypergradientSearchCV(make_pipeline(PolynomialFeatures(2), Ridge()),
                                 {"ridge__alpha": (1e-2, 1e3)}, cv=CV).fit(X, y)
    slow = HypergradientSearchCV(make_pipeline(PolynomialFeatures(2), identity(), Ridge()),
                                 {"ridge__alpha": (1e-2, 1e3)}, cv=CV).fit(X, y)
    assert fast.best_params_["ridge__alpha"] == pytest.approx(
        slow.best_params_["ridge__alpha"], rel=1e-10)


def test_splits_that_are_not_a_partition_use_per_fold_grams(data):
    X, y, _ = data
    cv = ShuffleSplit(4, test_size=0.3, random_state=0)
    folds = fold_data(X, y, cv=cv)
    built = Adapter().folds(Ridge(), folds, "mse")
    assert all(f.problem.design is not None for f in built)
    for alpha in (0.1, 10.0):
        mse = -cross_val_score(Ridge(alpha=alpha), X, y, cv=cv,
                               scoring="neg_mean_squared_error").mean()
        assert evaluate(built, alpha)[0] == pytest.approx(mse, rel=1e-10)


def test_one_source_of_truth_with_bilevel_ridge_cv(data):
    X, y, _ = data
    reg = BilevelRidgeCV(cv=CV).fit(X, y)
    # The adapter's folds give BilevelRidgeCV's CV error at every alpha it evaluated ...
    folds = Adapter().folds(Ridge(), fold_data(X, y), "mse")
    history = list(zip(reg.history_["alpha"], reg.history_["objective"]))
    for alpha, objective in history[::3]:
        assert evaluate(folds, float(alpha))[0] == pytest.approx(objective, rel=1e-10)
    # ... and the search reaches its CV error (both minimise it on a flat curve, which
    # moves by 3e-8 relative over +-2 % of alpha around the minimum); BilevelRidgeCV stops
    # at tol, the search polishes its closed-form path further.
    search = HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e4)}, cv=CV,
                                   scoring="neg_mean_squared_error").fit(X, y)
    assert search.best_params_["alpha"] == pytest.approx(reg.alpha_, rel=2e-2)
    assert -search.best_score_ == pytest.approx(reg.best_cv_error_, rel=1e-6)
    assert -search.best_score_ <= reg.best_cv_error_


def test_per_feature_bounds_point_to_bilevel_ridge_cv(data):
    X, y, _ = data
    for bounds in ([(1e-3, 1e3)] * X.shape[1], np.tile([1e-3, 1e3], (X.shape[1], 1))):
        search = HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
                                       {"ridge__alpha": bounds})
        with pytest.raises(ValueError, match=r"BilevelRidgeCV\(alpha_per_feature=True\)"):
            search.fit(X, y)
    with pytest.raises(ValueError, match="must be a pair"):  # not a per-feature request
        HypergradientSearchCV(Ridge(), {"alpha": (1.0, 2.0, 3.0)}).fit(X, y)
