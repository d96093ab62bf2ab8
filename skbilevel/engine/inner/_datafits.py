"""Smooth data-fitting terms of the proximal inner problems (no hyperparameters).

A datafit is ``f(w)``: value, gradient, Hessian products and a Lipschitz constant of the
gradient. Hyperparameters enter only through the penalty (:mod:`._penalties`), so the
derivative of a proximal-gradient step with respect to ``theta`` comes from the prox alone.
Every operation is a torch operation, so autograd (reverse mode) flows through it.

Variables are ``(rows, 1)`` columns like the other problems of the engine. The first
``n_features`` rows are the penalised coefficients; a logistic intercept is one more,
unpenalised row (see :class:`~skbilevel.engine.inner.ProximalProblem`).
"""

from __future__ import annotations

from functools import cached_property

import torch

from ..solvers._smoothness import power_iteration
from ._design import LinearDesign, centred_design, weights_or_ones

# Power iterations behind the Lipschitz constant: it sets the proximal step, and
# ``||A v||`` after a few hundred products is within rounding of lambda_max on the small and
# medium problems this serves (the estimate never exceeds lambda_max; see power_iteration).
_POWER_ITER = 200


class _LastProduct:
    """A design product remembered at the last point ``w`` it was asked at.

    Value, gradient and Hessian products are asked at the same point in turn (an
    L-BFGS evaluation, the products of an adjoint solve): remembering ``[X, 1] w`` makes
    them share one pass over the design instead of one each. Points that carry autograd
    history are never remembered (reverse mode differentiates through the product).
    """

    def __init__(self, compute):
        self.compute, self.point, self.product = compute, None, None

    def __call__(self, w):
        if w.requires_grad:
            return self.compute(w)
        if self.point is None or self.point.shape != w.shape or \
                self.point.dtype != w.dtype or not torch.equal(self.point, w):
            self.product = self.compute(w)
            self.point = w.clone()
        return self.product


def _weights(X, sample_weight):
    """``(s, S)``: the sample weights (ones by default) and their sum."""
    sw = weights_or_ones(sample_weight, X)
    return sw, sw.sum()


def _column_scale(datafit):
    """Weighted RMS of each column of ``X``, then 1 for the intercept (all-zero columns
    count as 1), computed once: the units of the features, which a quasi-Newton solver
    and its stopping rule should not depend on."""
    if getattr(datafit, "_column_rms", None) is None:
        rms = datafit.design.column_rms(datafit.sample_weight)
        rms = torch.where(rms > 0, rms, torch.ones_like(rms))
        if datafit.fit_intercept:
            rms = torch.cat([rms, rms.new_ones(1)])
        datafit._column_rms = rms
    return datafit._column_rms


def unit_scale(datafit):
    """``variable_scale / median(variable_scale)``: a diagonal preconditioner that is
    about 1 on standardised features (see :class:`~skbilevel.engine.solvers.LBFGS`)."""
    scale = datafit.variable_scale()
    return scale / scale.median()


def _scaled_power_iteration(datafit, matvec):
    """``lambda_max(D^-1 A D^-1)`` for ``D = unit_scale(datafit)`` and ``A = matvec``."""
    d = unit_scale(datafit)[:, 0]
    return power_iteration(lambda v: matvec(v / d) / d, datafit.init_params()[:, 0],
                           _POWER_ITER)


