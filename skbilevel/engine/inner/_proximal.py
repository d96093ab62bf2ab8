"""Composite inner problems ``min_w f(w) + g(w, theta)``: a smooth datafit plus a penalty.

The proximal solvers (:mod:`skbilevel.engine.solvers._proximal`) and the hypergradient
methods built on them (forward / reverse mode, implicit differentiation on the support) see
only the methods below: the smooth part (value, gradient, Hessian products, Lipschitz
constant), the penalty's ``prox`` and its derivatives, and the ``support``. With a smooth
penalty (L2) the whole objective is differentiable, and ``grad`` / ``hvp`` / ``cross_vjp``
are its derivatives, so smooth solvers (L-BFGS, HDM) and plain implicit differentiation
apply as to any :class:`InnerProblem`.
"""

from __future__ import annotations

import torch

from .._capabilities import provides
from ._base import InnerProblem
from ._datafits import QuadraticDatafit, unit_scale
from ._logistic_datafits import LogisticDatafit, MultinomialDatafit
from ._penalties import penalty_cross_vjp


class ProximalProblem(InnerProblem):
    """``w*(theta) = argmin_w f(w) + g(w_pen, theta)``: datafit ``f``, penalty ``g``.

    ``w_pen`` are the first ``n_features`` rows of the variable; the rows after them (a
    logistic intercept) are unpenalised, so the prox leaves them unchanged and they always
    belong to the support. The quadratic datafit eliminates its intercept by centring
    instead, so all its rows are penalised.

    Parameters
    ----------
    datafit : QuadraticDatafit, LogisticDatafit or MultinomialDatafit
        The smooth part (independent of ``theta``).
    penalty : L1, WeightedL1, ElasticNet or L2
        The proximable part; its ``theta`` is this problem's.

    Examples
    --------
    ``ProximalProblem.least_squares(X, y, L1())`` is scikit-learn's ``Lasso`` objective at
    ``alpha = exp(theta[0])``; ``ProximalProblem.logistic(X, y, L2())`` is
    ``LogisticRegression(C)`` at ``exp(theta[0]) = 1 / (C S)``.
    """

    def __init__(self, datafit, penalty):
        self.datafit, self.penalty = datafit, penalty
        self.n_hyper = penalty.n_hyper
        self.n_features = datafit.n_features
        # Rows of the variable that the penalty sees (d K for a multinomial datafit).
        self.n_penalised = (datafit.n_penalised if provides(datafit, "n_penalised")
                            else datafit.n_features)
        self.fit_intercept = datafit.fit_intercept
        # Rows of the data (what a pass over them costs; see hessian_sketch).
        self.n_samples = datafit.design.shape[0] if provides(datafit, "design") else None

    @classmethod
    def least_squares(cls, X, y, penalty, sample_weight=None, fit_intercept=True):
        """``QuadraticDatafit(X, y, sample_weight, fit_intercept)`` plus ``penalty``."""
        return cls(QuadraticDatafit(X, y, sample_weight, fit_intercept), penalty)

    @classmethod
    def logistic(cls, X, y, penalty, sample_weight=None, fit_intercept=True):
        """``LogisticDatafit(X, y, sample_weight, fit_intercept)`` plus ``penalty``."""
        return cls(LogisticDatafit(X, y, sample_weight, fit_intercept), penalty)

    @classmethod
    def multinomial(cls, X, y, n_classes, penalty, sample_weight=None, fit_intercept=True):
        """``MultinomialDatafit(X, y, n_classes, ...)`` plus ``penalty``."""
        return cls(MultinomialDatafit(X, y, n_classes, sample_weight, fit_intercept), penalty)

    # -- what the held-out criteria read (training means of a centred datafit) ------------
    @property
    def x_mean(self):
        return self.datafit.x_mean if provides(self.datafit, "x_mean") else None

    @property
    def y_mean(self):
        return self.datafit.y_mean if provides(self.datafit, "y_mean") else None

    # -- smooth part -------------------------------------------------------------------
    def init_params(self):
        return self.datafit.init_params()

    def preconditioner(self):
        """``(D, L)``: the diagonal scale ``x = D w`` of the logistic datafits
        (``variable_scale / median``) and the Lipschitz constant of ``grad f`` in ``x``,
        for proximal gradient in that metric; None for the other datafits."""
        unit = self.unit_scale()
        return None if unit is None else (unit, self.datafit.preconditioned_lipschitz)

    def unit_scale(self):
        """``variable_scale / median(variable_scale)`` (None without one): the scaled
        variable's units, about 1 on standardised features; the penalty-free part of the
        scale by which L-BFGS divides the gradient, hence the units of its ``tol``."""
        if not provides(self.datafit, "variable_scale"):
            return None
        return unit_scale(self.datafit)

    def variable_scale(self):
        """Square root of the datafit Hessian's diagonal at ``w = 0``, shaped like ``w``
        (the logistic datafits; None for the others)."""
        return self.datafit.variable_scale() if provides(self.datafit, "variable_scale") \
            else None

    def smooth_value(self, w, theta=None):
        return self.datafit.value(w)

    def smooth_grad(self, w, theta=None):
        return self.datafit.grad(w)

    def smooth_hvp(self, w, theta, V):
        """``grad^2 f(w) V`` for ``V`` of shape ``(rows, m)`` (or ``(rows,)``)."""
        return self.datafit.hvp(w, V)

    def lipschitz(self, theta=None) -> float:
        """Lipschitz constant of ``grad f`` (the penalty is handled by the prox).

        The datafit's ``lipschitz``: a power-iteration estimate, which approaches the
        constant from below (see ``_datafits._power_estimate``), not a certified bound.
        """
        return self.datafit.lipschitz()

    # -- penalty -------------------------------------------------------------------------
    def _split(self, w):
        d = self.n_penalised
        return w[:d], w[d:]

    def penalty_value(self, w, theta):
        return self.penalty.value(self._split(w)[0], theta)

    def prox(self, z, step, theta):
        """``prox_{step g}(z)``; the unpenalised rows pass through. ``step`` may be a
        tensor shaped like ``z`` (one step per entry: a diagonal metric)."""
        z_pen, z_free = self._split(z)
        if torch.is_tensor(step) and step.dim():
            step = self._split(step)[0]
        out = self.penalty.prox(z_pen, step, theta)
        return out if z_free.shape[0] == 0 else torch.cat([out, z_free])

    def prox_jacobian(self, z, step, theta):
        """``(d prox / d z, d prox / d theta)``: a tensor shaped like ``z`` (the diagonal)
        and a ``(z.numel(), n_hyper)`` matrix, at the same ``z``."""
        z_pen, z_free = self._split(z)
        diag, d_theta = self.penalty.prox_jacobian(z_pen, step, theta)
        if z_free.shape[0] == 0:
            return diag, d_theta
        return (torch.cat([diag, torch.ones_like(z_free)]),
                torch.cat([d_theta, d_theta.new_zeros(z_free.numel(), d_theta.shape[1])]))

    def penalty_hessian_diag(self, w, theta):
        """Diagonal Hessian of the penalty on its support (0 on unpenalised rows)."""
        w_pen, w_free = self._split(w)
        diag = self.penalty.hessian_diag(w_pen, theta)
        return diag if w_free.shape[0] == 0 else torch.cat([diag, torch.zeros_like(w_free)])

    def penalty_cross_jacobian(self, w, theta):
        """``d grad_w g(w, theta) / d theta`` on the support, ``(w.numel(), n_hyper)``."""
        w_pen, w_free = self._split(w)
        cross = self.penalty.cross_jacobian(w_pen, theta)
        return cross if w_free.shape[0] == 0 else \
            torch.cat([cross, cross.new_zeros(w_free.numel(), cross.shape[1])])

    def penalty_cross_vjp(self, w, theta, v):
        """``penalty_cross_jacobian(w, theta)^T v``, shape ``(n_hyper,)``, without forming
        the ``(rows, n_hyper)`` matrix for per-feature penalties."""
        w_pen, _ = self._split(w)
        return penalty_cross_vjp(self.penalty, w_pen, theta, self._split(v)[0])

    def support_hessian(self, w, support):
        """Dense Hessian of the smooth part at ``w`` on ``support`` (a mask shaped like
        ``w``), or None when the datafit cannot form it directly (sparse design)."""
        if not provides(self.datafit, "hessian_block"):
            return None
        return self.datafit.hessian_block(w, support.reshape(-1))

    @property
    def independent_blocks(self):
        """Independent diagonal blocks of the Hessian: the folds of a
        :class:`StackedLogisticDatafit`, 1 for the other datafits."""
        return getattr(self.datafit, "independent_blocks", 1)

    def hessian_sketch(self, w, max_rows):
        """The smooth part's Hessian at ``w`` estimated from at most ``max_rows`` rows (a
        preconditioner; see ``LogisticDatafit.hessian_sketch``), or None when the datafit
        cannot form it (sparse design, multinomial or quadratic datafit)."""
        if not provides(self.datafit, "hessian_sketch"):
            return None
        return self.datafit.hessian_sketch(w, max_rows)

    def support(self, w):
        """Boolean mask (shape of ``w``) of the coordinates that move with ``theta``."""
        w_pen, w_free = self._split(w)
        mask = self.penalty.support(w_pen)
        return mask if w_free.shape[0] == 0 else \
            torch.cat([mask, torch.ones_like(w_free, dtype=torch.bool)])

    # -- whole problem -----------------------------------------------------------------
    @property
    def smooth(self) -> bool:
        """Whether the objective is differentiable: its penalty is (``L2``)."""
        return self.penalty.smooth

    def objective(self, w, theta):
        return self.smooth_value(w) + self.penalty_value(w, theta)

    def _require_smooth(self, what):
        if not self.penalty.smooth:
            raise TypeError(
                f"ProximalProblem.{what} is a derivative of the whole objective, which "
                f"{type(self.penalty).__name__} makes non-differentiable: use the datafit's "
                "smooth_grad / smooth_hvp with the prox, or a smooth penalty such as L2")

    def _pad(self, pen, like):
        """A tensor on the penalised rows, extended by zeros over the unpenalised ones."""
        free = like.shape[0] - self.n_penalised
        return pen if free == 0 else torch.cat([pen, pen.new_zeros(free, *pen.shape[1:])])

    def value_and_grad(self, w, theta):
        """Objective and gradient together (smooth penalty): what L-BFGS and HDM ask at
        every iteration, with one check and the penalised rows split once."""
        self._require_smooth("value_and_grad")
        w_pen = w[:self.n_penalised]
        value = self.datafit.value(w) + self.penalty.value(w_pen, theta)
        return value, self.datafit.grad(w) + self._pad(self.penalty.grad(w_pen, theta), w)

    def grad(self, w, theta):
        """Gradient of the objective ``grad f(w) + grad g(w, theta)``; needs a smooth
        penalty (L2). Proximal solvers use :meth:`smooth_grad` and the prox instead."""
        self._require_smooth("grad")
        w_pen, _ = self._split(w)
        return self.smooth_grad(w) + self._pad(self.penalty.grad(w_pen, theta), w)

    def hvp(self, w, theta, v):
        """Hessian of the objective times ``v`` (``(rows,)`` or ``(rows, m)``); needs a
        smooth penalty, whose Hessian is diagonal."""
        self._require_smooth("hvp")
        diag = self.penalty_hessian_diag(w, theta)
        return self.smooth_hvp(w, theta, v) + (diag.reshape(-1) if v.dim() == 1 else diag) * v

    def cross_vjp(self, w, theta, v):
        """``(d grad_w / d theta)^T v``: the datafit does not depend on ``theta``, so this
        is the penalty's; needs a smooth penalty."""
        self._require_smooth("cross_vjp")
        return self.penalty_cross_vjp(w, theta, v)

    def optimality_residual(self, w, theta) -> float:
        """``||w - prox_{s g}(w - s grad f(w))|| / s`` at ``s = 1 / L``.

        The gradient mapping: zero exactly at a solution, and in the units of a gradient
        (it equals ``||grad f(w)||`` for a smooth problem), so tolerances are comparable
        across penalties and step sizes.
        """
        s = 1.0 / self.lipschitz(theta)
        w_plus = self.prox(w - s * self.smooth_grad(w), s, theta)
        return float(torch.linalg.vector_norm((w - w_plus).detach())) / s

    def coef(self, w):
        """The penalised coefficients (the variable without an intercept row)."""
        return self._split(w)[0]

    def intercept(self, w):
        """The intercept that goes with ``w`` (0 without one), shape ``(k,)``."""
        return self.datafit.intercept(w)
