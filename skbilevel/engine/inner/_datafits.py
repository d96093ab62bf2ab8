"""Smooth data-fitting terms of the proximal inner problems (no hyperparameters).

A datafit is ``f(w)``: value, gradient, Hessian products and a Lipschitz constant of the
gradient (estimated by power iteration, see :func:`_power_estimate`). This module holds the
least-squares datafit and what the datafits share; the logistic ones are in
:mod:`._logistic_datafits`. Hyperparameters enter only through the penalty
(:mod:`._penalties`), so the derivative of a proximal-gradient step with respect to
``theta`` comes from the prox alone. Every operation is a torch operation, so autograd
(reverse mode) flows through it.

Variables are ``(rows, 1)`` columns like the other problems of the engine. The first
``n_features`` rows are the penalised coefficients; a logistic intercept is one more,
unpenalised row (see :class:`~skbilevel.engine.inner.ProximalProblem`).
"""

from __future__ import annotations

from functools import cached_property

import torch

from ..linalg import power_iteration
from ._design import centred_design, weights_or_ones

# Power iterations behind the Lipschitz constant: it sets the proximal step, and
# ``||A v||`` after a few hundred products is within rounding of lambda_max on the small and
# medium problems this serves (the estimate never exceeds lambda_max; see power_iteration).
_POWER_ITER = 200


def _power_estimate(matvec, like, n_iter=_POWER_ITER) -> float:
    """``lambda_max`` of a symmetric PSD operator, estimated *from below*.

    Deterministic power iteration (:func:`power_iteration`): ``||A v||`` for a unit ``v``
    never exceeds ``lambda_max`` and converges to it. The datafits' ``lipschitz`` constants
    are these estimates, not certified upper bounds: a step ``1 / L`` overshoots ``1 /
    lambda_max`` by the estimate's shortfall, which is at rounding level after
    ``_POWER_ITER`` products unless the top of the spectrum is clustered (then the
    backtracking step of the proximal solvers is the safe choice). No safety factor is
    applied: it would change every proximal step the estimators take.
    """
    return power_iteration(matvec, like, n_iter)


class _LastProduct:
    """A design product remembered at the last point ``w`` it was asked at.

    Value, gradient and Hessian products are asked at the same point in turn (an
    L-BFGS evaluation, the products of an adjoint solve): remembering ``[X, 1] w`` makes
    them share one pass over the design instead of one each. Points that carry autograd
    history are never remembered (reverse mode differentiates through the product).
    With ``inexact`` (a callable: whether products currently run in low precision, see
    ``LinearDesign.low_precision``), a product computed in low precision serves only
    low-precision requests; an exact one serves both.
    """

    def __init__(self, compute, inexact=None):
        self.compute, self.point, self.product = compute, None, None
        self.inexact, self.exact = inexact, True

    def __call__(self, w):
        if w.requires_grad:
            return self.compute(w)
        low = self.inexact is not None and self.inexact()
        if self.point is None or self.point.shape != w.shape or \
                self.point.dtype != w.dtype or (not self.exact and not low) or \
                not torch.equal(self.point, w):
            self.product = self.compute(w)
            self.point, self.exact = w.clone(), not low
        return self.product


def _weights(X, sample_weight):
    """``(s, S)``: the sample weights (ones by default) and their sum."""
    sw = weights_or_ones(sample_weight, X)
    return sw, sw.sum()


def _column_scale(datafit):
    """Weighted RMS of each column of ``X``, then 1 for the intercept (all-zero columns
    count as 1), computed once: the units of the features, which a quasi-Newton solver
    and its stopping rule should not depend on."""
    if vars(datafit).get("_column_rms") is None:  # the cache, filled on first use
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
    return _power_estimate(lambda v: matvec(v / d) / d, datafit.init_params()[:, 0])


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
        return _power_estimate(lambda v: self.hvp(None, v), self.xty[:, 0])

    def lipschitz(self) -> float:
        """Largest eigenvalue of the (constant) Hessian, estimated from below by
        deterministic power iteration (see :func:`_power_estimate`)."""
        return self._lipschitz

    def intercept(self, w):
        """Intercept that goes with ``w``: ``y_mean - x_mean^T w`` (0 without intercept)."""
        return self.y_mean if self.x_mean is None else self.y_mean - self.x_mean @ w