class QuadraticDatafit:
    """``f(w) = 1/(2 S) sum_i s_i (y_i - x_i^T w - b)^2``, ``S = sum_i s_i``.

    scikit-learn's ``Lasso`` / ``ElasticNet`` datafit (``S = n`` without weights; with
    ``sample_weight`` scikit-learn rescales the weights to sum to ``n``, which is the same
    objective). The unpenalised intercept ``b`` is eliminated by centring ``X`` and ``y`` with
    the weighted means, implicitly for sparse ``X`` (:class:`LinearDesign` offsets, as
    :class:`RidgeProblem` does); :meth:`intercept` recovers it.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n,)`` or ``(n, k)`` targets (stored 2-D; the variable is ``(d, k)``).
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights ``s_i``.
    fit_intercept : bool
        Whether to fit an unpenalised intercept.
    """

    n_unpenalised = 0

    def __init__(self, X, y, sample_weight=None, fit_intercept=True):
        y = y[:, None] if y.dim() == 1 else y
        self.sample_weight, self.weight_sum = _weights(X, sample_weight)
        self.fit_intercept, self.n_features = fit_intercept, X.shape[1]
        self.design, self.y, self.x_mean, self.y_mean = centred_design(
            X, y, self.sample_weight, fit_intercept)
        # X_c^T S y_c / S: the constant part of the gradient; its max |.| is alpha_max.
        self.xty = self.design.rmatvec(self.sample_weight[:, None] * self.y) / self.weight_sum
        self._product = _LastProduct(self.design.matvec)

    def init_params(self):
        return self.xty.new_zeros(self.xty.shape)

    def value(self, w):
        r = self.y - self._product(w)
        return 0.5 * (self.sample_weight[:, None] * r ** 2).sum() / self.weight_sum

    def grad(self, w):
        return self.design.rmatvec(self.sample_weight[:, None] * self._product(w)) / \
            self.weight_sum - self.xty

    def hvp(self, w, V):
        """``X_c^T S X_c V / S``; the Hessian is constant, so ``w`` is not used."""
        sw = self.sample_weight if V.dim() == 1 else self.sample_weight[:, None]
        return self.design.rmatvec(sw * self.design.matvec(V)) / self.weight_sum

    def hessian_block(self, w, mask):
        """``X_c[:, S]^T S X_c[:, S] / S`` for the rows of the variable in ``mask``; None
        for a sparse design or several targets (then products are cheaper than the block)."""
        if self.design.is_sparse or self.y.shape[1] != 1:
            return None
        Xs = self.design.X[:, mask]
        if self.x_mean is not None:
            Xs = Xs - self.x_mean[mask]
        return (Xs * self.sample_weight[:, None]).t() @ Xs / self.weight_sum

    @cached_property
    def _lipschitz(self):
        return power_iteration(lambda v: self.hvp(None, v), self.xty[:, 0], _POWER_ITER)

    def lipschitz(self) -> float:
        """Largest eigenvalue of the (constant) Hessian, by deterministic power iteration."""
        return self._lipschitz

    def intercept(self, w):
        """Intercept that goes with ``w``: ``y_mean - x_mean^T w`` (0 without intercept)."""
        return self.y_mean if self.x_mean is None else self.y_mean - self.x_mean @ w


