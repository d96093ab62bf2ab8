"""End-to-end empirical audit of PrivateHyperparamSearch: many whole fits (tuning and refit)
on D and on D plus a canary row at the bounds, a threshold attack on one released number,
Clopper-Pearson bounds on its error rates. The claimed epsilon must survive, and the same
audit must refute it once the estimator's private test hook switches the noise off (in the
tuning method and the refit alike): the audit has power.

The datasets are tiny so that a fit takes a few ms; each leaves feature 0 empty (or every
feature, for the penalty method), so that the canary ``x = data_norm e_0, y = +y_bound``
alone moves the released coefficient along ``e_0``: without noise it is exactly 0 without
the canary and positive with it. Heavier audits of each mechanism, with the noise scaled
between 1 and 0, are in ``benchmarks/bench_private_audit.py``.
"""

import functools
import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from skbilevel import PrivateHyperparamSearch
from skbilevel.utils._audit import audit, canary_row, with_row

EPSILON, DELTA = 1.0, 1e-5
N, D = 30, 3


def _rows(n_features, empty_features, seed=0):
    rng = np.random.default_rng(seed)
    X = np.zeros((N, n_features))
    X[:, empty_features:] = rng.uniform(-1, 1, (N, n_features - empty_features))
    return X / math.sqrt(max(n_features - empty_features, 1))


RIDGE_Y = np.random.default_rng(1).uniform(-1, 1, N)
LABELS = (np.arange(N) % 2).astype(float)

# name -> (search parameters, D, number of features, the released numbers to attack). The
# penalty method's D has no feature at all (X = 0): its inner minimisers are then exactly 0
# without the canary, so ``history_["coef_norm"][0]``, what the first outer step released,
# is a clean statistic of its first release.
COEF = ("coef", lambda s: s.best_estimator_.coef_.ravel()[0])
CASES = {
    "ridge-auto": (dict(estimator=Ridge(), param_bounds={"alpha": (1e-2, 1e2)}, y_bound=1.0),
                   (_rows(D, 1), RIDGE_Y), D, [COEF]),
    "logistic-auto": (dict(estimator=LogisticRegression(), param_bounds={"C": (1e-2, 1e1)}),
                      (_rows(D, 1), LABELS), D, [COEF]),
    "logistic-random-search": (dict(estimator=LogisticRegression(), method="random-search",
                                    param_bounds={"C": (1e-2, 1e1)}),
                               (_rows(D, 1), LABELS), D,
                               [COEF, ("tuning coef", lambda s: s.history_["coef"][0])]),
    "ridge-penalty": (dict(estimator=Ridge(fit_intercept=False), method="penalty",
                           param_bounds={"alpha": (1e-2, 1e2)}, y_bound=1.0, max_iter=2, cv=2),
                      (np.zeros((N, 1)), RIDGE_Y), 1,
                      [COEF, ("first step", lambda s: s.history_["coef_norm"][0])]),
    "logistic-penalty": (dict(estimator=LogisticRegression(fit_intercept=False),
                              method="penalty", param_bounds={"C": (1e-2, 1e1)}, max_iter=2,
                              cv=2),
                         (np.zeros((N, 1)), LABELS), 1,
                         [COEF, ("first step", lambda s: s.history_["coef_norm"][0])]),
}


def run_audits(case, noise_factor, n_runs):
    """``{output name: AuditResult}``, every output read off the same fits."""
    params, without, n_features, outputs = CASES[case]
    with_canary = with_row(*without, *canary_row(n_features, 1.0, 1.0))

    @functools.lru_cache(maxsize=None)
    def fit(has_canary, random_state):
        search = PrivateHyperparamSearch(**params, epsilon=EPSILON, delta=DELTA,
                                         data_norm=1.0, random_state=random_state)
        search._noise_factor = noise_factor  # the private test hook
        search.fit(*(with_canary if has_canary else without))
        assert search.epsilon_ <= EPSILON * (1 + 1e-9)  # the ledger is the same either way
        return search

    results = {}
    for name, output in outputs:
        def release(data, rng, output=output):  # all the fit's randomness from rng
            return output(fit(data is with_canary, int(rng.integers(2**31 - 1))))
        # The same seed for every output: the fits are shared through the cache.
        results[name] = audit(release, without, with_canary, n_runs=n_runs, delta=DELTA)
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_the_claimed_epsilon_survives(case):
    for name, result in run_audits(case, 1.0, n_runs=300).items():
        assert result.epsilon_lb < EPSILON, f"{case}, {name}: {result}"


@pytest.mark.parametrize("case", list(CASES))
def test_without_noise_the_audit_refutes_it(case):
    """With 75 evaluation runs a side, a perfect separation proves epsilon > 2.9; the
    random search's tuning coefficient sees the canary only when it falls in the training
    rows of the first split (4 times in 5), which still proves more than 2."""
    for name, result in run_audits(case, 0.0, n_runs=150).items():
        assert result.epsilon_lb > 2.0, f"{case}, {name}: {result}"
        if name == "coef":  # the refit always sees the canary: exactly 0 without it
            assert result.fp == 0 and result.fn == 0, f"{case}, {name}: {result}"


def test_a_thirtyfold_miscalibration_is_caught_too():
    """Not only the absence of noise: with the sufficient statistics' noise cut 30x the
    same audit (its power at this size) proves more than the claimed epsilon=1."""
    (result,) = run_audits("ridge-auto", 1 / 30, n_runs=300).values()
    assert result.epsilon_lb > 1.5, str(result)


def test_auto_resolves_as_audited():
    """The audit's cases cover method='auto' for both families: which method that is."""
    fitted = {case: PrivateHyperparamSearch(**CASES[case][0], epsilon=EPSILON, delta=DELTA,
                                            data_norm=1.0, random_state=0).fit(
                                                *CASES[case][1]).method_
              for case in ("ridge-auto", "logistic-auto")}
    assert fitted == {"ridge-auto": "sufficient-statistics",
                      "logistic-auto": "grid-path"}
