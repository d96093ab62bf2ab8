"""``Lasso`` and ``ElasticNet``: coordinate-descent fold fits, implicit hypergradients.

The fold problems, criteria and solvers of this family are built here once, for
``HypergradientSearchCV`` and for ``BilevelLassoCV`` / ``BilevelElasticNetCV`` alike:
scikit-learn's objective ``1/(2n) ||y - Xw - b||^2 + alpha l1_ratio ||w||_1 +
alpha (1 - l1_ratio) / 2 ||w||^2`` (sample weights rescaled to sum to n, as scikit-learn
does), the held-out MSE, and implicit differentiation on the support of the solution.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import ElasticNet, Lasso

from .._proximal_parts import gradient_scale, make_method, make_solver, select_solver
from ..engine import Fold
from ..engine.inner import L1, ProximalProblem, WeightedL1
from ..engine.inner import ElasticNet as ElasticNetPenalty
from ..engine.loop import (BestEvaluated, FoldEvaluator, GridScreening, OptimizerDriver,
                           OuterLoop, Stall)
from ..engine.outer import HeldOutMSE, make_optimizer
from ._base import DTYPE, SearchAdapter, evaluation_progress
from ._base import as_tensor as _t

_INNER_TOL = 1e-8  # the CV estimators' default inner_tol (a relative duality gap for CD)
_INNER_MAX_ITER = 10000
_GRID_TOL = 1e3  # screening fits this much looser: they only rank starting points
_STALL_PATIENCE = 3  # the CV estimators': L-BFGS-B zigzags across the kinks of the CV error
# alphas per decade of the 2-D screening grid: one per decade misranks the l1_ratio paths
# when the optimum falls between two decades (seen on a 1000 x 40 problem of rank 20).
_ALPHAS_PER_DECADE = 2
# l1_ratio of the 2-D screening grid, as fractions of the box from its top: dense near
# the Lasso's end, where the CV error moves most with l1_ratio (ElasticNetCV's advice too).
_RATIO_GRID = np.array([0.0, 0.01, 0.1, 0.5, 1.0])


# -- shared with BilevelLassoCV / BilevelElasticNetCV ----------------------------------------
def least_squares_problem(X, y, sample_weight, penalty, fit_intercept):
    """The ``ProximalProblem`` of one training set (tensors, ``y`` of shape ``(n,)``)."""
    return ProximalProblem.least_squares(X, y[:, None], penalty, sample_weight, fit_intercept)


def held_out_mse(problem, X, y, sample_weight=None):
    """The validation MSE of ``problem``'s solutions on ``(X, y)`` (tensors)."""
    return HeldOutMSE.for_problem(problem, X, y[:, None], sample_weight)


def alpha_max(problem, l1_ratio=1.0):
    """The smallest ``alpha`` whose solution is 0 (the top of ``LassoCV``'s path)."""
    return float(problem.datafit.xty.abs().max()) / l1_ratio or 1.0


def lasso_penalties(n_features, alpha_per_feature=False):
    """``(shared penalty, per-feature penalty or None)`` of the Lasso."""
    return L1(), (WeightedL1(n_features) if alpha_per_feature else None)


def enet_penalty(l1_ratio=None, scale="logit"):
    """The elastic-net penalty: ``l1_ratio`` tuned (None; ``theta[1]`` on ``scale``) or
    fixed."""
    return ElasticNetPenalty(l1_ratio=l1_ratio, scale=scale)


def fold_solvers(problem, *, solver="auto", hypergradient="implicit", step="constant",
                 max_iter=_INNER_MAX_ITER, tol=_INNER_TOL, grid_tol=_GRID_TOL):
    """``(name, solver, hypergradient method, screening solver)`` for ``problem``'s
    family: coordinate descent and implicit differentiation on the support by default."""
    name = select_solver(problem, solver, hypergradient)
    scale = gradient_scale(problem, name, hypergradient)
    return (name, make_solver(name, scale, tol, step=step, max_iter=max_iter),
            make_method(hypergradient),
            make_solver(name, scale, tol * grid_tol, step=step, max_iter=max_iter))


# -- the search adapters -------------------------------------------------------------------
class LassoAdapter(SearchAdapter):
    """``Lasso(alpha)``: ``theta = log(alpha)``.

    ``objective`` is ``"mse"`` or ``"r2"`` (each fold's squared error divided by its
    validation total sum of squares, as for Ridge).
    """

    param, estimator_class = "alpha", Lasso
    objectives = {"neg_mean_squared_error": "mse", "r2": "r2", None: "r2"}
    default_objective = "mse"
    grid_patience = 2  # strong penalties first: stop the path 2 points past its best

    def check(self, estimator):
        name = type(estimator).__name__
        if getattr(estimator, "positive", False):
            raise ValueError(f"HypergradientSearchCV tunes {name}(positive=False) only; "
                             "got positive=True")

    def penalty(self, estimator):
        return lasso_penalties(0)[0]

    def folds(self, estimator, data, objective, penalty=None):
        penalty = self.penalty(estimator) if penalty is None else penalty
        out = []
        for f in data:
            if np.ndim(f.y_train) != 1:
                raise ValueError(f"HypergradientSearchCV tunes {type(estimator).__name__} "
                                 f"on one target: y must be 1-D, got {np.ndim(f.y_train)} "
                                 "dimensions")
            y_va = np.asarray(f.y_val, dtype=np.float64)
            problem = least_squares_problem(_t(f.X_train), _t(f.y_train), _t(f.sample_weight),
                                            penalty, estimator.fit_intercept)
            criterion = held_out_mse(problem, _t(f.X_val), _t(y_va), _t(f.score_weight))
            if objective == "r2":  # 1 - R^2 per fold, weighted as r2_score is
                w = np.ones(len(y_va)) if f.score_weight is None else f.score_weight
                total = float((w * (y_va - np.average(y_va, weights=w)) ** 2).sum())
                criterion.scale = 1.0 / (total if total > 0 else 1.0)
            out.append(Fold(problem, criterion))
        return out

    def solvers(self, folds):
        _, solver, method, grid_solver = fold_solvers(folds[0].problem)
        return solver, method, grid_solver


