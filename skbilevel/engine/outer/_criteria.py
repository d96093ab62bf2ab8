"""Outer criteria: what the hyperparameters minimise, measured on held-out data."""

from __future__ import annotations

import torch

from ..inner._design import LinearDesign


class HeldOutMSE:
    """Weighted mean squared error of a linear model on held-out data.

    Predictions are ``X_val W + b`` with the intercept ``b = y_mean - x_mean^T W`` of the
    training fold, i.e. ``(X_val - x_mean) W + y_mean``: the centred validation design is a
    :class:`LinearDesign` with the training means as offset, so sparse data stays sparse.

    Parameters
    ----------
    X : torch.Tensor
        ``(m, d)`` held-out design (dense or sparse CSR).
    y : torch.Tensor
        ``(m, k)`` held-out targets.
    sample_weight : torch.Tensor or None
        ``(m,)`` weights of the held-out errors.
    x_offset, y_offset : torch.Tensor or None
        Training means of the fold (None when no intercept is fitted).
    """

    def __init__(self, X, y, sample_weight=None, x_offset=None, y_offset=None):
        self.design = LinearDesign(X, offset=x_offset)
        self.y = y if y_offset is None else y - y_offset
        self.sample_weight = sample_weight
        total = X.shape[0] if sample_weight is None else sample_weight.sum()
        self.scale = 1.0 / (total * y.shape[1])  # mean over samples and targets

    @classmethod
    def for_problem(cls, problem, X, y, sample_weight=None):
        """Build the criterion that scores ``problem``'s solutions on ``(X, y)``."""
        return cls(X, y, sample_weight, x_offset=problem.x_mean, y_offset=problem.y_mean)

    def _residual(self, w):
        return self.y - self.design.matvec(w)

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """The held-out MSE at ``w``."""
        r = self._residual(w)
        sq = r ** 2 if self.sample_weight is None else self.sample_weight[:, None] * r ** 2
        return self.scale * sq.sum()

    def grad_w(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to ``w``."""
        r = self._residual(w)
        if self.sample_weight is not None:
            r = self.sample_weight[:, None] * r
        return -2.0 * self.scale * self.design.rmatvec(r)

    def grad_theta(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Explicit dependence on ``theta``: none for a held-out error."""
        return torch.zeros_like(theta)
