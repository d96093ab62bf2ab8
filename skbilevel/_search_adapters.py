"""Per-model adapters of ``HypergradientSearchCV``: scikit-learn estimator -> engine folds.

An adapter knows, for one scikit-learn model family, which continuous parameter it tunes,
how that parameter maps to the engine's ``theta``, which inner problem and held-out
criterion a training / validation pair is, and which inner solver and hypergradient method
solve it. :func:`tune_path` runs the engine's outer loop (a screening grid over the user's
bounds, then a bracketing search on the hypergradient) and returns every evaluated point.

The folds come already transformed by the pipeline prefix fitted on each training fold
(see ``_search.py``), as numpy arrays; nothing here sees the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from ._proximal_cv import _ADJOINT_RTOL, _GRID_TOL, _METHODS
from ._tuning import build_part
from .engine import Fold
from .engine.hypergrad import make_hypergradient
from .engine.inner import L2, ProximalProblem, RidgeProblem, Shifted
from .engine.loop import BestEvaluated, FoldEvaluator, GridScreening, OptimizerDriver, OuterLoop
from .engine.outer import HeldOutLogLoss, HeldOutMSE, make_optimizer
from .engine.solvers import make_inner_solver

_DTYPE = torch.float64
_INNER_TOL = 1e-8  # logistic fold fits, relative to ||grad f(0)||_inf (as the CV estimator)
_INNER_MAX_ITER = 10000


@dataclass
class FoldData:
    """One training / validation pair after the pipeline prefix (numpy)."""

    X_train: np.ndarray
    y_train: np.ndarray
    sample_weight: np.ndarray | None  # of the training rows (the final step's fit)
    X_val: np.ndarray
    y_val: np.ndarray


def _t(a):
    # A copy: the caller's array may be read-only (torch warns on those) and must not be
    # shared with the engine.
    return None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))


class RidgeAdapter:
    """``Ridge(alpha)``: ``theta = log(alpha)``, closed-form fits, implicit hypergradients.

    ``objective`` is ``"mse"`` (the CV mean squared error) or ``"r2"``: each fold's error
    divided by the validation fold's total sum of squares, so the objective is one minus
    the mean fold R^2, which is what ``scoring="r2"`` averages (exact for one target; with
    several the sums of squares are pooled over the targets).
    """

    param, estimator_class = "alpha", Ridge
    objectives = {"neg_mean_squared_error": "mse", "r2": "r2", None: "r2"}
    default_objective = "mse"
    grid_patience = None  # a closed-form point is cheap: screen the whole grid

    def check(self, estimator):
        if getattr(estimator, "positive", False):
            raise ValueError("HypergradientSearchCV tunes Ridge(positive=False) only")

    def to_theta(self, value):
        return np.log(value)

    def from_theta(self, theta):
        return np.exp(theta)

    def dtheta(self):
        return 1.0  # d theta / d log(alpha)

    def folds(self, estimator, data, objective):
        out = []
        for f in data:
            y_tr = f.y_train.reshape(len(f.y_train), -1).astype(np.float64)
            y_va = f.y_val.reshape(len(f.y_val), -1).astype(np.float64)
            problem = RidgeProblem(_t(f.X_train), _t(y_tr), _t(f.sample_weight),
                                   fit_intercept=estimator.fit_intercept)
            criterion = HeldOutMSE.for_problem(problem, _t(f.X_val), _t(y_va))
            if objective == "r2":
                total = float(((y_va - y_va.mean(0)) ** 2).sum())
                # value = scale * SSE; R^2 = 1 - SSE / SST per fold.
                criterion.scale = 1.0 / (total if total > 0 else 1.0)
            out.append(Fold(problem, criterion))
        return out

    def solvers(self, folds):
        # The eigendecomposition of each fold's Gram serves every alpha and the adjoints.
        solver = make_inner_solver("closed_form")
        return solver, make_hypergradient("implicit"), None


class LogisticAdapter:
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


ADAPTERS = (RidgeAdapter(), LogisticAdapter())


def adapter_for(estimator):
    """The adapter of ``estimator`` (exact class match), or None."""
    return next((a for a in ADAPTERS if type(estimator) is a.estimator_class), None)


def tune_path(adapter, estimator, data, low, high, objective, *, max_iter, tol):
    """Tune ``adapter.param`` of ``estimator`` on the transformed folds ``data``.

    A screening grid of one point per decade of ``[low, high]`` (at least 5), then a
    bracketing search on the hypergradient within one grid step of the best grid point.
    Returns the evaluated points in order: a list of ``(value, objective, hypergradient)``
    with ``hypergradient`` the derivative of the objective with respect to
    ``log(value)`` (NaN for the screening grid, evaluated without gradients).
    """
    folds = adapter.folds(estimator, data, objective)
    solver, method, grid_solver = adapter.solvers(folds)
    n_grid = max(5, int(np.ceil(np.log10(high / low))) + 1)
    values = np.geomspace(high, low, n_grid) if adapter.param == "alpha" else \
        np.geomspace(low, high, n_grid)  # strong penalty first: cheap fits lead the path
    theta = torch.as_tensor(adapter.to_theta(values), dtype=_DTYPE)[:, None]
    box = sorted((float(adapter.to_theta(low)), float(adapter.to_theta(high))))
    step = float(abs(theta[1, 0] - theta[0, 0]))
    grads = []

    def record(grad, theta):  # the signed hypergradient of every optimize-phase record
        grads.append(float(grad[0]))
        return grad

    evaluator = FoldEvaluator(folds, solver, method, transform=record)
    optimizer = make_optimizer("bracket", max_iter=max_iter, tol=tol, first_step=step / 2)
    loop = OuterLoop(evaluator, OptimizerDriver(optimizer, local_radius=np.array([step])),
                     screening=GridScreening(list(theta), patience=adapter.grid_patience,
                                             solver=grid_solver),
                     selection=BestEvaluated(), bounds=(box[0], box[1]))
    result = loop.run(theta[0])
    out, it = [], iter(grads)
    for rec in result.history:
        value = float(np.clip(adapter.from_theta(float(rec["theta"][0])), low, high))
        grad = next(it, np.nan) if rec["phase"] == "optimize" else np.nan
        out.append((value, float(rec["objective"]), grad * adapter.dtheta()))
    return out
