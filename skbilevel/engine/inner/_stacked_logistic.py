"""The K training folds of one binary logistic problem as one problem on the rows of X.

K-fold cross-validation of ``LogisticRegression(C)`` fits K models, each on all the rows
but one validation block. Copying each training fold costs memory (``K - 1`` times the
data, or ``2 - 1/K`` times in a reordered copy whose first touch, on a virtual machine,
can cost as much as the fits), and each fold's pass over its rows reads most of the data
again. Solved side by side, the folds are one smooth problem in the ``(d [+ 1], K)``
variable ``[W; b]`` whose column ``k`` is fold ``k``'s model: its loss weights row ``i`` in
column ``k`` by ``s_i`` when the row is in fold ``k``'s training set and by 0 otherwise.
One pass over X then serves every fold (``X [w_1 .. w_K]`` and ``X^T U`` with ``K``
columns), nothing is copied, and the objective is separable, so its minimiser is the
folds' solutions, its Hessian block-diagonal, and implicit differentiation of the joint
problem is the folds' implicit differentiation.
"""

from __future__ import annotations

import torch

from ._datafits import _column_scale
from ._logistic_datafits import _LogLossDatafit, _sketch_rows
from ._losses import StackedBinaryLogLoss


class StackedLogisticDatafit(_LogLossDatafit):
    """``f(W) = sum_k sum_i a_ik log(1 + exp(-m_ik))`` over the columns of ``[X, 1] W``.

    ``a = fold_weight / S``, ``S`` the mean over the columns of ``fold_weight``'s sums.
    Every column is then a binary :class:`LogisticDatafit` on its rows scaled by ``S_k /
    S`` (``S_k`` its weight): with one penalty ``||w_k||^2 exp(theta) / 2`` on every
    column, ``theta = -log(C S)`` solves each column's
    ``LogisticRegression(C)`` on its rows (the scale of an objective does not move its
    minimiser), which :func:`stacked_shift` gives. The variable is laid out as
    :class:`MultinomialDatafit`'s: ``[W; b]`` raveled row by row to one column of
    ``(d [+ 1]) K`` rows, the intercepts last.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense design.
    y : torch.Tensor
        ``(n,)`` labels in {0, 1}.
    fold_weight : torch.Tensor
        ``(n, K)`` non-negative weights, column ``k`` fold ``k``'s (zero off its rows).
    fit_intercept : bool
        Whether the last ``K`` rows of the variable are unpenalised intercepts.
    low_precision_hvp : bool
        Whether Hessian products run the design's products in float32 (see
        ``LinearDesign.low_precision``; the scores at ``w`` stay exact): for adjoint
        systems solved to a loose tolerance (``1e-3`` for one hyperparameter), whose CG
        then costs half.
    """

    def __init__(self, X, y, fold_weight, fit_intercept=True, low_precision_hvp=False):
        if fold_weight.dim() != 2 or fold_weight.shape[0] != X.shape[0]:
            raise ValueError(f"fold_weight must have shape (n_samples, n_folds) = "
                             f"({X.shape[0]}, K), got {tuple(fold_weight.shape)}")
        K = fold_weight.shape[1]
        # The feature scale (variable_scale) is measured on every row of X, once.
        super().__init__(X, StackedBinaryLogLoss(y, K, X.dtype), fold_weight.sum(1),
                         fit_intercept)
        self.weight_sum = fold_weight.sum(0).mean()
        self.scaled_weight = fold_weight / self.weight_sum
        self.low_precision_hvp = bool(low_precision_hvp)

    def hvp(self, w, V):
        if not self.low_precision_hvp:
            return super().hvp(w, V)
        self._decision(w)  # the curvature's scores at w, exact (an exact one serves both)
        with self.design.low_precision():
            return super().hvp(w, V)

    def fold_values(self, w):
        """Each column's weighted loss ``sum_i a_ik loss_ik``, shape ``(K,)``."""
        return self.loss.columns(self._decision(w), self.scaled_weight)

    @property
    def independent_blocks(self):
        """The Hessian is block-diagonal over the ``K`` columns (the folds): what a
        Hessian sketch's size is measured per (see ``LBFGS.sketch_max``)."""
        return self.n_columns

    def hessian_sketch(self, w, max_rows):
        """The Hessian at ``w`` estimated from at most ``max_rows`` evenly spaced rows, as
        :meth:`LogisticDatafit.hessian_sketch` for each column (its weights rescaled to the
        column's sum over all the rows), laid out as the variable: block-diagonal over the
        columns, interleaved. None for a sparse design."""
        rows = _sketch_rows(self, max_rows)
        if rows is None:
            return None
        Xs, weight = rows
        sums = weight.sum(0)
        if not bool((sums > 0).all()):
            return None
        weight = weight / sums * self.scaled_weight.sum(0)
        if self.fit_intercept:
            Xs = torch.cat([Xs, torch.ones_like(Xs[:, :1])], dim=1)
        K, q = self.n_columns, Xs.shape[1]
        curv = self.loss.curvature(Xs @ w.reshape(q, K), weight)
        Xt = Xs.t().contiguous()
        H = Xs.new_zeros(q, K, q, K)
        for k in range(K):
            H[:, k, :, k] = (Xt * curv[:, k]) @ Xs
        H = H.reshape(q * K, q * K)
        return 0.5 * (H + H.t())

    def scores(self, w):
        """``[X, 1] W`` at ``w``, shape ``(n, K)``: column ``k`` is fold ``k``'s decision
        function on every row (the last product when ``w`` was just evaluated)."""
        return self._decision(w)

    def variable_scale(self):
        """Square root of each column's Hessian diagonal at ``w = 0``, from all the rows:
        ``rms(X_j) / 2`` and ``1/2`` for the intercepts, in the variable's layout."""
        K = self.n_columns
        return (0.5 * _column_scale(self))[:, None].expand(-1, K).reshape(-1, 1)

    def _gram_matvec(self, v):  # each column's [X, 1]^T A_k [X, 1] / S
        Z = self.model.matvec(v.reshape(-1, self.n_columns))
        return self.model.rmatvec(self.scaled_weight * Z).reshape(-1)

    def unstack(self, w):
        """Fold ``k``'s ``(d [+ 1], 1)`` variable, for every ``k``: a list of ``K``."""
        W = w.reshape(-1, self.n_columns)
        return [W[:, k:k + 1].clone() for k in range(self.n_columns)]

    def stack(self, columns):
        """The inverse of :meth:`unstack`."""
        return torch.cat(list(columns), dim=1).reshape(-1, 1)


def stacked_shift(fold_weight):
    """``-log S`` for :class:`~skbilevel.engine.inner.Shifted`: the penalty shift under
    which ``theta = -log C`` is ``LogisticRegression(C)`` on every column (see
    :class:`StackedLogisticDatafit`)."""
    return -float(torch.log(fold_weight.sum(0).mean()))
