"""``Ridge``: closed-form fold fits and implicit hypergradients of ``log(alpha)``.

The folds, criteria and solvers are ``BilevelRidgeCV``'s (:mod:`skbilevel._ridge_folds`).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from .._ridge_folds import (block_moments, complement_moments, moment_fold, ridge_fold,
                            ridge_solvers, uses_moments)
from ._base import DTYPE, SearchAdapter
from ._base import as_tensor as _as_tensor


def _t(a):
    return _as_tensor(a, sparse=True)  # RidgeProblem and HeldOutMSE take CSR tensors


class RidgeAdapter(SearchAdapter):
    """``Ridge(alpha)``: ``theta = log(alpha)``, closed-form fits, implicit hypergradients.

    ``objective`` is ``"mse"`` (the CV mean squared error) or ``"r2"``: each fold's error
    divided by the validation fold's total sum of squares, so the objective is one minus
    the mean fold R^2, which is what ``scoring="r2"`` averages (exact for one target; with
    several the sums of squares are pooled over the targets).

    Folds whose validation blocks partition the rows, with features that do not depend on
    the fold (``FoldData.rows``: no fitted prefix), are built as ``BilevelRidgeCV`` builds
    them: from the moments ``X^T S X``, ``X^T S y`` of each validation block, a training
    fold's being the total minus its block (one pass over the data instead of one Gram per
    fold, and no training rows copied). Otherwise each fold's Gram comes from its rows.
    Above 4000 features the fits and adjoints are matrix-free (recycled MINRES).
    """

    param, estimator_class = "alpha", Ridge
    objectives = {"neg_mean_squared_error": "mse", "r2": "r2", None: "r2"}
    default_objective = "mse"
    grid_patience = None  # a closed-form point is cheap: screen the whole grid

    def check(self, estimator):
        if getattr(estimator, "positive", False):
            raise ValueError("HypergradientSearchCV tunes Ridge(positive=False) only")

    def parse_bounds(self, name, key, param_bounds):
        # Nested bounds (a (low, high) pair per feature) ask for one alpha per feature,
        # which scikit-learn's Ridge cannot hold (an array alpha is one per target) and
        # which GridSearchCV's semantics cannot report honestly (best_score_ would be
        # scored on the folds that tuned d penalties): point to the estimator that does it.
        try:
            nested = np.ndim(param_bounds[key]) > 1
        except ValueError:  # ragged: positive_bounds reports the format
            nested = False
        if nested:
            raise ValueError(
                f"param_bounds[{key!r}] must be one pair (low, high): Ridge has one alpha "
                "for all the features (an array alpha is one per target). For one penalty "
                "per feature (or per group of features) use skbilevel.BilevelRidgeCV("
                "alpha_per_feature=True), which tunes them by hypergradients with a holdout "
                "against overfitting the folds.")
        return super().parse_bounds(name, key, param_bounds)

    def folds(self, estimator, data, objective, *, from_blocks=True):
        """Engine folds of ``data`` (a list of ``FoldData``, or a dask array's
        ``MomentFolds``); ``from_blocks=False`` forces one Gram per fold."""
        if isinstance(data, MomentFolds):
            return [moment_fold(train, val, fit_intercept=estimator.fit_intercept,
                                objective=objective) for train, val in zip(data.train,
                                                                           data.val)]
        solver, _ = ridge_solvers("auto", data[0].X_val.shape[1], DTYPE)
        moments = _partition_moments(data) if from_blocks and uses_moments(solver) else None
        out = []
        for f, raw in zip(data, moments or [None] * len(data)):
            out.append(ridge_fold(
                (_t(f.X_val), _t(_column(f.y_val)), _t(f.score_weight)),
                lambda f=f: (_t(f.X_train), _t(_column(f.y_train)), _t(f.sample_weight)),
                n_train=len(f.y_train), moments=raw, fit_intercept=estimator.fit_intercept,
                objective=objective))
        return out

    def polish_tol(self, folds):
        # Closed form: an evaluation is a product with each fold's eigenvectors, far
        # cheaper than scikit-learn's scoring of a point (a fit per fold); the matrix-free
        # solves above 4000 features are not.
        return _POLISH_TOL if uses_moments(self.solvers(folds)[0]) else None

    def solvers(self, folds):
        # Closed form: the eigendecomposition of each fold's Gram serves every alpha and
        # the adjoints; no separate screening solver.
        d = folds[0].problem.xty.shape[0]
        return (*ridge_solvers("auto", d, DTYPE), None)


class MomentFolds:
    """The folds of a ``dask.array`` as the search tunes on them: the ``RawMoments`` of
    each training fold (``train``) and of each validation block (``val``: weighted as the
    scorer weights, see ``_search_dask.py``), and the user's ``estimator``."""

    def __init__(self, train, val, estimator):
        self.train, self.val, self.estimator = train, val, estimator


_POLISH_TOL = 1e-12  # relative; scikit-learn's CV scores agree with the engine's to ~1e-13


def _column(y):
    return np.asarray(y, dtype=np.float64).reshape(len(y), -1)


def _partition_moments(data):
    """Moments of every training fold from its validation block's, or None unless every
    fold has ``rows``, trains on the complement of its block, and the blocks partition
    the rows."""
    if any(f.rows is None for f in data):
        return None
    rows = np.unique(np.concatenate([f.rows[1] for f in data]))
    n = sum(len(f.rows[1]) for f in data)
    if rows.size != n or any(len(tr) + len(va) != n or not np.array_equal(
            np.union1d(tr, va), rows) for tr, va in (f.rows for f in data)):
        return None
    blocks = [block_moments(f.X_val, _column(f.y_val), f.val_weight, _as_tensor)
              for f in data]
    return complement_moments(blocks)[0]
