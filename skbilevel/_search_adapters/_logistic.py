"""``LogisticRegression`` (L2): L-BFGS fold fits and implicit hypergradients of ``-log(C)``."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import check_classification_targets

from .._logistic_problem import logistic_criterion, logistic_problem
from .._proximal_parts import GRID_TOL, auto_inner_tol, gradient_scale, make_method, make_solver
from ..engine import Fold
from ..engine.inner import L2
from ._base import DTYPE as _DTYPE
from ._base import SearchAdapter
from ._base import as_tensor as _t

_INNER_MAX_ITER = 10000  # BilevelLogisticRegressionCV's inner_max_iter


class LogisticAdapter(SearchAdapter):
    """``LogisticRegression(C)`` with an L2 penalty: ``theta = -log(C)``.

    As in ``BilevelLogisticRegressionCV``: ``C`` multiplies the *sum* of the training
    losses, i.e. the penalty strength of the mean loss is ``1 / (C S)`` with ``S`` the
    training weight, which ``Shifted(L2(), -log S)`` applies; L-BFGS fold fits and implicit
    differentiation. The objective is always the CV log-loss of each fold's model, which
    has the classes of its training rows, as scikit-learn's scorers see it.
    """

    param, estimator_class = "C", LogisticRegression
    # Another metric is reported, not differentiated: the log-loss is followed instead
    # (on each fold's own classes, see folds).
    objectives = {"neg_log_loss": "log_loss"}
    default_objective = "surrogate_log_loss"
    grid_patience = 1  # the L2 path's CV log-loss has one minimum; weak penalties are dear
    # Steep towards strong penalties, flat towards weak ones: a parabola through three
    # grid values can put its vertex on the wrong side of the grid's best point (a
    # scored point lost, and one more to come back); a cubic through four sees the skew.
    bracket_start = "cubic"
    # The screening path (strong to weak penalty) stops a point past its best; the search
    # starts near the best, and L-BFGS from its fold solutions rather than the last's.
    warm_start = "nearest"

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
        # Each fold is the model LogisticRegression fits on its training rows: over the
        # classes those rows hold (binary when they hold two, whatever the other folds).
        out = []
        for i, f in enumerate(data):
            # LogisticRegression's checks: class labels, one column (a 2-D column is
            # raveled; LogisticRegression's own fits then warn).
            y_train, y_val = column_or_1d(f.y_train), column_or_1d(f.y_val)
            check_classification_targets(y_train)
            classes, val_classes = np.unique(y_train), np.unique(y_val)
            if len(classes) < 2:  # LogisticRegression's own complaint, for this fold
                raise ValueError(f"The training rows of fold {i} hold only one class, "
                                 f"{classes.tolist()[0]!r}: LogisticRegression needs samples of at "
                                 "least 2 classes; use a stratified splitter")
            seen = np.isin(y_val, classes)
            if objective == "log_loss" and not np.array_equal(val_classes, classes):
                # predict_proba has one column per training class, and log_loss (labels
                # taken from y_val) then raises -- NaN scores -- or, with as many classes
                # on both sides, pairs the columns with the wrong classes.
                raise ValueError(
                    f"Fold {i} holds classes {val_classes.tolist()} in its validation rows "
                    f"and {classes.tolist()} in its training rows: scikit-learn's "
                    "neg_log_loss cannot score it (NaN at every C). Use a (stratified) "
                    "splitter whose folds hold every class on both sides, or another "
                    "scoring (the log-loss is then followed on each fold's own classes)")
            if not seen.any():
                continue  # nothing but classes the fold never saw: a constant (infinite) loss
            X_tr = _t(f.X_train)
            weight = _t(f.sample_weight) if f.sample_weight is not None else \
                torch.ones(X_tr.shape[0], dtype=_DTYPE)
            problem = logistic_problem(X_tr, torch.as_tensor(np.searchsorted(classes, y_train)),
                                       len(classes), weight, L2(), estimator.fit_intercept)
            # A validation row of a class the fold never saw has probability 0, an infinite
            # loss whatever C: it moves no minimiser and is left out of the followed one.
            codes_va = torch.as_tensor(np.searchsorted(classes, y_val[seen]))
            weight = None if f.score_weight is None else _t(f.score_weight[seen])
            X_va = f.X_val if seen.all() else f.X_val[seen]  # no copy of the usual case
            out.append(Fold(problem, logistic_criterion(problem, _t(X_va), codes_va, weight)))
        if not out:
            raise ValueError("No validation fold holds a class its training rows hold")
        return out

    def solvers(self, folds):
        # BilevelLogisticRegressionCV's L2 settings (inner_tol="auto", implicit
        # differentiation), the tolerances relative to the first fold's gradient at zero.
        problem = folds[0].problem
        scale = gradient_scale(problem, "lbfgs", "implicit")
        tol = auto_inner_tol(len(problem.datafit.sample_weight), problem.datafit.n_features)
        return (make_solver("lbfgs", scale, tol, max_iter=_INNER_MAX_ITER),
                make_method("implicit"),
                make_solver("lbfgs", scale, tol * GRID_TOL, max_iter=_INNER_MAX_ITER))
