"""The shared fit of the estimators that tune a proximal inner problem by CV hypergradients.

``BilevelLassoCV``, ``BilevelElasticNetCV`` and ``BilevelLogisticRegressionCV`` differ only in
their datafit, penalty, safety grid and fitted attributes; this base class does the rest:
folds, the choice of inner solver and hypergradient method, the outer loop (grid safety
net, then L-BFGS-B on the log-scale hyperparameters), the optional second stage with one
penalty per feature, and the refit on all the data.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator

from ._base import history_to_arrays, make_splits, warn_if_not_converged
from .engine import Fold, minimize_hyperparams
from .engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
from .engine.inner import ProximalProblem, Shifted
from .engine.outer import make_optimizer
from .engine.solvers import FISTA, ProximalGradient
from .engine.solvers._coordinate import CoordinateDescent
from .engine.solvers._lbfgs import LBFGS
from .utils._sklearn_compat import Interval, StrOptions
from .utils._tensor import resolve_device, resolve_dtype, to_tensor

_METHODS = {"implicit": ImplicitSupport, "forward": ForwardMode, "reverse": ReverseMode}
_SOLVERS = ("auto", "fista", "ista", "cd", "lbfgs")
_UNROLLABLE = ("fista", "ista")  # solvers whose iterations forward / reverse mode follow
_REFIT_TOL = 1e-3  # the refit is solved this much tighter than the tuning's inner solves


def _with_penalty(problem, penalty):
    """``problem``'s datafit with another penalty (shifted like the current one)."""
    shift = getattr(problem.penalty, "shift", None)
    return ProximalProblem(problem.datafit, penalty if shift is None else Shifted(penalty, shift))


class BaseProximalCV(BaseEstimator):
    """Base class: see the subclasses for the parameters' documentation."""

    _parameter_constraints: dict = {
        "cv": ["cv_object"],
        "fit_intercept": ["boolean"],
        "hypergradient": [StrOptions(set(_METHODS))],
        "solver": [StrOptions(set(_SOLVERS))],
        "step": [StrOptions({"constant", "backtracking"}), callable],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "inner_max_iter": [Interval(Integral, 1, None, closed="left")],
        "inner_tol": [Interval(Real, 0, None, closed="neither")],
        "device": [str],
        "dtype": [StrOptions({"float64", "float32"})],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }
    _classifier = False
    _grid_patience = None  # see minimize_hyperparams: for grids that are one path

    # -- hooks of the subclasses -----------------------------------------------------------
    def _problem(self, X, y, sample_weight, penalty):
        """The ``ProximalProblem`` of one training set (tensors in)."""
        raise NotImplementedError

    def _criterion(self, problem, X, y, sample_weight):
        """The held-out criterion that scores ``problem``'s solutions on ``(X, y)``."""
        raise NotImplementedError

    def _penalties(self, n_features):
        """``(shared penalty, per-feature penalty or None)``."""
        raise NotImplementedError

    def _grid(self, problem):
        """``(candidates (m, n_hyper), (low, high))`` in ``theta`` for the shared penalty;
        the first candidate is the optimiser's nominal start."""
        raise NotImplementedError

    def _user_params(self, theta):
        """The user's hyperparameters at ``theta`` (numpy), as a dict."""
        raise NotImplementedError

    # -- the pieces -------------------------------------------------------------------------
    def _solver_name(self, problem):
        if self.solver != "auto":
            if self.hypergradient != "implicit" and self.solver not in _UNROLLABLE:
                raise ValueError(f"hypergradient={self.hypergradient!r} differentiates the "
                                 f"solver's iterations and needs solver='fista' or 'ista', "
                                 f"got solver={self.solver!r}")
            if self.solver == "cd" and not CoordinateDescent.supports(problem):
                raise ValueError("solver='cd' needs a least-squares problem whose design "
                                 "can be held dense; use 'fista' for a large sparse X")
            if self.solver == "lbfgs" and not problem.penalty.smooth:
                raise ValueError("solver='lbfgs' needs a smooth (L2) penalty")
            return self.solver
        if self.hypergradient != "implicit":
            return "fista"
        if CoordinateDescent.supports(problem):
            return "cd"
        if problem.penalty.smooth:
            return "lbfgs"
        return "fista"

    def _make_solver(self, name, scale, tighten=1.0):
        tol = self.inner_tol * tighten
        if name == "cd":
            return CoordinateDescent(max_iter=self.inner_max_iter, tol=tol)
        if name == "lbfgs":
            return LBFGS(max_iter=self.inner_max_iter, tol=tol * scale)
        cls = FISTA if name == "fista" else ProximalGradient
        return cls(step=self.step, max_iter=self.inner_max_iter, tol=tol * scale)

    def _fit_proximal(self, X, y, sample_weight):
        """Tune on K folds, then refit on all the data; returns the refitted problem and
        solution (the subclass turns them into fitted attributes)."""
        d = X.shape[1]
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)

        def to_t(a):
            return to_tensor(a, dtype, device)

        y_t = (lambda a: torch.as_tensor(a, device=device)) if self._classifier else to_t
        splits = make_splits(self.cv, X, y, classifier=self._classifier)
        shared, per_feature = self._penalties(d)
        full = self._problem(to_t(X), y_t(y), to_t(sample_weight), shared)
        folds = []
        for tr, va in splits:
            problem = self._problem(to_t(X[tr]), y_t(y[tr]), to_t(sample_weight[tr]), shared)
            folds.append(Fold(problem, self._criterion(problem, to_t(X[va]), y_t(y[va]),
                                                       to_t(sample_weight[va]))))
        # Gradient scale of the tolerances: ||grad f(0)||_inf (alpha_max for the Lasso).
        scale = float(full.smooth_grad(full.init_params()).abs().max()) or 1.0
        solver_name = self._solver_name(full)
        solver = self._make_solver(solver_name, scale)
        tune = dict(solver=solver, method=_METHODS[self.hypergradient](),
                    optimizer=make_optimizer("lbfgs", max_iter=self.max_iter, tol=self.tol),
                    n_jobs=self.n_jobs, verbose=self.verbose)
        candidates, bounds = self._grid(full)
        grid = torch.as_tensor(candidates, dtype=dtype, device=device)
        result = minimize_hyperparams(folds, grid[0], start_grid=grid[1:], bounds=bounds,
                                      grid_patience=self._grid_patience, **tune)
        penalty = shared
        if per_feature is not None:
            first, penalty = result, per_feature
            staged = [Fold(_with_penalty(f.problem, per_feature), f.criterion)
                      for f in folds]
            theta0 = first.theta.expand(per_feature.n_hyper).clone()
            box = tuple(float(np.ravel(b)[0]) for b in bounds)  # the shared entry's box
            result = minimize_hyperparams(staged, theta0, bounds=box, **tune)
            for rec in first.history:
                rec["theta"] = np.full(per_feature.n_hyper, rec["theta"][0])
            result.history[:0] = first.history
        warn_if_not_converged(result, type(self).__name__)
        self.n_iter_ = max(1, result.n_iter)
        self.best_score_ = -float(result.value)
        self.history_ = history_to_arrays(result.history, self._user_params)
        self.solver_ = solver_name
        refit = _with_penalty(full, penalty)
        refit_solver = self._make_solver(self._solver_name(refit), scale, _REFIT_TOL)
        return refit, refit_solver.solve(refit, result.theta).w, result.theta

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
