"""PrivateHyperparamSearch: the budget is kept, the noise-free limit is the non-private
choice, the private fit is close to it at epsilon=1, and bad input is refused by name."""

import math
import pickle

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from sklearn.base import clone
from sklearn.linear_model import Lasso, LogisticRegression, Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV

from skbilevel import PrivateHyperparamSearch
from skbilevel import _private_methods
from skbilevel._private_base import PrivateMethod, PrivateTuning
from skbilevel.engine.dp import calibrate, gaussian_event

from .test_estimator_accounting import fresh_epsilon

BOUNDS = {"alpha": (1e-4, 1e4)}


def ridge_data(n, d, seed=0, intercept=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    y = X @ (0.5 * rng.standard_normal(d)) + 0.5 * rng.standard_normal(n) + intercept
    return X, y


def search(**params):
    settings = dict(estimator=Ridge(), param_bounds=BOUNDS, epsilon=1.0, delta=1e-6,
                    data_norm=1.5, y_bound=2.5, random_state=0)
    return PrivateHyperparamSearch(**{**settings, **params})


class FixedTheta(PrivateMethod):
    """A stand-in tuning method: one Gaussian release of its budget, a fixed theta; it
    exercises the budget split and the refits of both families."""

    name = "fixed"
    kinds = frozenset({"ridge", "logistic"})

    def tune(self, task, epsilon, delta, ledger, rng, *, max_iter, progress=None):
        multiplier = calibrate(lambda s: gaussian_event(s, 3), epsilon, delta, lower=1e-8)
        ledger.spend("tuning: stand-in", gaussian_event(multiplier, 3), mechanism="gaussian",
                     noise_multiplier=multiplier, releases=3, sensitivity=1.0)
        return PrivateTuning(theta=0.0, history={"theta": [0.0]}, n_iter=1)


@pytest.fixture
def fixed_method(monkeypatch):
    monkeypatch.setitem(_private_methods.PRIVATE_METHODS, "fixed", FixedTheta)
    monkeypatch.setitem(PrivateHyperparamSearch._parameter_constraints, "method", [str])


@pytest.mark.parametrize("seed", range(6))
def test_spent_epsilon_is_within_budget_and_recomputable(seed, fixed_method):
    rng = np.random.default_rng(seed)
    eps, delta = 10 ** rng.uniform(-1, 1), 10 ** rng.uniform(-9, -4)
    n, d = int(rng.integers(50, 400)), int(rng.integers(1, 6))
    X, y = ridge_data(n, d, seed)
    method = ["sufficient-statistics", "fixed"][seed % 2]
    if seed % 3 == 2:  # logistic: the refit's Gram and gradients after the stand-in's
        model = PrivateHyperparamSearch(
            LogisticRegression(fit_intercept=bool(seed % 2)), {"C": (1e-2, 1e2)},
            epsilon=eps, delta=delta, data_norm=1.0, method="fixed", random_state=seed,
            budget_split=rng.uniform(0.1, 0.9)).fit(X, y > np.median(y))
    else:
        model = search(epsilon=eps, delta=delta, method=method, cv=int(rng.integers(2, 7)),
                       estimator=Ridge(fit_intercept=bool(seed % 2)),
                       budget_split=rng.uniform(0.1, 0.9), random_state=seed).fit(X, y)
    report = model.privacy_report_
    recomputed = fresh_epsilon(report["dp_event"], delta, report["accountant"])
    assert model.epsilon_ == pytest.approx(recomputed, rel=1e-12)
    assert model.epsilon_ <= eps * (1 + 1e-9)
    # The refit's noise is calibrated against the composition: the budget is used up.
    assert model.epsilon_ == pytest.approx(eps, rel=1e-3)
    assert model.delta_ == delta and report["delta"] == delta
    assert report["phases"][-1]["phase"].startswith(
        "tuning" if method == "sufficient-statistics" and seed % 3 != 2 else "refit")


def test_logistic_refit_is_a_plain_classifier(fixed_method):
    X, y = ridge_data(600, 4, 1)
    labels = np.where(y > np.median(y), "yes", "no")
    model = PrivateHyperparamSearch(LogisticRegression(), {"C": (1e-2, 1e2)}, epsilon=1e6,
                                    delta=1e-6, data_norm=2.0, method="fixed",
                                    random_state=0).fit(X, labels)
    assert model.best_params_ == {"C": 1.0}
    assert list(model.classes_) == ["no", "yes"]
    assert model.predict_proba(X).shape == (600, 2)
    # At epsilon=1e6 the refit's noise is small (its Gram and 20 gradients):
    # the L2 fit on the clipped rows augmented by the constant data_norm.
    norms = np.linalg.norm(X, axis=1)
    Xa = np.hstack([X * np.minimum(1, 2.0 / norms)[:, None], np.full((600, 1), 2.0)])
    plain = LogisticRegression(fit_intercept=False, tol=1e-10).fit(Xa, labels == "yes")
    np.testing.assert_allclose(model.best_estimator_.coef_[0], plain.coef_[0, :4], atol=0.02)
    assert model.best_estimator_.intercept_[0] == pytest.approx(2.0 * plain.coef_[0, 4],
                                                               abs=0.04)
    assert model.score(X, labels) > 0.65  # the labels are noisy: 0.69 without privacy


def exact_cv_choice(X, y, splits, bounds=BOUNDS["alpha"]):
    """argmin over log alpha of the summed validation SSE of sklearn's Ridge, same folds."""
    def sse(t):
        return sum(((Ridge(alpha=math.exp(t)).fit(X[tr], y[tr]).predict(X[va]) - y[va]) ** 2)
                   .sum() for tr, va in splits)
    grid = np.linspace(*np.log(bounds), 81)
    best = int(np.argmin([sse(t) for t in grid]))
    return minimize_scalar(sse, bounds=(grid[best - 1], grid[best + 1]), method="bounded",
                           options={"xatol": 1e-5}).x


def private_splits(random_state, cv, n):
    """The estimator's blocks: the first draws of its generator."""
    rng = np.random.default_rng(np.random.RandomState(random_state).randint(2**32))
    assignment = rng.integers(cv, size=n)
    return [(np.flatnonzero(assignment != k), np.flatnonzero(assignment == k))
            for k in range(cv)]


def test_huge_epsilon_recovers_the_non_private_choice_on_the_same_folds():
    X, y = ridge_data(3000, 8, 2)
    X, y = X * 2.0, y  # some rows above data_norm=1.5: compare on the clipped data
    model = search(epsilon=1e6, random_state=3).fit(X, y)
    norms = np.linalg.norm(X, axis=1)
    Xc = X * np.minimum(1, 1.5 / norms)[:, None]
    yc = np.clip(y, -2.5, 2.5)
    assert (norms > 1.5).mean() > 0.2
    expected = exact_cv_choice(Xc, yc, private_splits(3, 5, len(y)))
    assert math.log(model.best_params_["alpha"]) == pytest.approx(expected, abs=0.02)
    plain = Ridge(alpha=model.best_params_["alpha"]).fit(Xc, yc)
    np.testing.assert_allclose(model.best_estimator_.coef_, plain.coef_, atol=1e-3)
    assert model.best_estimator_.intercept_ == pytest.approx(plain.intercept_, abs=1e-3)


def test_epsilon_one_is_within_five_percent_of_non_private_tuning():
    X, y = ridge_data(40000, 10, 0)
    (X, Xt), (y, yt) = np.split(X, 2), np.split(y, 2)
    reference = RidgeCV(alphas=np.logspace(-4, 4, 81)).fit(X, y)
    base = np.mean((reference.predict(Xt) - yt) ** 2)
    ratios = [np.mean((search(random_state=seed).fit(X, y).predict(Xt) - yt) ** 2) / base
              for seed in range(3)]
    assert max(ratios) < 1.05, ratios


@pytest.mark.parametrize("params, message", [
    (dict(epsilon=0.0), "epsilon"),
    (dict(epsilon=-1.0), "epsilon"),
    (dict(epsilon=float("nan")), "epsilon"),
    (dict(epsilon=float("inf")), "epsilon"),
    (dict(delta=None), "delta is required"),
    (dict(delta=0.0), "delta"),
    (dict(delta=1.0), "delta"),
    (dict(delta=float("nan")), "delta"),
    (dict(data_norm=None), "data_norm is required"),
    (dict(y_bound=None), "y_bound is required"),
    (dict(estimator=Lasso()), "supports .*Ridge.*LogisticRegression.*got Lasso"),
    (dict(param_bounds={"C": (1, 2)}), "tunes 'alpha'"),
    (dict(param_bounds={"alpha": (0, 2)}), "0 < low < high"),
    (dict(param_bounds={"alpha": 3}), "pair"),
    (dict(estimator=Ridge(positive=True)), "positive"),
    (dict(cv=1), "cv"),
])
def test_bad_parameters_are_named(params, message):
    X, y = ridge_data(60, 3)
    with pytest.raises(ValueError, match=message):
        search(**params).fit(X, y)


def test_bad_input_is_named():
    X, y = ridge_data(60, 3)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        search().fit(X, y)
    logistic = dict(estimator=LogisticRegression(), param_bounds={"C": (0.1, 10)},
                    y_bound=None)
    with pytest.raises(ValueError, match="binary"):
        search(**logistic).fit(X[1:], np.arange(59) % 3)
    with pytest.raises(ValueError, match="y_bound applies to regression only"):
        search(**{**logistic, "y_bound": 1.0}).fit(X[1:], np.arange(59) % 2)
    with pytest.raises(ValueError, match="L2 penalty"):
        search(**{**logistic, "estimator": LogisticRegression(l1_ratio=1.0)}).fit(
            X[1:], np.arange(59) % 2)


def test_bounds_are_enforced_not_read():
    """Rows beyond data_norm and targets beyond y_bound count as if on the bound."""
    X, y = ridge_data(500, 4, 5)
    X[:50] *= 10
    y[:20] *= 10
    norms = np.linalg.norm(X, axis=1)
    Xc, yc = X * np.minimum(1, 1.5 / norms)[:, None], np.clip(y, -2.5, 2.5)
    a, b = search().fit(X, y), search().fit(Xc, yc)
    # Equal up to the rounding of the clipping (the two scale rows in different orders of
    # operations), which the eigendecompositions of the noisy moments carry along.
    assert a.best_params_["alpha"] == pytest.approx(b.best_params_["alpha"], rel=1e-6)
    np.testing.assert_allclose(a.best_estimator_.coef_, b.best_estimator_.coef_, rtol=1e-6,
                               atol=1e-9 * np.abs(b.best_estimator_.coef_).max())


def test_clone_pickle_and_grid_search_keep_the_budget():
    model = search(epsilon=0.7, delta=1e-7, budget_split=0.3)
    for copy in (clone(model), pickle.loads(pickle.dumps(model))):
        assert copy.get_params()["epsilon"] == 0.7 and copy.get_params()["delta"] == 1e-7
        assert copy.get_params()["budget_split"] == 0.3
    X, y = ridge_data(400, 3)
    grid = GridSearchCV(model, {"epsilon": [0.5, 2.0]}, cv=3).fit(X, y)
    assert grid.best_estimator_.epsilon in (0.5, 2.0)
    assert grid.best_estimator_.epsilon_ <= grid.best_estimator_.epsilon * (1 + 1e-9)
    fitted = pickle.loads(pickle.dumps(search().fit(X, y)))
    assert fitted.epsilon_ <= 1.0 and "dp_event" in fitted.privacy_report_


def test_history_holds_only_released_quantities():
    X, y = ridge_data(2000, 4, 7)
    noisy = search().fit(X, y)
    exact = search()
    exact._noise_factor = 0.0  # the audits' hook: same release recorded, no noise
    exact.fit(X, y)
    assert set(noisy.history_) == {"theta", "noisy_cv_sse", "noisy_cv_mse"}
    # The recorded values are the noisy criterion, not the exact one.
    assert not np.allclose(noisy.history_["noisy_cv_sse"], exact.history_["noisy_cv_sse"],
                           rtol=1e-3)
    assert noisy.method_ == "sufficient-statistics" and noisy.n_iter_ > 400


def test_noisy_criterion_cannot_run_to_minus_infinity():
    """A noisy validation block's moments can be indefinite (tiny rows, small epsilon: seen
    in bench_private at n=20000, data_norm=0.01, epsilon=0.25, where the quadratic form ran
    to -1.6e15 and the smallest alpha of the box won): the criterion uses their positive
    semidefinite part, so it is >= 0 for every alpha, as no data can make it negative."""
    from skbilevel._private_sufficient import NoisyMoments, _FoldPath, noisy_cv_sse
    rng = np.random.default_rng(0)
    d = 4
    V = rng.standard_normal((50, d + 1))
    train = NoisyMoments(V.T @ V, d, 1.0, None)
    Vb = rng.standard_normal((10, d + 1))
    indefinite = Vb.T @ Vb - 30.0 * np.eye(d + 1)
    assert np.linalg.eigvalsh(indefinite).min() < 0
    alphas = np.logspace(-8, 4, 50)
    sse = noisy_cv_sse([_FoldPath(train)], [NoisyMoments(indefinite, d, 1.0, None)], alphas)
    assert sse.min() >= 0
    # The positive semidefinite block's criterion is unchanged.
    exact = noisy_cv_sse([_FoldPath(train)], [NoisyMoments(Vb.T @ Vb, d, 1.0, None)], alphas)
    Q = _FoldPath(train).residual_weights(alphas)
    assert exact == pytest.approx(np.einsum("ij,ij->j", Q, Vb.T @ Vb @ Q), rel=1e-9)
