"""Empirical privacy audits that can fail: the claimed epsilon survives a membership test
with a canary at the bounds, and the same test refutes it once the noise is cut (power)."""

import math

import numpy as np
import pytest

from skbilevel._private_base import PrivateTask
from skbilevel._private_logistic import fit_event, private_logistic_fit, release_grams
from skbilevel._private_random_search import RandomSearchMethod, train_ridge
from skbilevel.engine.dp import PrivacyLedger
from skbilevel.engine.dp import calibrate, epsilon_lower_bound, epsilon_of, gaussian_event
from skbilevel.utils._audit import (_epsilon_lbs, audit, canary_row, choose_threshold,
                                    method_release, with_row)

EPSILON, DELTA = 1.0, 1e-5
SIGMA_ONE_GAUSSIAN = calibrate(gaussian_event, EPSILON, DELTA)  # noise multiplier at eps=1


def dataset(n=24, d=3, seed=0, classes=False):
    """Rows that leave feature 0 empty (so that the canary, ``e_0``, is all it sees)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, d))
    X[:, 1:] = rng.uniform(-1, 1, (n, d - 1)) / math.sqrt(d - 1)
    y = (rng.uniform(size=n) < 0.5).astype(float) if classes else rng.uniform(-1, 1, n)
    return X, y


def test_vectorised_bounds_match_the_engines():
    tp, fp = np.array([450, 300, 500, 10]), np.array([50, 300, 0, 0])
    got = _epsilon_lbs(tp, fp, 500, 500, DELTA, 0.05)
    want = [epsilon_lower_bound(t, 500 - t, f, 500 - f, DELTA) for t, f in zip(tp, fp)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # A perfect separation on the calibration half is found, on either side.
    assert choose_threshold(np.zeros(10), np.ones(10)) == (0.0, True)
    assert choose_threshold(np.ones(10), np.zeros(10)) == (1.0, False)


@pytest.mark.parametrize("factor", [1.0, 1 / 10, 1 / 30])
def test_gaussian_mechanism(factor):
    """A sum of ``x_0 y`` (sensitivity data_norm * y_bound = 1) plus calibrated noise, and
    the noise cut 10x and 30x: never more than the accountant's epsilon at that noise."""
    X, y = dataset()
    data_in = with_row(X, y, *canary_row(3, 1.0, 1.0))

    def release(data, rng):
        X, y = data
        return float(X[:, 0] @ y + rng.normal(0.0, factor * SIGMA_ONE_GAUSSIAN))

    result = audit(release, (X, y), data_in, n_runs=2000, delta=DELTA)
    assert result.epsilon_lb <= epsilon_of(gaussian_event(factor * SIGMA_ONE_GAUSSIAN), DELTA)
    assert (result.epsilon_lb < EPSILON) == (factor == 1.0), str(result)
    if factor < 0.05:
        assert result.epsilon_lb > 4.0, str(result)  # the noise at 1/30 leaves no doubt


@pytest.mark.parametrize("noise", [1.0, 0.0])
def test_ridge_sufficient_statistics_release(noise):
    """One private ridge fit from noisy moments, calibrated alone to epsilon=1; output w_0."""
    X, y = dataset()
    data_in = with_row(X, y, *canary_row(3, 1.0, 1.0))

    def release(data, rng):
        X, y = data
        return train_ridge(X, y, 1.0, norm=1.0, y_bound=1.0, intercept=False,
                           sigma=noise * SIGMA_ONE_GAUSSIAN, rng=rng)[0]

    result = audit(release, (X, y), data_in, n_runs=1000, delta=DELTA)
    assert (result.epsilon_lb < EPSILON) == (noise == 1.0), str(result)


SIGMA_LOGISTIC_FIT = calibrate(fit_event, EPSILON, DELTA)  # Gram + gradients at eps=1


@pytest.mark.parametrize("noise", [1.0, 0.0])
def test_logistic_majorize_minimize_fit(noise):
    """The whole private logistic fit (noisy Gram, then noisy gradient steps), calibrated
    alone to epsilon=1 at C=100 (little shrinkage: the canary moves w_0 far); output w_0."""
    X, y = dataset(classes=True)
    data_in = with_row(X, y, *canary_row(3, 1.0, 1.0))

    def release(data, rng):
        X, y = data
        (gram,) = release_grams(X, [np.arange(len(y))], 1.0, SIGMA_LOGISTIC_FIT,
                                PrivacyLedger(), rng, phase="audit", noise_factor=noise)
        return private_logistic_fit(X, y, 100.0, gram, 1.0, SIGMA_LOGISTIC_FIT, rng,
                                    noise_factor=noise)[0]

    result = audit(release, (X, y), data_in, n_runs=1000, delta=DELTA)
    assert (result.epsilon_lb < EPSILON) == (noise == 1.0), str(result)


def search_task(data, n_train):
    """Rows ``n_train:`` (the canary's, last, among them) validate; a small alpha range."""
    X, y = data
    n = X.shape[0]
    return PrivateTask(X, y, "ridge", 1.0, 1.0, False, (math.log(1e-2), 0.0),
                       lambda t: {"alpha": math.exp(t)},
                       [(np.arange(n_train), np.arange(n_train, n))])


class NoiselessRandomSearch(RandomSearchMethod):
    _noise_factor = 0.0


@pytest.mark.parametrize("method_class", [RandomSearchMethod, NoiselessRandomSearch])
def test_random_search_score_with_a_validation_canary(method_class):
    """Training rows ``(e_0, -1)`` teach ``w_0 ~ -1``: the canary ``(e_0, +1)`` in the
    validation rows costs ``~(2 y_bound)^2``, the most a row can, in the released score;
    the other validation rows are zero (loss 0)."""
    n_train, n_val = 12, 12
    X, y = np.zeros((n_train + n_val, 3)), np.zeros(n_train + n_val)
    X[:n_train, 0], y[:n_train] = 1.0, -1.0
    data_in = with_row(X, y, *canary_row(3, 1.0, 1.0))
    release = method_release(method_class(), lambda data: search_task(data, n_train),
                             EPSILON, DELTA, lambda t: t.history["noisy_score_sum"][0])
    result = audit(release, (X, y), data_in, n_runs=600, delta=DELTA)
    private = method_class is RandomSearchMethod
    assert (result.epsilon_lb < EPSILON) == private, str(result)
    if not private:
        assert result.epsilon_lb > 4.0, str(result)


@pytest.mark.parametrize("method_class", [RandomSearchMethod, NoiselessRandomSearch])
def test_random_search_coefficient_with_a_training_canary(method_class):
    """The canary ``(e_0, +1)`` trains alone on feature 0: ``w_0 = 1 / (1 + alpha)`` with it,
    0 without, in the selected run's released model."""
    X, y = dataset(n=24)
    n_train = 12
    order = np.r_[np.arange(n_train), X.shape[0], np.arange(n_train, X.shape[0])]

    def make_task(data):  # the canary (last row) joins the training rows
        Xd, yd = data
        if Xd.shape[0] > X.shape[0]:
            return search_task((Xd[order], yd[order]), n_train + 1)
        return search_task(data, n_train)

    release = method_release(method_class(), make_task, EPSILON, DELTA,
                             lambda t: t.history["coef"][0])
    result = audit(release, (X, y), with_row(X, y, *canary_row(3, 1.0, 1.0)), n_runs=600,
                   delta=DELTA)
    private = method_class is RandomSearchMethod
    assert (result.epsilon_lb < EPSILON) == private, str(result)
    if not private:
        assert result.epsilon_lb > 4.0, str(result)
