"""The log-loss of a linear classifier, binary and multinomial, and its ``[X, 1]`` product.

One implementation serves every place that fits or scores a logistic model: the inner
datafits (:class:`~skbilevel.engine.inner.LogisticDatafit`,
:class:`~skbilevel.engine.inner.MultinomialDatafit`, hence HDM's and the tuners' problems)
and the held-out criterion (:class:`~skbilevel.engine.outer.HeldOutLogLoss`).

A linear classifier's scores are ``Z = [X, 1] W`` for the stacked variable ``W = [coef; b]``
of shape ``(d [+ 1], K)``: one column for the binary model (sigmoid, labels in {0, 1}), one
per class for the multinomial one (softmax over ``K`` classes, class-index labels). The
losses below take the scores ``Z`` of shape ``(n, K)`` and per-sample weights, and return the
weighted sum, its derivative with respect to ``Z`` and Hessian products in score space; the
caller maps them back to the variable with :meth:`AffineDesign.rmatvec`.
"""

from __future__ import annotations

import torch


class AffineDesign:
    """The operator ``[X, 1]`` (``X`` without intercept) on a stacked ``[coef; b]``.

    Parameters
    ----------
    design : LinearDesign
        The (uncentred) data matrix ``X``.
    fit_intercept : bool
        Whether the variable's last row is an intercept (the column of ones).
    """

    def __init__(self, design, fit_intercept=True):
        self.design, self.fit_intercept = design, fit_intercept

    def matvec(self, V: torch.Tensor) -> torch.Tensor:
        """``[X, 1] V`` for ``V`` of shape ``(d [+ 1],)`` or ``(d [+ 1], m)``."""
        if not self.fit_intercept:
            return self.design.matvec(V)
        return self.design.matvec(V[:-1]) + V[-1:]

    def rmatvec(self, U: torch.Tensor) -> torch.Tensor:
        """``[X, 1]^T U`` for ``U`` of shape ``(n,)`` or ``(n, m)``."""
        out = self.design.rmatvec(U)
        return torch.cat([out, U.sum(0, keepdim=True)]) if self.fit_intercept else out

    def weighted_gram(self, weight: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """``[X, 1]^T diag(weight) [X, 1] V``, without forming the Gram matrix."""
        Z = self.matvec(V)
        return self.rmatvec((weight[:, None] if Z.dim() == 2 else weight) * Z)


class BinaryLogLoss:
    """``log(1 + exp(-m_i))``, ``m_i = (2 y_i - 1) z_i``: the sigmoid model's log-loss.

    Parameters
    ----------
    y : torch.Tensor
        ``(n,)`` labels in {0, 1}.
    dtype : torch.dtype
        Floating dtype of the scores.
    """

    n_columns = 1
    curvature_bound = 0.25  # sup of sigmoid'(z) = p (1 - p)

    def __init__(self, y, dtype):
        self.sign = 2.0 * y.reshape(-1).to(dtype) - 1.0  # labels in {-1, +1}

    def value(self, Z, weight):
        """``sum_i weight_i loss_i`` for scores ``Z`` of shape ``(n, 1)``."""
        m = self.sign * Z[:, 0]
        return (weight * torch.nn.functional.softplus(-m)).sum()

    def dscores(self, Z, weight):
        """Derivative of :meth:`value` with respect to ``Z``, shape ``(n, 1)``."""
        m = self.sign * Z[:, 0]
        return (weight * (-self.sign * torch.sigmoid(-m)))[:, None]

    def curvature(self, Z, weight):
        """``weight_i p_i (1 - p_i)``, ``p = sigmoid(z)``: the Hessian in score space."""
        p = torch.sigmoid(Z[:, 0])
        return weight * p * (1.0 - p)

    def hvp_scores(self, Z, ZV, weight):
        """The score-space Hessian at ``Z`` times ``ZV`` of shape ``(n, 1, m)``."""
        return self.curvature(Z, weight)[:, None, None] * ZV


class MultinomialLogLoss:
    """``logsumexp(z_i) - z_{i, y_i}``: the softmax model's log-loss over ``K`` classes.

    Parameters
    ----------
    y : torch.Tensor
        ``(n,)`` class indices in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes ``K`` (one column of scores each).
    dtype : torch.dtype
        Floating dtype of the scores.
    """

    curvature_bound = 0.5  # sup of lambda_max(diag(p) - p p^T)

    def __init__(self, y, n_classes, dtype):
        self.n_columns = int(n_classes)
        self.onehot = torch.nn.functional.one_hot(y.reshape(-1).long(), self.n_columns) \
            .to(dtype)

    def value(self, Z, weight):
        """``sum_i weight_i loss_i`` for scores ``Z`` of shape ``(n, K)``."""
        loss = torch.logsumexp(Z, dim=1) - (Z * self.onehot).sum(1)
        return (weight * loss).sum()

    def dscores(self, Z, weight):
        """Derivative of :meth:`value` with respect to ``Z``: ``weight (softmax(Z) - Y)``."""
        return (torch.softmax(Z, dim=1) - self.onehot) * weight[:, None]

    def hvp_scores(self, Z, ZV, weight):
        """``weight_i (diag(p_i) - p_i p_i^T)`` times ``ZV`` of shape ``(n, K, m)``."""
        P = torch.softmax(Z, dim=1)[:, :, None]
        return P * (ZV - (P * ZV).sum(1, keepdim=True)) * weight[:, None, None]


class StackedBinaryLogLoss:
    """``K`` sigmoid models of the same labels side by side: column ``k`` of the scores is
    model ``k``'s, and its losses are weighted by column ``k`` of an ``(n, K)`` weight.

    The loss of the cross-validation folds of one binary problem solved as one: fold
    ``k`` weights its training rows and zeroes the others, so one pass over the rows
    serves every fold (:class:`~skbilevel.engine.inner.StackedLogisticDatafit`).

    Parameters
    ----------
    y : torch.Tensor
        ``(n,)`` labels in {0, 1}, shared by the columns.
    n_columns : int
        Number of models ``K``.
    dtype : torch.dtype
        Floating dtype of the scores.
    """

    curvature_bound = 0.25

    def __init__(self, y, n_columns, dtype):
        self.n_columns = int(n_columns)
        self.sign = (2.0 * y.reshape(-1).to(dtype) - 1.0)[:, None]

    def columns(self, Z, weight):
        """Each column's ``sum_i weight_ik loss_ik``, shape ``(K,)``."""
        return (weight * torch.nn.functional.softplus(-self.sign * Z)).sum(0)

    def value(self, Z, weight):
        return self.columns(Z, weight).sum()

    def dscores(self, Z, weight):
        return weight * (-self.sign * torch.sigmoid(-self.sign * Z))

    def curvature(self, Z, weight):
        p = torch.sigmoid(Z)
        return weight * p * (1.0 - p)

    def hvp_scores(self, Z, ZV, weight):
        return self.curvature(Z, weight)[:, :, None] * ZV


def log_loss(y, n_columns, dtype):
    """The binary loss for one column of scores, the multinomial one for ``n_columns > 1``."""
    if n_columns == 1:
        return BinaryLogLoss(y, dtype)
    return MultinomialLogLoss(y, n_columns, dtype)
