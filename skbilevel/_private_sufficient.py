"""Private ridge tuning from noisy sufficient statistics (``method="sufficient-statistics"``).

A ridge fit and its validation error depend on the rows only through their second moments:
with ``v = (x, a y, c)`` (the constant ``c`` only with an intercept; ``a`` puts ``y`` on the
scale of the rows), ``M = sum_i v_i v_i^T`` holds ``X^T X``, ``X^T y``, ``y^T y``, the sums
``X^T 1``, ``y^T 1`` and the count ``n`` (not public under add/remove, so released too). One
Gaussian release of the upper triangle of ``M_b`` for every validation block ``b`` reads the
data once: adding or removing a row changes one block's ``M_b`` by ``v v^T`` (sensitivity in
:func:`moment_sensitivity`), and the blocks are disjoint, so the K releases together are one
Gaussian mechanism of that L2 sensitivity (parallel composition). Every
fold's training moments are sums of the other blocks' noisy moments, the validation error of
``w(alpha)`` on block ``b`` is the quadratic form ``q^T M_b q`` of its noisy moments, and the
refit's moments are the sum of all blocks': choosing ``alpha`` and refitting are
post-processing, free. The whole budget therefore goes into the one release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from ._private_base import PrivateMethod, PrivateTask, PrivateTuning
from ._private_erm import symmetric_noise
from .engine.dp import calibrate, gaussian_event

# Points of the search over log(alpha): the noisy criterion can have several local minima
# (the clipped noisy Gram has arbitrary small eigenvalues), so a global grid comes first and
# Brent's method refines between the neighbours of its best point. Both are post-processing
# of the one release, so their cost is time, never privacy.
_GRID_POINTS = 401


@dataclass(frozen=True)
class NoisyMoments:
    """A released ``M = sum_i v_i v_i^T + E`` with ``v = (x, a y[, c])`` and symmetric noise.

    ``y_scale`` is ``a``, ``const`` is ``c`` (None without an intercept), ``n_features``
    the length of ``x``.
    """

    matrix: np.ndarray
    n_features: int
    y_scale: float
    const: float | None

    def __add__(self, other):
        return NoisyMoments(self.matrix + other.matrix, self.n_features, self.y_scale,
                            self.const)

    def count(self):
        """The noisy number of rows (at least 1), or None without an intercept."""
        if self.const is None:
            return None
        # The noisy count can be tiny or negative on small data; clamping it is
        # post-processing (it only changes how the released values are used).
        return max(self.matrix[-1, -1] / self.const**2, 1.0)

    def centred(self):
        """``(G, b, x_mean, y_mean)`` of the ridge problem on these rows: ``G``, ``b`` are
        the (centred, with an intercept) ``X^T X`` and ``X^T y``; the means are None
        without an intercept."""
        d, M, a = self.n_features, self.matrix, self.y_scale
        G, b = M[:d, :d], M[:d, d] / a
        if self.const is None:
            return G, b, None, None
        c, count = self.const, self.count()
        x_sum, y_sum = M[:d, d + 1] / c, M[d, d + 1] / (a * c)
        return (G - np.outer(x_sum, x_sum) / count, b - x_sum * y_sum / count,
                x_sum / count, y_sum / count)


def moment_sensitivity(data_norm, scaled_y_bound, const):
    """L2 sensitivity of the upper triangle of ``M`` under adding or removing one row.

    That triangle changes by ``(v_i v_j)_{i <= j}``, of squared norm
    ``(||v||^4 + sum_i v_i^4) / 2``, largest when ``x`` lies on an axis.
    """
    parts = np.array([data_norm, scaled_y_bound, const or 0.0]) ** 2
    return float(np.sqrt((parts.sum() ** 2 + (parts**2).sum()) / 2))


def augmentation(task: PrivateTask):
    """``(a, c)``: ``y`` is released as ``a y`` with ``a = data_norm / y_bound`` (the same
    scale as a row, so the Gram, which ridge needs most, shares the noise with targets no
    larger than the rows); ``c = data_norm / 2`` carries the sums and the count with an
    intercept (None without): a smaller sensitivity, and with ``n`` rows the noise
    ``sigma / c`` of the sums is negligible against their size ``~n``."""
    a = task.data_norm / task.y_bound
    return a, (0.5 * task.data_norm if task.fit_intercept else None)


def release_moments(task: PrivateTask, blocks, multiplier, ledger, rng, *, phase,
                    noise_factor=1.0):
    """One Gaussian release (noise ``multiplier`` times the sensitivity) of the moments of
    each (disjoint) block of rows, recorded in ``ledger`` as one event. ``noise_factor``
    scales the noise added (the audits' test hook, see ``PrivateMethod._noise_factor``);
    the release recorded is the calibrated one whatever it is."""
    a, const = augmentation(task)
    columns = [task.X, a * task.y[:, None]]
    if const is not None:
        columns.append(np.full((task.n_samples, 1), const))
    V = np.hstack(columns)
    sensitivity = moment_sensitivity(task.data_norm, a * task.y_bound, const)
    # Recorded as the data are read: one mechanism, whatever the number of blocks.
    ledger.spend(phase, gaussian_event(multiplier), mechanism="gaussian", releases=1,
                 noise_multiplier=multiplier, sensitivity=sensitivity)
    sigma = multiplier * sensitivity * noise_factor
    released = []
    for rows in blocks:
        Vb = V[rows]
        released.append(NoisyMoments(Vb.T @ Vb + symmetric_noise(V.shape[1], sigma, rng),
                                     task.X.shape[1], a,
                                     const))
    return released


def gaussian_multiplier(epsilon, delta, accountant="rdp"):
    """Noise multiplier of one Gaussian release spending ``(epsilon, delta)`` alone
    (a function of the arguments only, never of the data; :func:`calibrate` memoises it).
    """
    return calibrate(lambda s: gaussian_event(s), epsilon, delta, accountant=accountant,
                     lower=1e-8)


class _FoldPath:
    """Ridge solutions on one fold's noisy training moments, for any ``alpha``.

    The noisy centred Gram can be indefinite; its eigenvalues are clipped at 0 before
    ``alpha`` is added, so ``G+ + alpha I`` is positive definite for every ``alpha > 0``
    (post-processing: a function of released values only).
    """

    def __init__(self, train: NoisyMoments):
        G, b, self.x_mean, self.y_mean = train.centred()
        eigval, self.U = np.linalg.eigh(0.5 * (G + G.T))
        self.eigval = np.clip(eigval, 0.0, None)
        self.p = self.U.T @ b
        self.y_scale, self.const = train.y_scale, train.const

    def coef(self, alphas):
        """``(W, intercepts)``: one column of ``W`` per ``alpha`` (intercepts 0 without)."""
        W = self.U @ (self.p[:, None] / (self.eigval[:, None] + np.asarray(alphas)[None, :]))
        if self.x_mean is None:
            return W, np.zeros(W.shape[1])
        return W, self.y_mean - self.x_mean @ W

    def residual_weights(self, alphas):
        """Columns ``q`` with ``v^T q = y - x^T w - b0`` for ``v = (x, a y[, c])``."""
        W, b0 = self.coef(alphas)
        rows = [-W, np.full((1, W.shape[1]), 1.0 / self.y_scale)]
        if self.const is not None:
            rows.append(-b0[None, :] / self.const)
        return np.vstack(rows)


def noisy_cv_sse(paths, validation, alphas):
    """Sum over folds of the validation squared error ``q^T M_b q`` (noisy moments).

    Each block's ``M_b`` is projected onto the positive semidefinite matrices first
    (post-processing): a noisy ``M_b`` can be indefinite, and its quadratic form then
    runs to minus infinity along large coefficients, which would pick the smallest
    ``alpha`` of the box for a criterion that no data can make negative.
    """
    total = np.zeros(len(alphas))
    for path, block in zip(paths, validation):
        Q = path.residual_weights(alphas)
        total += np.einsum("ij,ij->j", Q, _psd(block.matrix) @ Q)
    return total


def _psd(M):
    """The nearest (Frobenius) positive semidefinite matrix to the symmetric ``M``."""
    eigval, U = np.linalg.eigh(0.5 * (M + M.T))
    return (U * np.clip(eigval, 0.0, None)) @ U.T


class SufficientStatisticsMethod(PrivateMethod):
    """Ridge tuning as post-processing of one Gaussian release of the block moments.

    Spends its whole ``(epsilon, delta)`` on that release and hands the noisy total moments
    to the refit (``provides_refit_moments``), which is then free too. ``max_iter`` does not
    apply: the search over ``log(alpha)`` is a fine grid and a Brent refinement.
    """

    name = "sufficient-statistics"
    kinds = frozenset({"ridge"})
    provides_refit_moments = True

    def tune(self, task, epsilon, delta, ledger, rng, *, max_iter, progress=None):
        validation_rows = [va for _, va in task.splits]
        rows = np.concatenate(validation_rows)
        if np.unique(rows).size != rows.size or rows.size != task.n_samples:
            raise ValueError("sufficient-statistics needs validation blocks that partition "
                             "the rows (each row in exactly one block)")
        multiplier = gaussian_multiplier(float(epsilon), float(delta), ledger.accountant)
        blocks = release_moments(task, validation_rows, multiplier, ledger, rng,
                                 phase="tuning: validation-block moments",
                                 noise_factor=self._noise_factor)
        total = blocks[0]
        for block in blocks[1:]:
            total = total + block
        paths = []
        for k in range(len(blocks)):
            train = None
            for j, block in enumerate(blocks):
                if j != k:
                    train = block if train is None else train + block
            paths.append(_FoldPath(train))

        lo, hi = task.theta_bounds
        grid = np.linspace(lo, hi, _GRID_POINTS)
        values = noisy_cv_sse(paths, blocks, np.exp(grid))
        best = int(np.argmin(values))
        theta, n_eval = grid[best], grid.size
        if 0 < best < grid.size - 1:
            found = minimize_scalar(
                lambda t: noisy_cv_sse(paths, blocks, np.exp([t]))[0],
                bounds=(grid[best - 1], grid[best + 1]), method="bounded",
                options={"xatol": 1e-6})
            n_eval += found.nfev
            if found.fun < values[best]:
                theta = float(found.x)
        history = {"theta": grid, "noisy_cv_sse": values}
        if task.fit_intercept:
            history["noisy_cv_mse"] = values / total.count()
        if progress is not None:
            progress(theta=theta, noisy_cv_sse=float(np.min(values)))
        return PrivateTuning(theta=float(theta), history=history, n_iter=n_eval,
                             refit_moments=total)
