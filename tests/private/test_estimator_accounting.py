"""What PrivateHyperparamSearch reports spending, for every method and family: within the
budget, recomputable by anyone from ``privacy_report_["dp_event"]``, read per phase; and
the input it refuses."""

import dp_accounting
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.validation import has_fit_parameter

from skbilevel import PrivateHyperparamSearch
from skbilevel._private_logistic import STEPS

METHODS = {"ridge": ("sufficient-statistics", "penalty", "random-search"),
           "logistic": ("grid-path", "penalty", "random-search")}


def fresh_epsilon(event, delta, accountant):
    """epsilon of ``event`` by a fresh dp-accounting accountant (none of skbilevel's code,
    and none of its caches, in the way)."""
    acc = (dp_accounting.rdp.RdpAccountant() if accountant == "rdp"
           else dp_accounting.pld.PLDAccountant())
    acc.compose(event)
    return acc.get_epsilon(delta)


def data(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) / np.sqrt(d)
    y = X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n)
    return X, (y if kind == "ridge" else (y > 0).astype(float))


def fitted(kind, method, seed, **params):
    rng = np.random.default_rng(seed)
    settings = dict(epsilon=10 ** rng.uniform(-1, 1), delta=10 ** rng.uniform(-9, -4),
                    data_norm=rng.uniform(0.5, 2), cv=int(rng.integers(2, 6)),
                    max_iter=int(rng.integers(1, 6)), budget_split=rng.uniform(0.1, 0.9),
                    method=method, random_state=seed)
    intercept = bool(rng.integers(2))
    if kind == "ridge":
        search = PrivateHyperparamSearch(Ridge(fit_intercept=intercept),
                                         {"alpha": (1e-3, 1e3)}, y_bound=rng.uniform(1, 3),
                                         **{**settings, **params})
    else:
        search = PrivateHyperparamSearch(LogisticRegression(fit_intercept=intercept),
                                         {"C": (1e-3, 1e2)}, **{**settings, **params})
    return search.fit(*data(kind, int(rng.integers(40, 300)), int(rng.integers(1, 6)), seed))


CASES = [(kind, method, seed) for kind, methods in METHODS.items() for method in methods
         for seed in range(3)]


@pytest.mark.parametrize("kind, method, seed", CASES)
def test_spent_epsilon_is_the_events_and_within_budget(kind, method, seed):
    """Over random budgets, bounds, folds and sizes: epsilon_ is what a fresh accountant
    finds in the reported event, at most epsilon, and (the refit calibrated against the
    composition) the budget is used up."""
    search = fitted(kind, method, seed)
    report = search.privacy_report_
    assert search.method_ == method
    assert search.epsilon_ == pytest.approx(
        fresh_epsilon(report["dp_event"], search.delta_, report["accountant"]), rel=1e-12)
    assert search.epsilon_ <= search.epsilon * (1 + 1e-9)
    assert search.epsilon_ == pytest.approx(search.epsilon, rel=1e-3)
    assert search.delta_ == search.delta == report["delta"]
    # The shares add up to the total; each phase alone spends less than the total.
    shares = [p["epsilon_share"] for p in report["phases"]]
    assert sum(shares) == pytest.approx(search.epsilon_, rel=1e-9)
    assert all(s > 0 for s in shares)
    assert all(p["epsilon_alone"] <= search.epsilon_ * (1 + 1e-9) for p in report["phases"])


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_penalty_steps_are_one_phase_but_the_event_stays_as_calibrated(kind):
    """T outer steps of K folds: one "tuning" phase of 2 K T releases in the report, while
    the event keeps one composition per step, the very event the noise was calibrated on
    (PLD's epsilon would change with the grouping; the report's must not)."""
    T, K = 4, 3
    search = fitted(kind, "penalty", 0, max_iter=T, cv=K, epsilon=1.0)
    phases = search.privacy_report_["phases"]
    refit = ["refit: total moments"] if kind == "ridge" else ["refit: Gram",
                                                              "refit: gradients"]
    assert [p["phase"] for p in phases] == ["tuning: penalty hypergradient", *refit]
    assert phases[0]["releases"] == 2 * K * T and phases[1]["releases"] == 1
    if kind == "logistic":
        assert phases[2]["releases"] == STEPS
    assert phases[0]["mechanism"] == "output perturbation"
    assert phases[0]["noise_multiplier"] == search.history_["noise_multiplier"]
    assert phases[0]["sensitivity"] == pytest.approx(max(search.history_["sensitivity"]))
    event = search.privacy_report_["dp_event"]
    assert len(event.events) == T + len(refit)  # T step events and the refit's, as recorded
    assert all(e == dp_accounting.SelfComposedDpEvent(
        dp_accounting.GaussianDpEvent(phases[0]["noise_multiplier"]), 2 * K)
        for e in event.events[:T])
    # The tuning phase alone: the composition of its T step events.
    alone = fresh_epsilon(dp_accounting.ComposedDpEvent(event.events[:T]), search.delta_,
                          "rdp")
    assert phases[0]["epsilon_alone"] == pytest.approx(alone, rel=1e-12)
    assert phases[0]["epsilon_share"] == pytest.approx(alone, rel=1e-12)  # first phase


@pytest.mark.parametrize("kind, method", [(k, m) for k, ms in METHODS.items() for m in ms])
def test_infinite_epsilon_is_refused_by_every_method(kind, method):
    X, y = data(kind, 60, 3, 0)
    estimator, bounds, extra = ((Ridge(), {"alpha": (1e-2, 1e2)}, {"y_bound": 1.0})
                                if kind == "ridge" else
                                (LogisticRegression(), {"C": (1e-2, 1e2)}, {}))
    search = PrivateHyperparamSearch(estimator, bounds, epsilon=float("inf"), delta=1e-6,
                                     data_norm=1.0, method=method, **extra)
    with pytest.raises(ValueError, match=r"'epsilon' parameter .* range \(0.0, inf\)"):
        search.fit(X, y)


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_nan_in_y_and_sample_weight_are_refused(kind):
    X, y = data(kind, 60, 3, 0)
    estimator, bounds, extra = ((Ridge(), {"alpha": (1e-2, 1e2)}, {"y_bound": 1.0})
                                if kind == "ridge" else
                                (LogisticRegression(), {"C": (1e-2, 1e2)}, {}))
    search = PrivateHyperparamSearch(estimator, bounds, epsilon=1.0, delta=1e-6,
                                     data_norm=1.0, **extra)
    y_nan = y.copy()
    y_nan[5] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        search.fit(X, y_nan)
    # No sample_weight in fit's signature (so meta-estimators never route one to it).
    assert not has_fit_parameter(search, "sample_weight")
    with pytest.raises(TypeError, match="sample_weight"):
        search.fit(X, y, sample_weight=np.ones(len(y)))


def test_string_targets_of_a_regression_are_refused():
    """Strings pass scikit-learn's y_numeric check; clipping them would be a numpy error."""
    X = np.random.default_rng(0).standard_normal((40, 3))
    search = PrivateHyperparamSearch(Ridge(), {"alpha": (1e-3, 1e3)}, epsilon=1.0,
                                     delta=1e-6, data_norm=1.0, y_bound=1.0)
    with pytest.raises(ValueError, match="y must be numeric"):
        search.fit(X, np.array(["a", "b"] * 20))