class ElasticNetAdapter(LassoAdapter):
    """``ElasticNet(alpha, l1_ratio)``: ``theta = [log(alpha), l1_ratio]``.

    ``alpha`` alone keeps the estimator's ``l1_ratio`` (a 1-D search as for the Lasso);
    with ``l1_ratio`` in ``param_bounds`` both are tuned: a screening grid of alphas (two
    per decade, strong to weak) on each of 5 values of ``l1_ratio`` (0.99, 0.9, 0.5 and the
    ends of a (0, 1) box: dense near the Lasso), then L-BFGS-B in the box from the best
    of them.
    """

    estimator_class = ElasticNet

    @property
    def params(self):
        return ("alpha", "l1_ratio")

    def check(self, estimator):
        super().check(estimator)
        ratio = estimator.l1_ratio
        if not (isinstance(ratio, (int, float, np.number)) and 0 <= ratio <= 1):
            raise ValueError(f"ElasticNet's l1_ratio must be in [0, 1], got {ratio!r}")

    def parse_bounds(self, name, key, param_bounds):
        if name != "l1_ratio":
            return super().parse_bounds(name, key, param_bounds)
        try:
            low, high = (float(b) for b in param_bounds[key])
        except (TypeError, ValueError):
            low = high = np.nan
        if not 0 <= low < high <= 1:
            raise ValueError(f"param_bounds[{key!r}] must be a pair (low, high) with "
                             f"0 <= low < high <= 1, got {param_bounds[key]!r}")
        return low, high

    def penalty(self, estimator):
        return enet_penalty(float(estimator.l1_ratio))

    def tune(self, estimator, data, bounds, objective, *, max_iter, tol):
        if "l1_ratio" not in bounds:
            return super().tune(estimator, data, bounds, objective, max_iter=max_iter,
                                tol=tol)
        (a_low, a_high), (r_low, r_high) = bounds["alpha"], bounds["l1_ratio"]
        folds = self.folds(estimator, data, objective, enet_penalty(scale="linear"))
        solver, method, grid_solver = self.solvers(folds)
        n_alpha = max(5, int(np.ceil(_ALPHAS_PER_DECADE * np.log10(a_high / a_low))) + 1)
        log_alphas = np.log(np.geomspace(a_high, a_low, n_alpha))  # strong penalty first
        ratios = r_high - (r_high - r_low) * _RATIO_GRID
        grid = torch.as_tensor([[a, r] for r in ratios for a in log_alphas], dtype=DTYPE)
        box = (np.array([np.log(a_low), r_low]), np.array([np.log(a_high), r_high]))
        step = float(log_alphas[0] - log_alphas[1])
        grads = []

        def record(grad, theta):
            grads.append(grad.detach().cpu().numpy().copy())
            return grad

        nan = np.array([np.nan, np.nan])

        def point(rec, grad=None):  # see tune_path
            theta = np.clip(rec["theta"], *box)
            grad = nan if rec["phase"] == "grid" else grads[-1] if grad is None else grad
            return ({"alpha": float(np.exp(theta[0])), "l1_ratio": float(theta[1])},
                    float(rec["objective"]),
                    {"alpha": float(grad[0]), "l1_ratio": float(grad[1])}, rec["phase"])

        progress = evaluation_progress(
            lambda theta: f"alpha={float(np.exp(theta[0])):.4g} l1_ratio={float(theta[1]):.4g}",
            point)
        evaluator = FoldEvaluator(folds, solver, method, transform=record, progress=progress)
        # The optimum lies within a grid step in alpha of the best grid point; l1_ratio
        # may go anywhere in its box.
        optimizer = make_optimizer("lbfgs", max_iter=max_iter, tol=tol, first_step=step / 2)
        driver = OptimizerDriver(optimizer, local_radius=np.array([step, np.inf]))
        loop = OuterLoop(evaluator, driver,
                         screening=GridScreening(list(grid), patience=self.grid_patience,
                                                 path_length=n_alpha, solver=grid_solver),
                         stopping=[Stall(_STALL_PATIENCE, tol)], selection=BestEvaluated(),
                         bounds=box)
        result = loop.run(grid[0])
        it = iter(grads)
        return [point(rec, None if rec["phase"] == "grid" else next(it, nan))
                for rec in result.history]
