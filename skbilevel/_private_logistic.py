"""Private binary L2 logistic regression by noisy majorize-minimize (Boehning's bound).

The fit minimises scikit-learn's objective ``F(w) = C sum_i log-loss_i(w) + ||w||^2 / 2``
on the design ``Z`` (rows of norm at most ``L``; with an intercept, ``X`` augmented by the
constant ``data_norm``, see :func:`skbilevel._private_erm.intercept_design`). The log-loss
has curvature at most 1/4, so ``H = C Z'Z / 4 + I`` bounds the Hessian of ``F`` everywhere
(Boehning, 1992) and the step ``w <- w - H^{-1} grad F(w)`` never increases ``F``. The data
enter only through

* ``Z'Z``, released once with Gaussian noise (adding a row ``z`` changes the upper triangle
  of ``Z'Z``, diagonal included, by at most ``||z||^2 <= L^2`` in L2 norm); its eigenvalues
  are clipped at 0 and raised by about the noise's spectral norm (post-processing,
  :meth:`NoisyGram.majorizer_inverse`), so ``H`` stays a bound with high probability;
* ``sum_i (p_i(w) - y_i) z_i`` at each of ``steps`` iterates, each released with Gaussian
  noise (one row changes it by at most ``|p - y| ||z|| <= L``).

Everything is a composition of Gaussian mechanisms (:func:`fit_event`), accounted by
dp-accounting like every release of :class:`PrivateHyperparamSearch`. The released
coefficients are the mean of the last half of the iterates (post-processing): it averages
the gradients' noise.

Why not output perturbation (the minimiser plus noise of scale ``C L`` times the noise
multiplier, Chaudhuri et al.): its sensitivity comes from the regulariser's strong convexity
alone, so it ignores ``n``. Here the noise of each step is divided by ``H``, which grows with
``n``: on the benchmark's 200,000 x 20 problem at epsilon=1 the test log-loss at the best C
is 1.001x the exact fit's, against 1.07x for output perturbation (benchmarks/results/
private.md). A fixed number of steps is part of the mechanism: stopping on the data would
be a release too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ._private_erm import symmetric_noise
from .engine.dp import gaussian_event

#: Gradient steps of every private logistic fit (20: within 1e-3 of the exact fit's test
#: log-loss on the benchmark at n=200k; each step is one more release, so more steps means
#: more noise per step).
STEPS = 20


def fit_event(multiplier, steps=STEPS, with_gram=True):
    """The fit's releases: the Gram (optional) and ``steps`` gradients, one multiplier."""
    return gaussian_event(multiplier, steps + int(with_gram))


@dataclass(frozen=True)
class NoisyGram:
    """A released ``Z'Z + E``, with ``noise_std`` the standard deviation of the entries of
    the symmetric Gaussian noise ``E`` (sums of disjoint blocks' Grams add up both)."""

    matrix: np.ndarray
    noise_std: float

    def __add__(self, other):
        return NoisyGram(self.matrix + other.matrix, math.hypot(self.noise_std,
                                                                other.noise_std))

    def combine(self, other):
        """The inverse-variance weighted mean of two releases of the same Gram (both
        unbiased; post-processing): its noise deviation is below either's."""
        if self.noise_std == 0 or other.noise_std == 0:
            return self if self.noise_std <= other.noise_std else other
        a, b = self.noise_std ** -2, other.noise_std ** -2
        return NoisyGram((a * self.matrix + b * other.matrix) / (a + b), (a + b) ** -0.5)

    def majorizer_inverse(self, C):
        """``(C G / 4 + I)^{-1}`` with ``G`` the noisy Gram made a safe upper bound:
        eigenvalues clipped at 0, plus ``2 sqrt(d) noise_std``, about the spectral norm of
        the noise (a d x d symmetric Gaussian matrix of entry deviation s has norm ~2
        sqrt(d) s). A noisy Gram below the true one would make steps too long in its
        low-curvature directions, and the fit would diverge where the noise is large
        against the data (small n); the margin keeps each step a majorize-minimize step
        with high probability, at the price of slower progress in those directions."""
        d = self.matrix.shape[0]
        eigval, eigvec = np.linalg.eigh(self.matrix)
        bound = np.maximum(eigval, 0.0) + 2.0 * math.sqrt(d) * self.noise_std
        return (eigvec / (C * bound / 4.0 + 1.0)) @ eigvec.T


def release_grams(Z, blocks, row_norm, multiplier, ledger, rng, *, phase, noise_factor=1.0):
    """One Gaussian release of ``Z_b' Z_b`` for every (disjoint) block ``b`` of rows.

    One row is in one block and changes its Gram by at most ``row_norm^2`` (upper
    triangle), so the releases together are one Gaussian mechanism (parallel composition),
    recorded as one event in ``ledger``. ``noise_factor`` is the audits' test hook.
    """
    sensitivity = float(row_norm) ** 2
    ledger.spend(phase, gaussian_event(multiplier), mechanism="gaussian (Gram)",
                 noise_multiplier=multiplier, releases=1, sensitivity=sensitivity)
    scale = multiplier * sensitivity * noise_factor
    return [NoisyGram(Z[rows].T @ Z[rows] + symmetric_noise(Z.shape[1], scale, rng), scale)
            for rows in blocks]


def private_logistic_fit(Z, y, C, gram, row_norm, multiplier, rng, *, steps=STEPS,
                         noise_factor=1.0, w0=None, average=True):
    """Coefficients of the noisy majorize-minimize fit (see the module docstring).

    ``gram`` is the released :class:`NoisyGram` of these rows; each gradient release adds
    Gaussian noise of ``multiplier * row_norm`` (times ``noise_factor``) to
    ``sum_i (p_i - y_i) z_i``. The caller records :func:`fit_event` (without the Gram when
    it was released before) in its ledger. ``w0`` (default 0) is the start, itself private
    (a warm start from an earlier private fit); ``average=False`` returns the last iterate
    instead of the mean of the last half.
    """
    d = Z.shape[1]
    H_inv = gram.majorizer_inverse(C)
    scale = multiplier * float(row_norm) * noise_factor
    w = np.zeros(d) if w0 is None else np.array(w0, dtype=float)
    total, kept = np.zeros(d), 0
    for step in range(steps):
        noisy = Z.T @ (expit(Z @ w) - y) + rng.normal(0.0, scale, d)
        w = w - H_inv @ (C * noisy + w)
        if step >= steps // 2:  # the mean of the last half of the iterates
            total += w
            kept += 1
    return total / kept if average else w
