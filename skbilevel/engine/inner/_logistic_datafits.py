"""The logistic datafits: the mean weighted log-loss of a linear classifier.

Both are the same computation over the losses of :mod:`._losses`: scores ``Z = [X, 1] W``
for ``W = w.reshape(-1, K)`` (``K = 1`` column for the binary model, one per class for the
multinomial one), the loss and its derivatives in score space, and ``[X, 1]^T`` back to the
variable. They differ in the loss, the layout documented on each class, and the diagonal
scale of the variable.
"""

from __future__ import annotations

from functools import cached_property

import torch

from ._datafits import (_column_scale, _LastProduct, _power_estimate, _scaled_power_iteration,
                        _weights)
from ._design import LinearDesign
from ._losses import AffineDesign, BinaryLogLoss, MultinomialLogLoss

# Products behind gram_norm: HDM's learning rate 10 / L was tuned with this many.
_GRAM_NORM_ITER = 30


class _LogLossDatafit:
    """``f(w) = (1/S) sum_i s_i loss(y_i, z_i)``, ``z_i = [x_i; 1]^T W``.

    ``W = w.reshape(-1, K)`` is the stacked ``[coef; b]`` of ``K`` columns of scores.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    loss : BinaryLogLoss or MultinomialLogLoss
        The per-sample loss; its ``n_columns`` is ``K``.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights.
    fit_intercept : bool
        Whether the last ``K`` rows of the variable are unpenalised intercepts.
    """

    def __init__(self, X, loss, sample_weight, fit_intercept):
        self.design = LinearDesign(X)
        self.model = AffineDesign(self.design, fit_intercept)
        self.loss, self.n_columns = loss, loss.n_columns
        self.sample_weight, self.weight_sum = _weights(X, sample_weight)
        self.scaled_weight = self.sample_weight / self.weight_sum
        self.fit_intercept, self.n_features = fit_intercept, X.shape[1]
        self.n_penalised = self.n_features * self.n_columns
        self.n_unpenalised = self.n_columns if fit_intercept else 0
        self._decision = _LastProduct(self._point_scores, self._low_precision)

    def _low_precision(self):  # whether the design's products run in float32 now
        return self.design.in_low_precision

    def init_params(self):
        rows = self.n_penalised + self.n_unpenalised
        return torch.zeros(rows, 1, dtype=self.design.dtype, device=self.design.device)

    # -- scores and back ---------------------------------------------------------------
    def _scores(self, V):
        """``[X, 1] V`` for ``V`` of shape ``((d [+ 1]) K, m)``: ``(n, K, m)``."""
        K, m = self.n_columns, V.shape[1]
        return self.model.matvec(V.reshape(-1, K * m)).reshape(-1, K, m)

    def _point_scores(self, w):  # (n, K) scores of one variable
        return self.model.matvec(w.reshape(-1, self.n_columns))

    def _back(self, U):
        """``[X, 1]^T U`` for ``U`` of shape ``(n, K, m)``, raveled like the variable."""
        n, K, m = U.shape
        return self.model.rmatvec(U.reshape(n, K * m)).reshape(-1, m)

    # -- value and derivatives -----------------------------------------------------------
    def value(self, w):
        return self.loss.value(self._decision(w), self.scaled_weight)

    def grad(self, w):
        # One variable: (n, K) scores back to the ((d [+ 1]) K, 1) column, no 3-D detour
        # (value and gradient run once per L-BFGS evaluation, on small problems too).
        dZ = self.loss.dscores(self._decision(w), self.scaled_weight)
        return self.model.rmatvec(dZ).reshape(-1, 1)

    def hvp(self, w, V):
        """``[X, 1]^T H_Z [X, 1] V`` at ``w`` (``H_Z`` the loss's Hessian in score space)
        for ``V`` of shape ``(rows,)`` or ``(rows, m)``."""
        one = V.dim() == 1
        V = V[:, None] if one else V
        out = self._back(self.loss.hvp_scores(self._decision(w), self._scores(V),
                                              self.scaled_weight))
        return out[:, 0] if one else out

    # -- smoothness ----------------------------------------------------------------------
    def _gram_matvec(self, v):  # ([X, 1]^T S [X, 1] / S) applied to every class's column
        K = self.n_columns
        return self.model.weighted_gram(self.scaled_weight, v.reshape(-1, K)).reshape(-1)

    @cached_property
    def _lipschitz(self):
        like = self.init_params()[:, 0]
        return self.loss.curvature_bound * _power_estimate(self._gram_matvec, like)

    def lipschitz(self) -> float:
        """``c lambda_max([X, 1]^T S [X, 1] / S)``, ``c`` the loss's curvature bound (1/4
        binary, 1/2 multinomial): a bound on the Hessian, up to the power-iteration estimate
        of ``lambda_max``, which is from below (see :func:`._datafits._power_estimate`)."""
        return self._lipschitz

    @cached_property
    def preconditioned_lipschitz(self) -> float:
        """The same for the variable ``x = unit_scale * w`` (see :func:`unit_scale`):
        ``c lambda_max(D^-1 [X, 1]^T S [X, 1] D^-1 / S)``."""
        return self.loss.curvature_bound * _scaled_power_iteration(self, self._gram_matvec)

    def gram_norm(self, n_iter=_GRAM_NORM_ITER) -> float:
        """``||S^{1/2} [X, 1]||_2^2 / S`` from ``n_iter`` power iterations (from below).

        The data part of the smoothness without the loss's curvature bound: the estimate
        HDM's learning rate ``10 / L`` was tuned with (``L = gram_norm() + strength``).
        """
        like = torch.zeros(self.n_features + int(self.fit_intercept), dtype=self.design.dtype,
                           device=self.design.device)
        return _power_estimate(lambda v: self.model.weighted_gram(self.scaled_weight, v),
                               like, n_iter)

    # -- the parts of the variable -----------------------------------------------------
    def coef(self, w):
        """The ``(d, K)`` coefficients."""
        return w[:self.n_penalised].reshape(self.n_features, self.n_columns)

    def intercept(self, w):
        """The ``K`` intercepts (zeros without intercept)."""
        if not self.fit_intercept:
            return w.new_zeros(self.n_columns)
        return w[self.n_penalised:, 0]


