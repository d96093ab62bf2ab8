"""Outer criteria: what the hyperparameters minimise, measured on held-out data."""

from __future__ import annotations

import torch

from .._capabilities import provides
from ..inner import AffineDesign, LinearDesign, log_loss
from ..inner._design import weights_or_ones


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


class HeldOutLogLoss:
    """Weighted mean log-loss of a linear classifier on held-out data.

    The variable is laid out as in :class:`~skbilevel.engine.inner.LogisticDatafit` and
    :class:`~skbilevel.engine.inner.MultinomialDatafit`, and the loss is theirs
    (:mod:`skbilevel.engine.inner._losses`): the stacked ``(d [+ 1], K)`` array ``[coef; b]``
    with the intercept as last row when ``fit_intercept``, raveled to one column when
    ``n_columns`` is given. One column is the binary model (sigmoid, labels in {0, 1}),
    ``K > 1`` columns the multinomial one (softmax, class-index labels).

    Parameters
    ----------
    X : torch.Tensor
        ``(m, d)`` held-out design (dense or sparse CSR).
    y : torch.Tensor
        ``(m,)`` labels.
    sample_weight : torch.Tensor or None
        ``(m,)`` weights of the held-out losses.
    fit_intercept : bool
        Whether the variable's last row is an intercept.
    n_columns : int or None
        ``K`` when the variable comes raveled to one column (the datafits' layout); None
        when it comes as the ``(d [+ 1], K)`` array.
    """

    def __init__(self, X, y, sample_weight=None, fit_intercept=True, n_columns=None):
        self.model = AffineDesign(LinearDesign(X), fit_intercept)
        self.fit_intercept, self.n_columns = fit_intercept, n_columns
        sw = weights_or_ones(sample_weight, X)
        self.weight = sw / sw.sum()
        self.y = y.reshape(-1)
        self._loss = None if n_columns is None else log_loss(self.y, n_columns, X.dtype)

    @classmethod
    def for_problem(cls, problem, X, y, sample_weight=None):
        """Build the criterion that scores ``problem``'s solutions on ``(X, y)``."""
        datafit = problem.datafit if provides(problem, "datafit") else None
        n_columns = datafit.n_columns if provides(datafit, "n_columns") else None
        return cls(X, y, sample_weight, fit_intercept=problem.fit_intercept,
                   n_columns=n_columns)

    def _scores_and_loss(self, w):
        if self.n_columns is not None:
            w = w.reshape(-1, self.n_columns)
        Z = self.model.matvec(w)
        return Z, self._loss or log_loss(self.y, Z.shape[1], Z.dtype)

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """The held-out mean log-loss at ``w``."""
        Z, loss = self._scores_and_loss(w)
        return loss.value(Z, self.weight)

    def grad_w(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to ``w`` (shape of ``w``)."""
        Z, loss = self._scores_and_loss(w)
        return self.model.rmatvec(loss.dscores(Z, self.weight)).reshape(w.shape)

    def grad_theta(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Explicit dependence on ``theta``: none for a held-out error."""
        return torch.zeros_like(theta)


class HeldOutStackedLogLoss:
    """The mean over ``K`` folds of their validation log-loss, for the folds solved side
    by side by a :class:`~skbilevel.engine.inner.StackedLogisticDatafit`.

    Fold ``k``'s validation rows are the rows of the same ``X`` that ``validation_weight``
    weights in column ``k``: its scores are column ``k`` of the datafit's ``[X, 1] W``,
    which the datafit has just computed at the inner solution (its last product), so the
    criterion costs no pass over ``X`` of its own, and its gradient one.

    Parameters
    ----------
    datafit : StackedLogisticDatafit
        The folds' training datafit (its design, labels and layout).
    validation_weight : torch.Tensor
        ``(n, K)`` non-negative weights, column ``k`` on fold ``k``'s validation rows.
    """

    def __init__(self, datafit, validation_weight):
        K = datafit.n_columns
        if tuple(validation_weight.shape) != (datafit.design.shape[0], K):
            raise ValueError(f"validation_weight must have shape ({datafit.design.shape[0]}, "
                             f"{K}), got {tuple(validation_weight.shape)}")
        self.datafit = datafit
        self.weight = validation_weight / (K * validation_weight.sum(0))

    def fold_values(self, w: torch.Tensor) -> torch.Tensor:
        """Each fold's validation mean log-loss at ``w``, shape ``(K,)``."""
        return self.datafit.loss.columns(self.datafit._decision(w), self.weight) * \
            self.datafit.n_columns

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """The mean over the folds of their validation log-loss at ``w``."""
        return self.datafit.loss.value(self.datafit._decision(w), self.weight)

    def grad_w(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to ``w`` (shape of ``w``)."""
        dZ = self.datafit.loss.dscores(self.datafit._decision(w), self.weight)
        return self.datafit.model.rmatvec(dZ).reshape(w.shape)

    def grad_theta(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Explicit dependence on ``theta``: none for a held-out error."""
        return torch.zeros_like(theta)