class LogisticDatafit:
    """``f(w) = (1/S) sum_i s_i log(1 + exp(-m_i))``, ``m_i = (2 y_i - 1)(x_i^T coef + b)``.

    The mean weighted log-loss of binary ``LogisticRegression`` (labels in {0, 1}). With
    ``fit_intercept`` the variable is ``(d + 1, 1)`` and its last row is the unpenalised
    intercept ``b`` (not centred away: the loss is not quadratic). The Lipschitz constant
    is the true bound ``||S^{1/2} [X, 1]||^2 / (4 S)`` (the sigmoid's curvature is at most
    1/4), which proximal gradient needs for its step ``1 / L``.

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
        self.design = LinearDesign(X)
        self.sample_weight, self.weight_sum = _weights(X, sample_weight)
        self.fit_intercept, self.n_features = fit_intercept, X.shape[1]
        self.n_unpenalised = int(fit_intercept)
        self.sign = 2.0 * y.reshape(-1).to(X.dtype) - 1.0  # labels in {-1, +1}
        self.scaled_weight = self.sample_weight / self.weight_sum
        self._decision = _LastProduct(self._margin)

    def init_params(self):
        return torch.zeros(self.n_features + self.n_unpenalised, 1,
                           dtype=self.sign.dtype, device=self.sign.device)

    def variable_scale(self):
        """Square root of the Hessian's diagonal at ``w = 0`` (``p = 1/2``):
        ``rms(X_j) / 2`` and ``1/2`` for the intercept (see :func:`_column_scale`)."""
        return 0.5 * _column_scale(self).reshape(-1, 1)

    def _forward(self, V):  # [X, 1] V, V of shape (d [+ 1], m)
        if not self.fit_intercept:
            return self.design.matvec(V)
        return self.design.matvec(V[:-1]) + V[-1:]

    def _margin(self, w):  # [X, 1] w as a vector
        return self._forward(w)[:, 0]

    def _backward(self, U):  # [X, 1]^T U, U of shape (n, m)
        out = self.design.rmatvec(U)
        return torch.cat([out, U.sum(0, keepdim=True)]) if self.fit_intercept else out

    def value(self, w):
        m = self.sign * self._decision(w)
        return (self.scaled_weight * torch.nn.functional.softplus(-m)).sum()

    def grad(self, w):
        m = self.sign * self._decision(w)
        dz = -self.scaled_weight * self.sign * torch.sigmoid(-m)
        return self._backward(dz[:, None])

    def hvp(self, w, V):
        """``[X, 1]^T diag(s_i p_i (1 - p_i) / S) [X, 1] V`` at ``w``."""
        p = torch.sigmoid(self._decision(w))
        curv = self.scaled_weight * p * (1.0 - p)
        if V.dim() == 1:
            return self._backward((curv * self._forward(V[:, None])[:, 0])[:, None])[:, 0]
        return self._backward(curv[:, None] * self._forward(V))

    @cached_property
    def _lipschitz(self):
        return 0.25 * power_iteration(self._gram_matvec, self.init_params()[:, 0], _POWER_ITER)

    def _gram_matvec(self, v):  # [X, 1]^T S [X, 1] v / S
        return self._backward(self.scaled_weight[:, None] * self._forward(v[:, None]))[:, 0]

    def lipschitz(self) -> float:
        """``lambda_max([X, 1]^T S [X, 1] / S) / 4``: a global bound on the Hessian."""
        return self._lipschitz

    @cached_property
    def preconditioned_lipschitz(self) -> float:
        """The same bound for the variable ``x = unit_scale * w`` (see :func:`unit_scale`):
        ``lambda_max(D^-1 [X, 1]^T S [X, 1] D^-1 / S) / 4``."""
        return 0.25 * _scaled_power_iteration(self, self._gram_matvec)

    def hessian_block(self, w, mask):
        """The Hessian at ``w`` on the rows of the variable in ``mask`` (``[X, 1]`` columns),
        formed directly; None for a sparse design."""
        if self.design.is_sparse:
            return None
        Z = self.design.X
        if self.fit_intercept:
            Z = torch.cat([Z, torch.ones_like(Z[:, :1])], dim=1)
        Z = Z[:, mask]
        p = torch.sigmoid(self._decision(w))
        curv = self.scaled_weight * p * (1.0 - p)
        return (Z * curv[:, None]).t() @ Z

    def intercept(self, w):
        """The intercept row (0 without intercept), shape ``(1,)``."""
        return w[-1] if self.fit_intercept else w.new_zeros(1)

    def decision_function(self, X, w):
        """``X coef + b`` for a new design ``X``."""
        coef = w[:self.n_features]
        return LinearDesign(X).matvec(coef)[:, 0] + self.intercept(w)[0]


class MultinomialDatafit:
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
        self.design = LinearDesign(X)
        self.sample_weight, self.weight_sum = _weights(X, sample_weight)
        self.fit_intercept, self.n_features = fit_intercept, X.shape[1]
        self.n_columns = int(n_classes)
        self.n_penalised = self.n_features * self.n_columns
        self.n_unpenalised = self.n_columns if fit_intercept else 0
        self.onehot = torch.nn.functional.one_hot(y.reshape(-1).long(), self.n_columns) \
            .to(X.dtype)
        self.scaled_weight = self.sample_weight / self.weight_sum
        self._decision = _LastProduct(self._point_scores)

    def init_params(self):
        rows = self.n_penalised + self.n_unpenalised
        return self.onehot.new_zeros(rows, 1)

    def variable_scale(self):
        """Square root of the Hessian's diagonal at ``w = 0`` (``p_k = 1/K``):
        ``rms(X_j) sqrt(K - 1) / K`` for every class (the variable's layout:
        ``w.reshape(-1, K)``; see :func:`_column_scale`)."""
        K = self.n_columns
        scale = _column_scale(self) * (K - 1) ** 0.5 / K
        return scale[:, None].expand(-1, K).reshape(-1, 1)

    def _scores(self, V):
        """``[X, 1] V`` for ``V`` of shape ``((d [+ 1]) K, m)``: ``(n, K, m)``."""
        K, m = self.n_columns, V.shape[1]
        A = V.reshape(-1, K * m)
        Z = self.design.matvec(A[:self.n_features])
        if self.fit_intercept:
            Z = Z + A[self.n_features:]
        return Z.reshape(-1, K, m)

    def _point_scores(self, w):  # (n, K) scores of one variable
        return self._scores(w)[:, :, 0]

    def _back(self, U):
        """``[X, 1]^T U`` for ``U`` of shape ``(n, K, m)``, raveled like the variable."""
        n, K, m = U.shape
        U2 = U.reshape(n, K * m)
        out = self.design.rmatvec(U2)
        if self.fit_intercept:
            out = torch.cat([out, U2.sum(0, keepdim=True)])
        return out.reshape(-1, m)

    def value(self, w):
        Z = self._decision(w)
        loss = torch.logsumexp(Z, dim=1) - (Z * self.onehot).sum(1)
        return (self.scaled_weight * loss).sum()

    def grad(self, w):
        Z = self._decision(w)
        dZ = (torch.softmax(Z, dim=1) - self.onehot) * self.scaled_weight[:, None]
        return self._back(dZ[:, :, None])

    def hvp(self, w, V):
        """``sum_i s_i / S [x_i; 1] [x_i; 1]^T (x) (diag(p_i) - p_i p_i^T)`` times ``V``."""
        one = V.dim() == 1
        V = V[:, None] if one else V
        P = torch.softmax(self._decision(w), dim=1)[:, :, None]
        ZV = self._scores(V)
        HZ = P * (ZV - (P * ZV).sum(1, keepdim=True)) * self.scaled_weight[:, None, None]
        out = self._back(HZ)
        return out[:, 0] if one else out

    @cached_property
    def _lipschitz(self):
        return 0.5 * power_iteration(self._gram_matvec, self.init_params()[:, 0], _POWER_ITER)

    def _gram_matvec(self, v):  # ([X, 1]^T S [X, 1] / S) applied to every class's column
        return self._back(self._scores(v[:, None]) * self.scaled_weight[:, None, None])[:, 0]

    def lipschitz(self) -> float:
        """``lambda_max([X, 1]^T S [X, 1] / S) / 2``: a global bound on the Hessian."""
        return self._lipschitz

    @cached_property
    def preconditioned_lipschitz(self) -> float:
        """The same bound for the variable ``x = unit_scale * w`` (see :func:`unit_scale`)."""
        return 0.5 * _scaled_power_iteration(self, self._gram_matvec)

    def intercept(self, w):
        """The ``K`` intercepts (zeros without intercept)."""
        if not self.fit_intercept:
            return w.new_zeros(self.n_columns)
        return w[self.n_penalised:, 0]

    def coef(self, w):
        """The ``(d, K)`` coefficients."""
        return w[:self.n_penalised].reshape(self.n_features, self.n_columns)
