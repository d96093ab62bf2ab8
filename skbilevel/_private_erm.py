"""Exact minimisers of the strongly convex inner problems of private tuning, with the
bound on how far one row can move them (the sensitivity of output perturbation).

Every inner problem here is, in scikit-learn's (sum) units,

    G(w) = sum_i omega_i l(w; x_i, y_i) + alpha / 2 ||w||^2,      w in K,

with row weights ``0 <= omega_i <= 1``, ``l`` the half squared error (``Ridge``) or the
log-loss (binary ``LogisticRegression``, ``alpha = 1 / C``) and ``K`` the ball of radius
``coef_bound`` (ridge) or all of R^d (logistic).

Sensitivity (add/remove one row). Let ``G' = G + omega l_new`` and ``w, w'`` their
minimisers over K. The optimality conditions of both, ``<grad G(w), w' - w> >= 0`` and
``<grad G(w') + omega grad l_new(w'), w - w'> >= 0``, add up to
``<grad G(w') - grad G(w), w' - w> <= omega ||grad l_new(w')|| ||w - w'||``, and the
alpha-strong convexity of G bounds the left side below by ``alpha ||w' - w||^2``, so

    ||w' - w|| <= omega ||grad l_new(w')|| / alpha <= L / alpha,

where ``L`` bounds the per-row gradient over K: ``|sigma(z) - y| ||x|| <= R`` for the
log-loss, ``|x.w - y| ||x|| <= R (y_bound + R coef_bound)`` for the squared error on the
ball (which is why ridge is solved on a ball: without it ``||w||`` has no data-free bound).
The bound holds in both directions (removal swaps the roles), needs no bound on ``n``, and
is the same for every weight ``omega <= 1``. A solver stopped at ``||grad G|| <= tol`` is
within ``tol / alpha`` of the minimiser, which adds ``2 tol / alpha`` (see
:func:`sensitivity`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

#: Stopping tolerance of the inner solvers, relative to ``L`` (gradient norm).
RELATIVE_TOL = 1e-9


def row_gradient_bound(kind, row_norm, y_bound=None, coef_bound=None):
    """``L``: the largest norm of one row's loss gradient over the feasible set."""
    if kind == "logistic":
        return row_norm
    return row_norm * (y_bound + row_norm * coef_bound)


def sensitivity(kind, alpha, row_norm, y_bound=None, coef_bound=None):
    """L2 sensitivity of the inner minimiser (add/remove one row), with the solver's slack:
    ``(L + 2 tol) / alpha`` with ``tol = RELATIVE_TOL * L`` (see the module docstring)."""
    lip = row_gradient_bound(kind, row_norm, y_bound, coef_bound)
    return lip * (1.0 + 2.0 * RELATIVE_TOL) / alpha


def symmetric_noise(d, scale, rng):
    """Gaussian noise of standard deviation ``scale`` on the upper triangle (diagonal
    included), mirrored: the noise of a released symmetric matrix."""
    upper = np.triu(rng.normal(0.0, scale, (d, d)))
    return upper + np.triu(upper, 1).T


def intercept_design(X, fit_intercept, data_norm):
    """``(Z, row_norm)``: ``X`` with a constant column ``data_norm`` when there is an
    intercept, and the bound on its rows' norm (``sqrt(2) data_norm``, else ``data_norm``).

    The intercept becomes a penalised coefficient on that column: left unpenalised it would
    leave the inner problem without strong convexity, hence without a sensitivity bound.
    """
    if not fit_intercept:
        return X, data_norm
    return np.hstack([X, np.full((X.shape[0], 1), data_norm)]), np.sqrt(2.0) * data_norm


class RidgeMoments:
    """The weighted moments ``M = sum omega x x^T``, ``b = sum omega y x`` of a ridge
    problem, eigendecomposed once: every ``alpha`` is then solved in ``O(d^2)``."""

    def __init__(self, X, y, weights):
        M = (X * weights[:, None]).T @ X
        self.b = X.T @ (weights * y)
        self.eigval, self.eigvec = np.linalg.eigh(M)
        self.eigval = np.maximum(self.eigval, 0.0)
        self.b_eig = self.eigvec.T @ self.b

    def solve(self, alpha, coef_bound):
        """Minimiser of ``1/2 w^T (M + alpha I) w - b^T w`` over ``||w|| <= coef_bound``
        (a trust-region problem: ``(M + (alpha + nu) I) w = b`` with the multiplier
        ``nu >= 0`` found by bisection on ``||w(nu)|| = coef_bound``)."""
        def coef_norm(nu):
            return np.linalg.norm(self.b_eig / (self.eigval + alpha + nu))

        nu = 0.0
        if coef_norm(0.0) > coef_bound:
            # ||w(nu)|| <= ||b|| / (alpha + nu): the root lies below ||b|| / coef_bound.
            low, high = 0.0, np.linalg.norm(self.b) / coef_bound
            for _ in range(200):
                nu = 0.5 * (low + high)
                if coef_norm(nu) > coef_bound:
                    low = nu
                else:
                    high = nu
                if high - low <= 1e-15 * max(high, 1.0):
                    break
            nu = high
        w = self.eigvec @ (self.b_eig / (self.eigval + alpha + nu))
        norm = np.linalg.norm(w)
        return w if norm <= coef_bound else w * (coef_bound / norm)


def logistic_solve(X, y, weights, alpha, w0, gtol, max_iter=100):
    """Minimiser of ``sum omega log-loss + alpha/2 ||w||^2`` by damped Newton from ``w0``,
    stopped at ``||grad|| <= gtol`` (an error if not reached: the sensitivity assumes it).
    """
    w = np.array(w0, dtype=float)

    def objective(v):
        z = X @ v
        return weights @ (np.logaddexp(0.0, z) - y * z) + 0.5 * alpha * v @ v

    value = objective(w)
    for _ in range(max_iter):
        p = expit(X @ w)
        grad = X.T @ (weights * (p - y)) + alpha * w
        if np.linalg.norm(grad) <= gtol:
            return w
        hess = (X * (weights * p * (1 - p))[:, None]).T @ X
        hess[np.diag_indices_from(hess)] += alpha
        step = np.linalg.solve(hess, grad)
        decrement = grad @ step
        t = 1.0
        # Backtracking (Armijo): Newton's full step can overshoot from a far start. Near
        # the minimum the decrease is below the objective's rounding, so the full step
        # (quadratic convergence) is taken.
        while decrement > 1e-12 * (1.0 + abs(value)):
            new_value = objective(w - t * step)
            if new_value <= value - 1e-4 * t * decrement or t < 1e-10:
                break
            t *= 0.5
        w = w - t * step
        value = objective(w)
    raise RuntimeError(f"the logistic inner solve did not reach ||grad|| <= {gtol:g} in "
                       f"{max_iter} Newton steps; its sensitivity bound would not hold")
