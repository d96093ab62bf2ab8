"""Outer criteria: what the hyperparameters minimise, measured on held-out data."""

from __future__ import annotations

import torch

from ..inner._design import LinearDesign, weights_or_ones


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
    :class:`~skbilevel.engine.inner.LogisticProblem`: ``(d [+ 1], K)`` with the intercept
    as last row when ``fit_intercept``. One column is the binary model (sigmoid, labels in
    {0, 1}); ``K > 1`` columns the multinomial one (softmax, class-index labels).

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
    """

    def __init__(self, X, y, sample_weight=None, fit_intercept=True, n_columns=None):
        self.design = LinearDesign(X)
        self.fit_intercept = fit_intercept
        # A multinomial variable may come flattened to one column (the layout of
        # MultinomialDatafit): it is the (d [+ 1], K) array raveled row by row.
        self.n_columns = n_columns
        sw = weights_or_ones(sample_weight, X)
        self.weight = sw / sw.sum()
        self.y = y.reshape(-1)

    @classmethod
    def for_problem(cls, problem, X, y, sample_weight=None):
        """Build the criterion that scores ``problem``'s solutions on ``(X, y)``."""
        n_columns = getattr(getattr(problem, "datafit", None), "n_columns", None)
        return cls(X, y, sample_weight, fit_intercept=problem.fit_intercept,
                   n_columns=n_columns)

    def _scores(self, w):
        if self.n_columns is not None:
            w = w.reshape(-1, self.n_columns)
        if not self.fit_intercept:
            return self.design.matvec(w)
        return self.design.matvec(w[:-1]) + w[-1:]

    def _loss_and_dscores(self, w):
        Z = self._scores(w)
        if Z.shape[1] == 1:
            sign = 2.0 * self.y.to(Z.dtype) - 1.0
            m = sign * Z[:, 0]
            loss = torch.nn.functional.softplus(-m)
            dZ = (-sign * torch.sigmoid(-m))[:, None]
        else:
            onehot = torch.nn.functional.one_hot(self.y.long(), Z.shape[1]).to(Z.dtype)
            loss = torch.logsumexp(Z, dim=1) - (Z * onehot).sum(1)
            dZ = torch.softmax(Z, dim=1) - onehot
        return (self.weight * loss).sum(), self.weight[:, None] * dZ

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """The held-out mean log-loss at ``w``."""
        return self._loss_and_dscores(w)[0]

    def grad_w(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to ``w`` (shape of ``w``)."""
        dZ = self._loss_and_dscores(w)[1]
        g = self.design.rmatvec(dZ)
        g = torch.cat([g, dZ.sum(0, keepdim=True)]) if self.fit_intercept else g
        return g.reshape(w.shape)

    def grad_theta(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Explicit dependence on ``theta``: none for a held-out error."""
        return torch.zeros_like(theta)