class LogisticDatafit(_LogLossDatafit):
    """``f(w) = (1/S) sum_i s_i log(1 + exp(-m_i))``, ``m_i = (2 y_i - 1)(x_i^T coef + b)``.

    The mean weighted log-loss of binary ``LogisticRegression`` (labels in {0, 1}). With
    ``fit_intercept`` the variable is ``(d + 1, 1)`` and its last row is the unpenalised
    intercept ``b`` (not centred away: the loss is not quadratic). The Lipschitz constant
    is ``||S^{1/2} [X, 1]||^2 / (4 S)`` (the sigmoid's curvature is at most 1/4), which
    proximal gradient needs for its step ``1 / L``.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n,)`` labels in {0, 1}.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights.
    fit_intercept : bool
        Whether the last row of the variable is an unpenalised intercept.
    """

    def __init__(self, X, y, sample_weight=None, fit_intercept=True):
        super().__init__(X, BinaryLogLoss(y, X.dtype), sample_weight, fit_intercept)

    def variable_scale(self):
        """Square root of the Hessian's diagonal at ``w = 0`` (``p = 1/2``):
        ``rms(X_j) / 2`` and ``1/2`` for the intercept (see :func:`_column_scale`)."""
        return 0.5 * _column_scale(self).reshape(-1, 1)

    def hessian_block(self, w, mask):
        """The Hessian at ``w`` on the rows of the variable in ``mask`` (``[X, 1]`` columns),
        formed directly; None for a sparse design."""
        if self.design.is_sparse:
            return None
        curv = self.loss.curvature(self._decision(w), self.scaled_weight)
        X = self.design.X
        # Most of the columns: the whole Hessian, then its block. A copy of the masked
        # columns of a row-major X costs as much as the product (1280 x 120: 0.9 ms each).
        kept = int(mask.sum())
        if 2 * kept >= mask.numel():  # no copy of X with a column of ones
            XD = X * curv[:, None]
            H = XD.t() @ X
            if self.fit_intercept:
                side = XD.sum(0)
                H = torch.cat([torch.cat([H, side[:, None]], 1),
                               torch.cat([side, curv.sum().reshape(1)])[None, :]])
            return H if kept == mask.numel() else H[mask][:, mask]
        Z = X
        if self.fit_intercept:
            Z = torch.cat([Z, torch.ones_like(Z[:, :1])], dim=1)
        Z = Z[:, mask]
        return (Z * curv[:, None]).t() @ Z

    def hessian_sketch(self, w, max_rows):
        """The Hessian at ``w`` estimated from at most ``max_rows`` evenly spaced rows
        (see :func:`_sketch_rows`; all of them when ``n <= max_rows``), their weights
        rescaled to the whole data's sum; None for a sparse design.

        A preconditioner, not the Hessian: from ``m`` rows its relative error is about
        ``sqrt(d / m)``, and it costs ``m d^2`` where a pass over the data costs ``n d``
        (:class:`~skbilevel.engine.solvers.LBFGS` iterates in its Cholesky factor's
        variable). Evenly spaced rather than leading rows: data sorted by class or by
        time keeps its mix.
        """
        rows = _sketch_rows(self, max_rows)
        if rows is None:
            return None
        Xs, weight = rows
        coef = w[:self.n_features, 0]
        scores = Xs @ coef + (w[-1, 0] if self.fit_intercept else 0.0)
        curv = self.loss.curvature(scores[:, None], weight)
        XD = Xs * curv[:, None]
        H = XD.t() @ Xs
        if not self.fit_intercept:
            return 0.5 * (H + H.t())
        side = XD.sum(0)
        H = torch.cat([torch.cat([H, side[:, None]], 1),
                       torch.cat([side, curv.sum().reshape(1)])[None, :]])
        return 0.5 * (H + H.t())


