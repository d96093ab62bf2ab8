"""Least squares with non-smooth penalties (Lasso, elastic net, weighted Lasso).

``min_w 1/(2 S) sum_i s_i (y_i - x_i^T w - b)^2 + penalty(w, theta)``, ``S = sum_i s_i``:
scikit-learn's ``Lasso`` / ``ElasticNet`` objective. The intercept is eliminated by
centring, implicitly for sparse ``X`` (as :class:`RidgeProblem` does). Proximal solvers
need the smooth part (value, gradient, Hessian products, Lipschitz constant) and the
penalty's ``prox``; every operation is a torch operation, so automatic differentiation
(forward or reverse) flows through the solver's iterations.
"""

from __future__ import annotations

from functools import cached_property

import torch

from ..solvers._smoothness import power_iteration
from ._base import InnerProblem
from ._design import LinearDesign
from ._penalties import L1, ElasticNet, WeightedL1, soft_threshold  # noqa: F401


class LassoProblem(InnerProblem):
    """Weighted least squares (``1/(2S)`` scaling) plus a proximable penalty.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n, 1)`` targets (2-D like :class:`RidgeProblem`'s, so that the held-out criteria
        of the engine apply; the variable ``w`` is ``(d, 1)``).
    penalty : L1, WeightedL1, ElasticNet or L2
        The non-smooth part and its ``prox``.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights.
    fit_intercept : bool
        Whether to fit an unpenalised intercept (by implicit centring).
    """

    def __init__(self, X, y, penalty, sample_weight=None, fit_intercept=True):
        n = X.shape[0]
        sw = sample_weight if sample_weight is not None else \
            torch.ones(n, dtype=X.dtype, device=X.device)
        self.sample_weight, self.weight_sum = sw, sw.sum()
        self.penalty, self.n_hyper = penalty, penalty.n_hyper
        if fit_intercept:
            x_mean = LinearDesign(X).rmatvec(sw) / self.weight_sum
            y_mean = (sw[:, None] * y).sum(0) / self.weight_sum
        else:
            x_mean, y_mean = None, y.new_zeros(y.shape[1])
        self.x_mean, self.y_mean = x_mean, y_mean
        self.design = LinearDesign(X, offset=x_mean)
        self.y = y - y_mean
        self.xty = self.design.rmatvec(sw[:, None] * self.y) / self.weight_sum

    # -- smooth part -----------------------------------------------------------------
    def init_params(self):
        return self.xty.new_zeros(self.xty.shape)

    def smooth_value(self, w, theta=None):
        r = self.y - self.design.matvec(w)
        return 0.5 * (self.sample_weight[:, None] * r ** 2).sum() / self.weight_sum

    def smooth_grad(self, w, theta=None):
        return self.hessian_matvec(w) - self.xty

    def hessian_matvec(self, v):
        """``X_c^T S X_c v / S``: the Hessian of the smooth part (independent of ``w``)."""
        sw = self.sample_weight if v.dim() == 1 else self.sample_weight[:, None]
        return self.design.rmatvec(sw * self.design.matvec(v)) / self.weight_sum

    @cached_property
    def _lipschitz(self):
        return power_iteration(self.hessian_matvec, self.xty[:, :1], n_iter=100)

    def lipschitz(self, theta=None) -> float:
        """Largest eigenvalue of the smooth part's Hessian (deterministic power iteration)."""
        return self._lipschitz

    # -- whole problem ---------------------------------------------------------------
    def objective(self, w, theta):
        return self.smooth_value(w) + self.penalty.value(w, theta)

    def prox(self, z, step, theta):
        return self.penalty.prox(z, step, theta)

    def prox_step(self, w, step, theta):
        """One proximal gradient step ``prox_{step g}(w - step grad f(w))``."""
        return self.prox(w - step * self.smooth_grad(w), step, theta)

    def optimality_residual(self, w, theta):
        """``||w - prox(w - grad f(w) / L)|| * L``: zero exactly at a solution."""
        L = self.lipschitz()
        return float(torch.linalg.vector_norm(w - self.prox_step(w, 1.0 / L, theta))) * L

    def grad(self, w, theta):  # the smooth part: what gradient-based checks can use
        return self.smooth_grad(w)

    def intercept(self, w):
        """Intercept that goes with ``w``: ``y_mean - x_mean^T w``."""
        return self.y_mean if self.x_mean is None else self.y_mean - self.x_mean @ w
