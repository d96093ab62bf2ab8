"""Private grid search along one warm-started fit path (``method="grid-path"``): its
releases are what the ledger records and use the budget, it tunes when the noise is
negligible, and an audit with a validation canary has power and stays within the claim."""

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from skbilevel import PrivateHyperparamSearch
from skbilevel._private_base import PrivateTask
from skbilevel._private_erm import intercept_design
from skbilevel._private_grid_path import GridPathMethod, path_event
from skbilevel._private_random_search import bounded_losses
from skbilevel.engine.dp import PrivacyLedger, epsilon_of, gaussian_event
from skbilevel.utils._audit import audit, canary_row, method_release, with_row


def make_task(seed=0, n=400, d=8, fit_intercept=True, bounds=(1e-3, 1e4)):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) / math.sqrt(d)
    X /= np.maximum(1.0, np.linalg.norm(X, axis=1))[:, None]
    y = (X @ (2 * rng.normal(size=d)) + rng.logistic(size=n) > 0).astype(float)
    perm = rng.permutation(n)
    return PrivateTask(X, y, "logistic", 1.0, None, fit_intercept,
                       tuple(map(math.log, bounds)), lambda t: {"C": math.exp(t)},
                       [(perm[n // 4:], perm[:n // 4])])


@pytest.mark.parametrize("boost", [1.0, 3.0])
@pytest.mark.parametrize("epsilon, delta", [(0.3, 1e-8), (1.0, 1e-6), (4.0, 1e-5)])
def test_releases_are_the_calibrated_event(epsilon, delta, boost):
    ledger = PrivacyLedger()
    method = GridPathMethod(n_values=6, steps_per_value=3, score_boost=boost)
    method.tune(make_task(n=80, d=3), epsilon, delta, ledger, np.random.default_rng(0))
    phases = [r.phase for r in ledger.releases]
    assert phases == ["tuning: Grams", "tuning: path gradients", "tuning: validation scores"]
    assert [r.releases for r in ledger.releases] == [1, 18, 1]
    sigma = ledger.releases[0].noise_multiplier
    assert [r.noise_multiplier for r in ledger.releases] == [sigma, sigma, sigma / boost]
    spent = ledger.epsilon(delta)
    assert spent <= epsilon and spent == pytest.approx(epsilon, rel=2e-3)
    assert spent == pytest.approx(epsilon_of(path_event(sigma, 6, 3, boost), delta),
                                  rel=1e-12)
    assert epsilon_of(path_event(0.97 * sigma, 6, 3, boost), delta) > epsilon
    # Gaussian RDP adds 1 / multiplier^2: the boosted score counts as boost^2 releases.
    assert epsilon_of(gaussian_event(sigma, 18 + 1 + round(boost ** 2)), delta) == \
        pytest.approx(spent, rel=1e-9)
    # The scores' sensitivity: one row moves each of the 6 bounded losses by <= bound.
    assert ledger.releases[2].sensitivity == pytest.approx(math.log(99) * math.sqrt(6))


def test_huge_epsilon_picks_the_best_grid_point():
    """With negligible noise the chosen C is the grid point whose fully converged fit has
    the smallest validation loss, or a neighbour as good (the path's few steps per value)."""
    task = make_task()
    method = GridPathMethod(n_values=8, steps_per_value=4)
    tuning = method.tune(task, 1e7, 1e-6, PrivacyLedger(), np.random.default_rng(0))
    train, val = task.splits[0]
    Z, _ = intercept_design(task.X, True, 1.0)
    grid = np.array(tuning.history["theta"])
    exact = []
    for theta in grid:
        w = LogisticRegression(C=math.exp(theta), fit_intercept=False, tol=1e-10,
                               max_iter=1000).fit(Z[train], task.y[train]).coef_[0]
        exact.append(bounded_losses("logistic", Z[val], task.y[val], w)[0].sum())
    exact = np.array(exact)
    assert max(exact[0], exact[-1]) > 1.05 * exact.min()  # tuning matters here
    chosen = int(np.flatnonzero(grid == tuning.theta)[0])
    assert exact[chosen] <= 1.02 * exact.min(), (exact, chosen)
    noisy = np.array(tuning.history["noisy_score_sum"])
    assert np.argmin(noisy) == chosen
    assert set(tuning.history) == {"theta", "noisy_score_sum"}  # private quantities only


def test_reproducible_and_refit_gram_is_the_blocks_sum():
    task = make_task(n=100, d=4)
    runs = [GridPathMethod().tune(task, 1.0, 1e-6, PrivacyLedger(),
                                  np.random.default_rng(seed)) for seed in (3, 3, 4)]
    assert runs[0].history == runs[1].history != runs[2].history
    noiseless = GridPathMethod()
    noiseless._noise_factor = 0.0
    tuning = noiseless.tune(task, 1.0, 1e-6, PrivacyLedger(), np.random.default_rng(0))
    Z, _ = intercept_design(task.X, True, 1.0)
    np.testing.assert_allclose(tuning.refit_gram.matrix, Z.T @ Z, atol=1e-12)
    assert tuning.refit_gram.noise_std == 0.0


class NoiselessGridPath(GridPathMethod):
    _noise_factor = 0.0


@pytest.mark.parametrize("method_class", [GridPathMethod, NoiselessGridPath])
def test_audit_of_the_released_scores_with_a_validation_canary(method_class):
    """Training rows ``(e_0, 0)`` teach ``w_0 < 0``; the canary ``(e_0, 1)`` in the
    validation block adds about the largest bounded loss to every score."""
    n_train, n_val = 12, 12
    X, y = np.zeros((n_train + n_val, 3)), np.zeros(n_train + n_val)
    X[:n_train, 0] = 1.0

    def make_task(data):
        Xd, yd = data
        n = Xd.shape[0]
        return PrivateTask(Xd, yd, "logistic", 1.0, None, False,
                           (math.log(1e-1), math.log(1e2)), lambda t: {"C": math.exp(t)},
                           [(np.arange(n_train), np.arange(n_train, n))])

    release = method_release(method_class(n_values=4, steps_per_value=2), make_task, 1.0,
                             1e-5, lambda t: min(t.history["noisy_score_sum"]))
    result = audit(release, (X, y), with_row(X, y, *canary_row(3, 1.0, 1.0)), n_runs=600,
                   delta=1e-5)
    private = method_class is GridPathMethod
    assert (result.epsilon_lb < 1.0) == private, str(result)
    if not private:
        assert result.epsilon_lb > 4.0, str(result)


def test_estimator_runs_it_and_bad_parameters():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)) / 2
    y = (X[:, 0] + rng.logistic(size=300) > 0).astype(int)
    search = PrivateHyperparamSearch(LogisticRegression(), {"C": (1e-2, 1e2)}, epsilon=2.0,
                                     delta=1e-6, data_norm=2.0, method="grid-path",
                                     random_state=0).fit(X, y)
    assert search.method_ == "grid-path" and search.epsilon_ <= 2.0
    phases = [p["phase"] for p in search.privacy_report_["phases"]]
    # The refit releases its own Gram (combined with the tuning's) and its gradients.
    assert phases == ["tuning: Grams", "tuning: path gradients", "tuning: validation scores",
                      "refit: Gram", "refit: gradients"]
    with pytest.raises(ValueError, match="n_values >= 2"):
        GridPathMethod(n_values=1)
    with pytest.raises(ValueError, match="p_min"):
        GridPathMethod(p_min=0.6)
    with pytest.raises(ValueError, match="supports"):
        GridPathMethod().tune(PrivateTask(**{**make_task().__dict__, "kind": "ridge"}), 1.0,
                              1e-6, PrivacyLedger(), np.random.default_rng(0))
