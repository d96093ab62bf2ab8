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
  sensitivity. The minimiser is computed by damped Newton to a gradient norm of
  ``RELATIVE_TOL * L`` (within ``RELATIVE_TOL * L * C`` of the exact one), and the
  sensitivity includes that slack (:func:`skbilevel._private_erm.sensitivity`).
"""

from __future__ import annotations

import dp_accounting
import numpy as np

from ._private_erm import (RELATIVE_TOL, intercept_design, logistic_solve,
                           sensitivity as erm_sensitivity)
from ._private_sufficient import _FoldPath, release_moments
from .engine.dp import calibrate, gaussian_event

# Noise multipliers are searched in [_LOWEST, 1e6]: tiny multipliers are reached only for
# very large epsilon (1e6 needs ~7e-4), which tests use to compare with non-private tuning.
_LOWEST = 1e-8


def calibrate_after(ledger, epsilon, delta):
    """Noise multiplier of one more Gaussian release so that the ledger's composition with
    it spends at most ``(epsilon, delta)`` (a function of the spent events only, never of
    the data; :func:`calibrate` memoises it, keyed by the events, so repeated fits asking
    the same question bisect once)."""
    spent = [r.event for r in ledger.releases]
    return calibrate(lambda s: dp_accounting.ComposedDpEvent([*spent, gaussian_event(s)]),
                     epsilon, delta, accountant=ledger.accountant, lower=_LOWEST)


def refit_ridge(task, alpha, epsilon, delta, ledger, rng, moments=None, noise_factor=1.0):
    """``(coef, intercept)`` of ridge at ``alpha`` from noisy moments of all the rows."""
    if moments is None:
        multiplier = calibrate_after(ledger, epsilon, delta)
        (moments,) = release_moments(task, [np.arange(task.n_samples)], multiplier, ledger,
                                     rng, phase="refit: total moments",
                                     noise_factor=noise_factor)
    W, b0 = _FoldPath(moments).coef(np.array([alpha]))
    return W[:, 0], float(b0[0])


def refit_logistic(task, C, epsilon, delta, ledger, rng, noise_factor=1.0):
    """``(coef, intercept)`` of binary L2 logistic regression at ``C`` by output
    perturbation."""
    X, lipschitz = intercept_design(task.X, task.fit_intercept, task.data_norm)
    lipschitz = float(lipschitz)
    sensitivity = erm_sensitivity("logistic", 1.0 / C, lipschitz)
    multiplier = calibrate_after(ledger, epsilon, delta)
    ledger.spend("refit: output perturbation", gaussian_event(multiplier),
                 mechanism="output perturbation", noise_multiplier=multiplier, releases=1,
                 sensitivity=sensitivity)
    if np.unique(task.y).size < 2:  # the minimiser of C * 0 + ||w||^2/2 is 0
        w = np.zeros(X.shape[1])
    else:  # C sum(log-loss) + ||w||^2 / 2 has the minimiser of sum(log-loss) + ||w||^2 / 2C
        w = logistic_solve(X, task.y, np.ones(task.n_samples), 1.0 / C, np.zeros(X.shape[1]),
                           RELATIVE_TOL * lipschitz, max_iter=500)
    w = w + rng.normal(scale=multiplier * sensitivity * noise_factor, size=w.shape)
    if task.fit_intercept:
        return w[:-1], float(w[-1] * task.data_norm)
    return w, 0.0
