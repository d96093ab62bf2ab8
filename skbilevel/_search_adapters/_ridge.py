"""``Ridge``: closed-form fold fits and implicit hypergradients of ``log(alpha)``."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from ..engine import Fold
from ..engine.hypergrad import make_hypergradient
from ..engine.inner import RidgeProblem
from ..engine.outer import HeldOutMSE
from ..engine.solvers import make_inner_solver
from ._base import SearchAdapter
from ._base import as_tensor as _t


class RidgeAdapter(SearchAdapter):
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