def _sketch_rows(datafit, max_rows):
    """The rows of a Hessian sketch: ``(X_s, s)``, ``m = min(n, max_rows)`` evenly spaced
    rows of the dense design (rows ``floor(i n / m)``; all of them when ``n <= max_rows``)
    and their weights rescaled to sum to one (the mean loss's Hessian), or None for a
    sparse design or rows of zero weight. Exactly ``m`` rows, not every
    ``ceil(n / max_rows)``-th: 573 of 600 rows asked for are not 300."""
    if datafit.design.is_sparse:
        return None
    X = datafit.design.X
    n = X.shape[0]
    m = min(n, max(int(max_rows), 1))
    rows = slice(None) if m == n else (torch.arange(m, device=X.device) * n) // m
    weight = datafit.scaled_weight[rows]
    total = weight.sum()
    if not total > 0:
        return None
    return X[rows], weight / total


class MultinomialDatafit(_LogLossDatafit):
    """``f(W) = (1/S) sum_i s_i [logsumexp(z_i) - z_{i, y_i}]``, ``z_i = x_i^T W + b``.

    The mean weighted log-loss of multinomial ``LogisticRegression`` (K classes, the
    symmetric parametrisation). The variable is one column of ``(d + 1) K`` rows: the
    ``(d + 1, K)`` array ``[W; b]`` raveled row by row, so its first ``d K`` rows are the
    penalised coefficients (``n_penalised``) and the last ``K`` the intercepts. One column
    keeps it compatible with the derivative iterates of the proximal solvers, and
    ``w.reshape(-1, K)`` recovers the array (which :class:`HeldOutLogLoss` does). The
    softmax's Hessian is at most 1/2, hence the Lipschitz constant.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n,)`` class indices in ``0 .. n_classes - 1``.
    n_classes : int
        Number of classes ``K`` (at least 3; two classes are :class:`LogisticDatafit`).
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights.
    fit_intercept : bool
        Whether the last ``K`` rows are unpenalised intercepts.
    """

    def __init__(self, X, y, n_classes, sample_weight=None, fit_intercept=True):
        super().__init__(X, MultinomialLogLoss(y, n_classes, X.dtype), sample_weight,
                         fit_intercept)

    def variable_scale(self):
        """Square root of the Hessian's diagonal at ``w = 0`` (``p_k = 1/K``):
        ``rms(X_j) sqrt(K - 1) / K`` for every class (the variable's layout:
        ``w.reshape(-1, K)``; see :func:`_column_scale`)."""
        K = self.n_columns
        scale = _column_scale(self) * (K - 1) ** 0.5 / K
        return scale[:, None].expand(-1, K).reshape(-1, 1)

    def hessian_sketch(self, w, max_rows):
        """The Hessian at ``w`` estimated from at most ``max_rows`` evenly spaced rows, as
        :meth:`LogisticDatafit.hessian_sketch` (a preconditioner for
        :class:`~skbilevel.engine.solvers.LBFGS`); None for a sparse design.

        Each row adds ``s_i [x_i; 1] [x_i; 1]^T (x) (diag(p_i) - p_i p_i^T)`` in the
        variable's layout (``w.reshape(-1, K)`` raveled row by row), ``p_i`` its softmax.
        That Hessian is singular along a common shift ``e`` of the ``K`` intercepts (the
        softmax does not see it, and no penalty holds it): with an intercept the sketch
        adds ``c e e^T``, ``c`` the intercepts' mean curvature, so that it has a Cholesky
        factor. Neither the loss nor its gradient ever moves along ``e``, so this changes
        no iterate's objective; it only keeps that direction's scale in line.
        """
        rows = _sketch_rows(self, max_rows)
        if rows is None:
            return None
        Xs, weight = rows
        if self.fit_intercept:
            Xs = torch.cat([Xs, torch.ones_like(Xs[:, :1])], dim=1)
        K, q = self.n_columns, Xs.shape[1]
        P = torch.softmax(Xs @ w.reshape(q, K), dim=1)
        # Block (k, l) is X^T diag(c_kl) X with c_ikl = s_i (delta_kl p_ik - p_ik p_il):
        # K (K + 1) / 2 products of q x q, about 3x faster than forming the n x qK matrix
        # of x_i (x) p_i and adding the diagonal blocks through a strided view.
        C = -(weight[:, None, None] * P[:, :, None] * P[:, None, :])
        C.diagonal(dim1=1, dim2=2).add_(weight[:, None] * P)
        Xt = Xs.t().contiguous()
        H = Xs.new_empty(q, K, q, K)
        for k in range(K):
            for m in range(k, K):
                H[:, k, :, m] = block = (Xt * C[:, k, m]) @ Xs
                if m != k:
                    H[:, m, :, k] = block  # symmetric: c_ikm = c_imk, X^T D X = its transpose
        H = H.reshape(q * K, q * K)
        if self.fit_intercept:
            c = float(H.diagonal()[-K:].mean())
            H[-K:, -K:] += (c if c > 0 else 1.0) / K
        return 0.5 * (H + H.t())
