"""The private refit of ``PrivateHyperparamSearch.best_estimator_`` at the chosen value.

The refit reads the data once more, after the tuning, and its noise is calibrated against
the composition of *everything* in the ledger: the smallest noise with which the whole fit
(tuning releases + this one) spends at most ``(epsilon, delta)`` by the ledger's
accountant. Composition is sub-additive, so the refit gets what the tuning left over, which
is more than ``(1 - budget_split) * epsilon``.

* Ridge: one Gaussian release of the moments of all the rows (the same mechanism as the
  sufficient-statistics method's, with one block), then the ridge solution of the noisy
  moments with the noisy Gram's eigenvalues clipped at 0 before ``alpha`` is added. When
  the tuning already released total moments they are reused and nothing is spent.
* Logistic: output perturbation of the strongly convex ERM ``C sum_i log-loss_i(w) +
  ||w||^2 / 2`` (scikit-learn's objective). Adding or removing a row adds or removes
  ``C log-loss(w)``, which is ``C L``-Lipschitz in ``w`` with ``L`` the largest row norm;
  the objective is 1-strongly convex, so the minimiser moves by at most ``C L``: the L2
  sensitivity. With an intercept each row is augmented with the constant ``data_norm``
  whose (penalised) weight times that constant is the intercept, as liblinear does with
  ``intercept_scaling``; an unpenalised intercept has no strong convexity and no bounded
  sensitivity. The minimiser is computed by L-BFGS to a tight tolerance; output
  perturbation assumes the exact minimiser, which the tolerance approximates.
"""

from __future__ import annotations

import dp_accounting
import numpy as np
from sklearn.linear_model import LogisticRegression

from ._private_sufficient import _FoldPath, release_moments
from .engine.dp import calibrate, gaussian_event

# Noise multipliers are searched in [_LOWEST, 1e6]: tiny multipliers are reached only for
# very large epsilon (1e6 needs ~7e-4), which tests use to compare with non-private tuning.
_LOWEST = 1e-8


def calibrate_alone(epsilon, delta, accountant):
    """Noise multiplier of one Gaussian release spending ``(epsilon, delta)`` alone."""
    return calibrate(lambda s: gaussian_event(s), epsilon, delta, accountant=accountant,
                     lower=_LOWEST)


def calibrate_after(ledger, epsilon, delta):
    """Noise multiplier of one more Gaussian release so that the ledger's composition with
    it spends at most ``(epsilon, delta)``."""
    spent = [r.event for r in ledger.releases]
    return calibrate(lambda s: dp_accounting.ComposedDpEvent([*spent, gaussian_event(s)]),
                     epsilon, delta, accountant=ledger.accountant, lower=_LOWEST)


def refit_ridge(task, alpha, epsilon, delta, ledger, rng, moments=None, noise=True):
    """``(coef, intercept)`` of ridge at ``alpha`` from noisy moments of all the rows."""
    if moments is None:
        multiplier = calibrate_after(ledger, epsilon, delta)
        (moments,) = release_moments(task, [np.arange(task.n_samples)], multiplier, ledger,
                                     rng, phase="refit: total moments", noise=noise)
    W, b0 = _FoldPath(moments).coef(np.array([alpha]))
    return W[:, 0], float(b0[0])


def refit_logistic(task, C, epsilon, delta, ledger, rng, noise=True):
    """``(coef, intercept)`` of binary L2 logistic regression at ``C`` by output
    perturbation."""
    X = task.X
    if task.fit_intercept:
        X = np.hstack([X, np.full((task.n_samples, 1), task.data_norm)])
    lipschitz = float(np.sqrt(2.0) * task.data_norm if task.fit_intercept else task.data_norm)
    sensitivity = C * lipschitz
    multiplier = calibrate_after(ledger, epsilon, delta)
    ledger.spend("refit: output perturbation", gaussian_event(multiplier),
                 mechanism="output perturbation", noise_multiplier=multiplier, releases=1,
                 sensitivity=sensitivity)
    if np.unique(task.y).size < 2:  # the minimiser of C * 0 + ||w||^2/2 is 0
        w = np.zeros(X.shape[1])
    else:
        w = LogisticRegression(C=C, fit_intercept=False, tol=1e-10, max_iter=10_000)\
            .fit(X, task.y).coef_[0]
    if noise:
        w = w + rng.normal(scale=multiplier * sensitivity, size=w.shape)
    if task.fit_intercept:
        return w[:-1], float(w[-1] * task.data_norm)
    return w, 0.0
