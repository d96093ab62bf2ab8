"""L2-regularised logistic regression (binary or multinomial) as an inner problem."""

from __future__ import annotations

from functools import cached_property
from typing import Optional

import torch

from ..solvers._smoothness import power_iteration
from ._base import InnerProblem
from ._design import LinearDesign, weights_or_ones


class LogisticProblem(InnerProblem):
    """``min_W (1/S) sum_i s_i loss(y_i, x_i^T W + b) + (exp(theta) / 2) ||W||^2``.

    The objective of ``sklearn.linear_model.LogisticRegression(penalty="l2")`` with its
    ``lbfgs`` solver when ``exp(theta) = 1 / (C S)``, ``S = sum_i s_i``: the mean weighted
    log-loss plus an L2 penalty that leaves the intercept out. Binary problems have one
    column (sigmoid, labels in {0, 1}); multinomial ones one column per class (softmax, the
    symmetric parametrisation scikit-learn uses).

    The variable is one ``(d + 1, K)`` tensor (``(d, K)`` without intercept) whose last row
    is the intercept, so solvers see a single array.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n,)`` labels: 0/1 floats for binary, class indices (long) for multinomial.
    n_classes : int
        2 for the binary model, the number of classes otherwise.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights (class weights already folded in).
    fit_intercept : bool
        Whether the last row is an unpenalised intercept.
    """

    n_hyper = 1

    def __init__(self, X, y, n_classes, sample_weight=None, fit_intercept=True):
        n, d = X.shape
        self.design = LinearDesign(X)
        self.binary = n_classes == 2
        self.n_columns = 1 if self.binary else n_classes
        self.fit_intercept = fit_intercept
        self.n_features = d
        sw = weights_or_ones(sample_weight, X)
        self.sample_weight = sw
        self.weight_sum = sw.sum()
        if self.binary:
            self.sign = 2.0 * y.to(X.dtype) - 1.0  # labels in {-1, +1}
        else:
            self.onehot = torch.nn.functional.one_hot(y.long(), n_classes).to(X.dtype)

    # -- the model ---------------------------------------------------------------------
    def init_params(self) -> torch.Tensor:
        rows = self.n_features + int(self.fit_intercept)
        return torch.zeros(rows, self.n_columns, dtype=self.weight_sum.dtype,
                           device=self.weight_sum.device)

    def split(self, W):
        """``(coef (d, K), intercept (K,))`` of the stacked variable."""
        if self.fit_intercept:
            return W[:-1], W[-1]
        return W, W.new_zeros(W.shape[1])

    def decision_function(self, W):
        coef, intercept = self.split(W)
        return self.design.matvec(coef) + intercept

    # -- InnerProblem interface ----------------------------------------------------------
    def value_and_grad(self, W, theta):
        """Objective and gradient from one pass over the data."""
        Z = self.decision_function(W)
        s = self.sample_weight / self.weight_sum
        if self.binary:
            m = self.sign * Z[:, 0]
            loss = torch.nn.functional.softplus(-m)
            dZ = (-self.sign * torch.sigmoid(-m))[:, None]
        else:
            lse = torch.logsumexp(Z, dim=1)
            loss = lse - (Z * self.onehot).sum(1)
            dZ = torch.softmax(Z, dim=1) - self.onehot
        dZ = dZ * s[:, None]
        coef, _ = self.split(W)
        strength = torch.exp(theta[0])
        value = (s * loss).sum() + 0.5 * strength * (coef ** 2).sum()
        grad_coef = self.design.rmatvec(dZ) + strength * coef
        if self.fit_intercept:
            return value, torch.cat([grad_coef, dZ.sum(0, keepdim=True)])
        return value, grad_coef

    def objective(self, W, theta):
        return self.value_and_grad(W, theta)[0]

    def grad(self, W, theta):
        return self.value_and_grad(W, theta)[1]

    @cached_property
    def _data_smoothness(self) -> float:
        """``||S^{1/2} [X, 1]||_2^2 / S`` by deterministic power iteration (30 products)."""
        s = self.sample_weight / self.weight_sum

        def matvec(v):  # v: (d [+ 1],)
            coef = v[:self.n_features]
            z = self.design.matvec(coef)
            if self.fit_intercept:
                z = z + v[-1]
            u = s * z
            out = self.design.rmatvec(u)
            return torch.cat([out, u.sum()[None]]) if self.fit_intercept else out

        like = self.init_params()[:, 0]
        return power_iteration(matvec, like)

    def lipschitz(self, theta: Optional[torch.Tensor] = None) -> float:
        """Smoothness estimate ``||S^{1/2} [X, 1]||^2 / S + exp(theta)``.

        As in the reference HDM code, the loss's own curvature bound (1/4 for the sigmoid,
        1/2 for the softmax) is left out: the learning rate ``10 / L`` of HDM was tuned with
        this estimate.
        """
        strength = 0.0 if theta is None else float(torch.exp(theta[0]))
        return self._data_smoothness + strength
