"""DP random search with private selection (``method="random-search"``): its accounting is
one repeat-and-select event within the budget, and with the noise made negligible it tunes."""

import math

import numpy as np
import pytest
from dp_accounting.dp_event import RepeatAndSelectDpEvent

from skbilevel._private_base import PrivateTask
from skbilevel._private_logistic import NoisyGram, private_logistic_fit
from skbilevel._private_erm import intercept_design
from skbilevel._private_random_search import (RandomSearchMethod, bounded_losses,
                                              calibrated_noise, repeat_and_select_event,
                                              sample_repetitions, search_event, train_ridge)
from skbilevel.engine.dp import PrivacyLedger, epsilon_of


def make_task(kind, seed=0, n=300, d=40, fit_intercept=True):
    """Ridge: a weak signal, so that the validation loss has an interior optimum in alpha."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) / math.sqrt(d)
    X /= np.maximum(1.0, np.linalg.norm(X, axis=1))[:, None]
    f = X @ (2 * rng.normal(size=d))
    if kind == "ridge":
        y = np.clip(0.15 * f + 0.5 * rng.normal(size=n), -1, 1)
    else:
        y = (f + rng.logistic(size=n) > 0).astype(float)
    perm = rng.permutation(n)
    name = "alpha" if kind == "ridge" else "C"
    return PrivateTask(X, y, kind, 1.0, 1.0 if kind == "ridge" else None, fit_intercept,
                       (math.log(1e-3), math.log(1e4)), lambda t: {name: math.exp(t)},
                       [(perm[n // 4:], perm[:n // 4])])


def exact_validation_loss(task, theta):
    """The non-private counterpart: exact fit, exact mean of the same bounded loss."""
    train, val = task.splits[0]
    Z, norm = intercept_design(task.X, task.fit_intercept, task.data_norm)
    rng = np.random.default_rng(0)  # unused: sigma=0
    if task.kind == "ridge":
        w = train_ridge(Z[train], task.y[train], math.exp(theta), norm=norm, y_bound=1.0,
                        intercept=task.fit_intercept, sigma=0.0, rng=rng)
    else:
        w = private_logistic_fit(Z[train], task.y[train], math.exp(theta),
                                 NoisyGram(Z[train].T @ Z[train], 0.0), norm, 0.0, rng)
    return bounded_losses(task.kind, Z[val], task.y[val], w, y_bound=task.y_bound)[0].mean()


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
@pytest.mark.parametrize("epsilon, delta", [(0.3, 1e-8), (1.0, 1e-6), (4.0, 1e-5)])
def test_spends_one_repeat_and_select_event_within_budget(kind, epsilon, delta):
    ledger = PrivacyLedger()
    RandomSearchMethod().tune(make_task(kind, n=80, d=5), epsilon, delta, ledger,
                              np.random.default_rng(0), max_iter=10)
    # Logistic regression first releases the blocks' Grams (shared by every run).
    *grams, release = ledger.releases
    assert len(grams) == (kind == "logistic")
    event = release.event
    assert isinstance(event, RepeatAndSelectDpEvent)
    assert (event.mean, event.shape) == (10.0, 1.0)
    spent = ledger.epsilon(delta)
    assert spent <= epsilon
    assert spent == pytest.approx(epsilon_of(ledger.event, delta), rel=1e-12)
    assert spent == pytest.approx(epsilon, rel=2e-3)  # calibrated, not over-noised
    # The event is rebuilt from the reported noise multiplier alone.
    rebuilt = search_event(release.noise_multiplier, 10.0, 1.0, kind)
    assert epsilon_of(rebuilt, delta) == pytest.approx(spent, rel=1e-12)
    # A run is one training (one release for ridge, the fit's gradients for logistic) and
    # one scoring release: less noise would overspend.
    assert epsilon_of(search_event(0.97 * release.noise_multiplier, 10.0, 1.0, kind),
                      delta) > epsilon
    if kind == "logistic":  # the Gram is part of the budget: leaving it out underspends
        alone = repeat_and_select_event(release.noise_multiplier, 10.0, 1.0, kind)
        assert epsilon_of(alone, delta) < 0.995 * spent


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_huge_epsilon_picks_near_the_best_of_a_fine_grid(kind):
    task = make_task(kind)
    grid = np.linspace(*task.theta_bounds, 80)
    losses = np.array([exact_validation_loss(task, t) for t in grid])
    best = losses.min()
    assert min(losses[0], losses[-1]) > 1.02 * best  # tuning matters on this problem
    method = RandomSearchMethod(mean_repetitions=40, shape=20)  # K concentrated near 40
    ratios, gaps = [], []
    for seed in range(5):
        theta = method.tune(task, 1e6, 1e-6, PrivacyLedger(), np.random.default_rng(seed),
                            max_iter=1).theta
        ratios.append(exact_validation_loss(task, theta) / best)
        gaps.append(abs(theta - grid[np.argmin(losses)]))
    assert np.median(ratios) <= 1.005 and max(ratios) <= 1.03, ratios
    assert np.median(gaps) <= 1.0, gaps


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_reproducible_from_the_seed_and_history_private(kind):
    task = make_task(kind, n=100, d=6, fit_intercept=False)
    runs = [RandomSearchMethod().tune(task, 1.0, 1e-6, PrivacyLedger(),
                                      np.random.default_rng(seed), max_iter=10)
            for seed in (3, 3, 4)]
    assert runs[0].theta == runs[1].theta != runs[2].theta
    np.testing.assert_array_equal(runs[0].history["coef"], runs[1].history["coef"])
    # Only the selected run is released: its theta, noisy score and private model.
    assert set(runs[0].history) == {"theta", "noisy_score_sum", "coef", "intercept"}
    assert len(runs[0].history["theta"]) == 1 and runs[0].n_iter == 1
    assert runs[0].history["intercept"] == 0.0
    low, high = task.theta_bounds
    assert low <= runs[0].theta <= high


@pytest.mark.parametrize("mean, shape", [(10.0, 1.0), (10.0, 0.0), (10.0, 0.5), (40.0, 20.0),
                                         (3.0, 2.0)])
def test_repetitions_follow_the_events_distribution(mean, shape):
    rng = np.random.default_rng(0)
    draws = np.array([sample_repetitions(mean, shape, rng) for _ in range(20000)])
    assert draws.min() >= 1
    standard_error = draws.std() / math.sqrt(draws.size)
    assert abs(draws.mean() - mean) < 4 * standard_error, (draws.mean(), standard_error)
    if shape == 1.0:  # geometric: P(K = 1) = 1 / mean
        assert np.mean(draws == 1) == pytest.approx(1 / mean, abs=0.01)
    event = repeat_and_select_event(calibrated_noise(1.0, 1e-6, mean, shape), mean, shape)
    assert (event.mean, event.shape) == (mean, shape)


def test_bad_input():
    with pytest.raises(ValueError, match="mean"):
        RandomSearchMethod(mean_repetitions=0.5)
    with pytest.raises(ValueError, match="p_min"):
        RandomSearchMethod(p_min=0.7)
    task = make_task("ridge", n=40, d=3)
    with pytest.raises(ValueError, match="y_bound"):
        RandomSearchMethod().tune(PrivateTask(**{**task.__dict__, "y_bound": None}), 1.0,
                                  1e-6, PrivacyLedger(), np.random.default_rng(0), max_iter=1)


@pytest.mark.parametrize("kind", ["ridge", "logistic"])
def test_infinite_epsilon_is_the_exact_search(kind):
    """epsilon=inf: no noise, and the released score is the exact summed bounded loss."""
    task = make_task(kind, n=120, d=6)
    ledger = PrivacyLedger()
    tuning = RandomSearchMethod().tune(task, math.inf, 1e-6, ledger, np.random.default_rng(0),
                                       max_iter=1)
    assert ledger.epsilon(1e-6) == math.inf
    n_val = len(task.splits[0][1])
    assert tuning.history["noisy_score_sum"][0] == pytest.approx(
        n_val * exact_validation_loss(task, tuning.theta), rel=1e-9)
