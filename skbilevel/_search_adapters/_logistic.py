"""``LogisticRegression`` (L2): L-BFGS fold fits and implicit hypergradients of ``-log(C)``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from .._proximal_cv import _ADJOINT_RTOL, _GRID_TOL, _METHODS
from .._tuning import build_part
from ..engine import Fold
from ..engine.hypergrad import make_hypergradient
from ..engine.inner import L2, ProximalProblem, Shifted
from ..engine.outer import HeldOutLogLoss
from ..engine.solvers import make_inner_solver
from ._base import DTYPE as _DTYPE
from ._base import SearchAdapter
from ._base import as_tensor as _t

_INNER_TOL = 1e-8  # fold fits, relative to ||grad f(0)||_inf (as the CV estimator)
_INNER_MAX_ITER = 10000


class LogisticAdapter(SearchAdapter):
    """``LogisticRegression(C)`` with an L2 penalty: ``theta = -log(C)``.

    As in ``BilevelLogisticRegressionCV``: ``C`` multiplies the *sum* of the training
    losses, i.e. the penalty strength of the mean loss is ``1 / (C S)`` with ``S`` the
    training weight, which ``Shifted(L2(), -log S)`` applies; L-BFGS fold fits and implicit
    differentiation. The objective is always the CV log-loss.
    """

    param, estimator_class = "C", LogisticRegression
    objectives = {"neg_log_loss": "log_loss"}
    default_objective = "log_loss"
    grid_patience = 1  # the L2 path's CV log-loss has one minimum; weak penalties are dear

    def check(self, estimator):
        params = estimator.get_params()
        l1_ratio = params.get("l1_ratio")
        penalty = params.get("penalty", "l2")
        if penalty not in ("l2", "deprecated") or l1_ratio not in (None, 0, 0.0):
            raise ValueError("HypergradientSearchCV tunes LogisticRegression with an L2 "
                             f"penalty only, got penalty={penalty!r}, l1_ratio={l1_ratio!r}")
        if params.get("class_weight") is not None:
            raise ValueError("HypergradientSearchCV does not yet tune LogisticRegression "
                             "with class_weight; pass class_weight=None")

    def to_theta(self, value):
        return -np.log(value)

    def from_theta(self, theta):
        return np.exp(-theta)

    def dtheta(self):
        return -1.0  # d theta / d log(C)

    def folds(self, estimator, data, objective):
        classes = np.unique(np.concatenate([np.unique(f.y_train) for f in data]))
        if len(classes) < 2:  # LogisticRegression's own message
            raise ValueError("This solver needs samples of at least 2 classes in the data, "
                             f"but the data contains only one class: {classes[0]!r}")
        out = []
        for f in data:
            codes_tr = torch.as_tensor(np.searchsorted(classes, f.y_train))
            codes_va = torch.as_tensor(np.searchsorted(classes, f.y_val))
            X_tr = _t(f.X_train)
            weight = _t(f.sample_weight) if f.sample_weight is not None else \
                torch.ones(X_tr.shape[0], dtype=_DTYPE)
            penalty = Shifted(L2(), -float(torch.log(weight.sum())))
            if len(classes) == 2:
                problem = ProximalProblem.logistic(X_tr, codes_tr.to(_DTYPE), penalty, weight,
                                                   estimator.fit_intercept)
            else:
                problem = ProximalProblem.multinomial(X_tr, codes_tr, len(classes), penalty,
                                                      weight, estimator.fit_intercept)
            va = codes_va.to(_DTYPE) if len(classes) == 2 else codes_va
            out.append(Fold(problem, HeldOutLogLoss.for_problem(problem, _t(f.X_val), va)))
        return out

    def solvers(self, folds):
        # Tolerances relative to the gradient at zero, in the solver's scaled variable (as
        # BaseProximalCV._tolerance_scale does for the CV estimator).
        problem = folds[0].problem
        grad = problem.smooth_grad(problem.init_params())
        unit = problem.unit_scale()
        if unit is not None:
            grad = grad / unit.reshape(grad.shape)
        scale = float(grad.abs().max()) or 1.0

        def solver(tol):
            return make_inner_solver("lbfgs", max_iter=_INNER_MAX_ITER, tol=tol * scale)

        method = build_part(make_hypergradient, _METHODS, "implicit", rtol=_ADJOINT_RTOL)
        return solver(_INNER_TOL), method, solver(_INNER_TOL * _GRID_TOL)
