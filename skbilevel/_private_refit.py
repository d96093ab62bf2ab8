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
* Logistic: the noisy majorize-minimize fit of scikit-learn's objective ``C sum_i
  log-loss_i(w) + ||w||^2 / 2`` (:mod:`skbilevel._private_logistic`): a noisy Gram of all the
  rows (combined, when the tuning released one too, with the sum of the tuning's blocks) and
  ``STEPS`` noisy gradients, all with one noise multiplier. With an intercept each row is
  augmented with the constant ``data_norm`` whose (penalised) weight times that constant is
  the intercept, as liblinear does with ``intercept_scaling``: the intercept is regularised
  like the other coefficients, which keeps the fit's steps bounded.
"""

from __future__ import annotations

import dp_accounting
import numpy as np

from ._private_erm import intercept_design
from ._private_logistic import STEPS, fit_event, private_logistic_fit, release_grams
from ._private_sufficient import _FoldPath, release_moments
from .engine.dp import calibrate, gaussian_event

# Noise multipliers are searched in [_LOWEST, 1e6]: tiny multipliers are reached only for
# very large epsilon (1e6 needs ~7e-4), which tests use to compare with non-private tuning.
_LOWEST = 1e-8


def calibrate_after(ledger, epsilon, delta, releases=1):
    """Noise multiplier of ``releases`` more Gaussian releases so that the ledger's
    composition with them spends at most ``(epsilon, delta)`` (a function of the spent
    events only, never of the data; :func:`calibrate` memoises it, keyed by the events, so
    repeated fits asking the same question bisect once)."""
    spent = [r.event for r in ledger.releases]
    return calibrate(
        lambda s: dp_accounting.ComposedDpEvent([*spent, gaussian_event(s, releases)]),
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


def refit_logistic(task, C, epsilon, delta, ledger, rng, gram=None, noise_factor=1.0):
    """``(coef, intercept)`` of binary L2 logistic regression at ``C`` by the noisy
    majorize-minimize fit. The refit releases its own Gram of all the rows; ``gram``, a
    noisy Gram of all the rows the tuning already released, is combined with it (inverse-
    variance weighting, post-processing): reusing the tuning's Gram alone would carry the
    tuning's larger noise into the refit's majorizer, and its own costs one release of 21.
    """
    Z, row_norm = intercept_design(task.X, task.fit_intercept, task.data_norm)
    row_norm = float(row_norm)
    multiplier = calibrate_after(ledger, epsilon, delta, STEPS + 1)
    (own,) = release_grams(Z, [np.arange(task.n_samples)], row_norm, multiplier, ledger, rng,
                           phase="refit: Gram", noise_factor=noise_factor)
    gram = own if gram is None else own.combine(gram)
    ledger.spend("refit: gradients", fit_event(multiplier, with_gram=False),
                 mechanism=f"gaussian ({STEPS} gradients of majorize-minimize)",
                 noise_multiplier=multiplier, releases=STEPS, sensitivity=row_norm)
    w = private_logistic_fit(Z, task.y, C, gram, row_norm, multiplier, rng,
                             noise_factor=noise_factor)
    if task.fit_intercept:
        return w[:-1], float(w[-1] * task.data_norm)
    return w, 0.0
