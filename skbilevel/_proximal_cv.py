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

from ._proximal_parts import (GRID_TOL, HYPERGRADIENTS, REFIT_TOL, SOLVER_OPTIONS,
                              auto_inner_tol, gradient_scale, make_method, make_solver,
                              select_solver)
from ._tuning import (contiguous_folds, early_stopping_rows, history_to_arrays, make_splits,
                      warn_if_not_converged)
from ._progress import FitProgress
from ._routing import SplitterRoutingMixin, check_groups
from ._scaling import history_in_user_units
from .engine import Fold, minimize_hyperparams
from .engine.inner import ProximalProblem, Shifted
from .engine.loop import broadcast_first_stage
from .engine.outer import make_optimizer
from .utils._sklearn_compat import CallbackSupportMixin, Interval, StrOptions
from .utils._tensor import resolve_device, resolve_dtype, to_numpy, to_tensor

_STALL_PATIENCE = 3  # optimizer evaluations without progress before stopping
_ADAPTIVE_SCALES = (0.3, 1.0, 3.0)  # of the adaptive-Lasso starts, see adaptive_starts


def _with_penalty(problem, penalty):
    """``problem``'s datafit with another penalty (shifted like the current one)."""
    shift = problem.penalty.shift if isinstance(problem.penalty, Shifted) else None
    return ProximalProblem(problem.datafit, penalty if shift is None else Shifted(penalty, shift))


# Parameters of the estimators with a per-feature stage (numpydoc, 4-space indent).
EARLY_STOPPING_DOC = """early_stopping : bool or "auto", default="auto"
        For the per-feature stage: keep ``validation_fraction`` of the samples out of the
        CV folds and return the evaluated point (the best shared penalty included) with
        the lowest error on them. Thousands of penalties tuned on the same validation
        folds overfit them; this is the remedy. ``"auto"`` turns it on with per-feature
        penalties when the holdout has at least 100 samples.
    validation_fraction : float, default=0.2
        Fraction of the samples held out for early stopping (of the groups, held out
        whole, when ``fit`` is given ``groups``).
    n_iter_no_change : int, default=10
        With early stopping, stop after this many evaluations without improvement of the
        held-out error.
    random_state : int, RandomState instance or None, default=None
        Seeds the early-stopping split."""
EARLY_STOPPING_CONSTRAINTS = {
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
}


def adaptive_starts(problem, theta, n_hyper, box, solver, scales=_ADAPTIVE_SCALES):
    """Per-feature starting penalties of the adaptive Lasso (Zou, 2006).

    The shared fit at ``theta`` gives coefficients ``b``; feature ``j`` starts with its
    penalty multiplied by ``scale * mean(|b|) / |b_j|`` (the mean over the nonzero ones),
    one start per ``scale``: weak penalties where the shared fit found a strong effect,
    strong ones on its small, likely spurious coefficients, and the upper bound where it
    found none (a feature outside every support has a zero hypergradient, so the start
    decides). Returns a list of ``theta`` of shape ``(n_hyper,)`` (empty if ``b = 0``).
    """
    w = solver.solve(problem, theta).w
    size = problem.coef(w).abs().reshape(n_hyper, -1).amax(1)
    active = size > 0
    if not bool(active.any()):
        return []
    log_ratio = torch.log(size[active].mean() / size.clamp_min(torch.finfo(size.dtype).tiny))
    return [(theta + np.log(scale) + log_ratio).clamp(*box) for scale in scales]


def _solutions_at(result):
    """The folds' solutions at ``result.theta`` from the kept solution path, of an
    evaluation by the loop's own solver (not the looser grid's); None if there is none."""
    if len(result.solution_path) != len(result.history):
        return None
    theta = to_numpy(result.theta)
    for record, solutions in zip(reversed(result.history), reversed(result.solution_path)):
        if record["phase"] != "grid" and np.array_equal(record["theta"], theta):
            return solutions
    return None


class BaseProximalCV(SplitterRoutingMixin, CallbackSupportMixin, BaseEstimator):
    """Base class: see the subclasses for the parameters' documentation."""

    _parameter_constraints: dict = {
        "cv": ["cv_object"],
        "fit_intercept": ["boolean"],
        "hypergradient": [StrOptions(set(HYPERGRADIENTS))],
        "solver": [StrOptions(set(SOLVER_OPTIONS))],
        "step": [StrOptions({"constant", "backtracking"}), callable],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "inner_max_iter": [Interval(Integral, 1, None, closed="left")],
        "inner_tol": [Interval(Real, 0, None, closed="neither")],
        "device": [str],
        "dtype": [StrOptions({"float64", "float32"})],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }
    _classifier = False
    _grid_patience = None  # see minimize_hyperparams: for grids that are paths
    _grid_path_length = None  # candidates per path (None: the grid is one path)
    _grid_patience_below_first = False  # see GridScreening's patience_below_first
    _grid_step = None  # spacing of the grid in theta (sets the optimizer's first step)
    _grid_refine = 0  # points between the grid's best and each neighbour (GridScreening)
    _keep_solution_path = False  # the folds' solutions at every evaluation (coefs_paths_)
    _warm_start = "last"  # the shared stage's FoldEvaluator warm_start
    _bracket_start = "parabola"  # the bracketing search's first point (Bracket's start)
    _hyper_names = ("alpha",)  # the shared stage's hyperparameters, as _user_params names them

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

    def _fold_score(self, problem, w, X, y, sample_weight):
        """The twin's default score (R^2, accuracy) on validation rows ``(X, y)`` (numpy) of
        the solution ``w`` of a training fold's ``problem``."""
        raise NotImplementedError

    # -- the pieces -------------------------------------------------------------------------
    def _holdout_rows(self, n_samples, per_feature, groups=None):
        """``(rows, held)``: the samples of the CV folds and of the early-stopping holdout
        (None) -- only for the per-feature stage of the estimators that have one. With
        ``groups``, whole groups are held out."""
        if per_feature is None:  # BilevelElasticNetCV has no early-stopping parameters
            return np.arange(n_samples), None
        return early_stopping_rows(self.early_stopping, n_samples, True,
                                   self.validation_fraction, self.random_state, groups)

    def _solver_name(self, problem):
        """``solver``, checked against ``problem`` and the hypergradient method (see
        :func:`select_solver`)."""
        return select_solver(problem, self.solver, self.hypergradient)

    def _inner_tol(self, X):
        """``inner_tol``, with ``"auto"`` resolved by the size of the design."""
        if self.inner_tol != "auto":
            return self.inner_tol
        return auto_inner_tol(*X.shape)

    def _tolerance_scale(self, problem, solver_name):
        """The gradient scale of the inner tolerances, ``||grad f(0)||_inf`` (``alpha_max``
        for the Lasso), per unit of each feature where the solver measures it so (see
        ``_proximal_parts.gradient_scale``)."""
        return gradient_scale(problem, solver_name, self.hypergradient)

    def _make_solver(self, name, scale, tol):
        """The inner solver ``name`` at ``tol`` relative to ``scale`` (see make_solver)."""
        return make_solver(name, scale, tol, max_iter=self.inner_max_iter, step=self.step)

    def _fit_proximal(self, X, y, sample_weight, progress=None, split_params=None,
                      theta_shift=0.0, value_exponent=0, grid_shift=0.0):
        """Tune on K folds, then refit on all the data. Returns the refitted problem, its
        :class:`InnerSolution`, ``theta`` and the folds' solutions at every evaluation
        (when ``_keep_solution_path``; the subclass turns them into fitted attributes).
        ``progress`` is the fit's :class:`FitProgress` (made when ``fit`` began; the
        subclass calls its ``done`` once the fitted attributes are set). ``split_params`` go
        to ``cv.split`` (see ``SplitterRoutingMixin._split_params``).

        Data rescaled by powers of two (see ``_scaling``) are fitted as they come; the
        user's ``theta`` is the fitted one plus ``theta_shift`` and the user's objective
        ``2**value_exponent`` times the fitted one, which ``history_`` reports.
        ``grid_shift`` moves the safety grid and its box (in the fitted ``theta``)."""
        split_params = split_params or {}
        check_groups(split_params, X.shape[0])
        progress = FitProgress(self, self._user_params) if progress is None else progress
        progress.theta_shift = theta_shift  # the lines in the user's units
        d = X.shape[1]
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)

        def to_t(a):
            return to_tensor(a, dtype, device)

        y_t = (lambda a: torch.as_tensor(a, device=device)) if self._classifier else to_t
        shared, per_feature = self._penalties(d)
        rows, held = self._holdout_rows(X.shape[0], per_feature, split_params.get("groups"))
        splits = make_splits(self.cv, X, y, rows, classifier=self._classifier,
                             params=split_params)
        for train, val in splits:  # a fold of zero weight has no loss to fit or to score
            if not (sample_weight[rows[train]].sum() > 0 and
                    sample_weight[rows[val]].sum() > 0):
                raise ValueError("sample_weight (times class_weight) sums to zero on a "
                                 f"training or validation fold of cv={self.cv!r}: give "
                                 "every fold rows of positive weight")
        names = ", ".join(self._hyper_names)
        progress.header(X, len(splits), len(self._hyper_names) if per_feature is None else
                        per_feature.n_hyper, names if per_feature is None else
                        f"{names} shared, then one per feature")

        def fold(train, val, X=X, y=y, sample_weight=sample_weight):
            problem = self._problem(to_t(X[train]), y_t(y[train]),
                                    to_t(sample_weight[train]), shared)
            return Fold(problem, self._criterion(problem, to_t(X[val]), y_t(y[val]),
                                                 to_t(sample_weight[val])))

        full = self._problem(to_t(X), y_t(y), to_t(sample_weight), shared)
        solver_name = self._solver_name(full)
        scale = self._tolerance_scale(full, solver_name)
        inner_tol = self._inner_tol(X)
        layout = contiguous_folds(splits)
        stack = self._side_by_side(full, X, y, splits, shared, solver_name, layout, held)
        # The search's solves: at inner_tol, or the side-by-side folds' own tolerance.
        search_tol = inner_tol if stack is None or stack.inner_tol is None else stack.inner_tol
        solver = self._make_solver(solver_name, scale, search_tol)
        if stack is not None:  # the folds as one problem on the rows of X (no copy)
            folds, validation = [stack.fold], None
            solver = stack.search_solver(solver)  # float32 first, where it pays
        elif layout is None:
            folds = [fold(rows[tr], rows[va]) for tr, va in splits]
            validation = [(X, y, sample_weight, rows[va]) for _, va in splits]
        else:  # K-fold: the folds are views of one reordered copy (see contiguous_folds)
            order, slices = layout
            data = X[rows[order]], y[rows[order]], sample_weight[rows[order]]
            folds = [fold(tr, va, *data) for tr, va in slices]
            # best_score_ reads the validation rows from the copy too: copying them again
            # cost 0.4-0.5 s of page faults at 50,000 x 1,000.
            validation = [(*data, va) for _, va in slices]
        # Lasso-type CV errors are piecewise smooth: stop zigzagging across a kink.
        method = make_method(self.hypergradient)
        tune = dict(solver=solver, method=method,
                    optimizer=make_optimizer("lbfgs", max_iter=self.max_iter, tol=self.tol),
                    stall_patience=_STALL_PATIENCE, stall_tol=self.tol * 0.1,
                    keep_solution_path=self._keep_solution_path, n_jobs=self.n_jobs,
                    progress=progress.loop)
        candidates, bounds = self._grid(full)
        if np.any(np.asarray(grid_shift) != 0):
            candidates = candidates + grid_shift
            bounds = tuple(np.asarray(b) + grid_shift for b in bounds)
        grid = torch.as_tensor(candidates, dtype=dtype, device=device)
        # The optimum lies within a grid step of the best candidate: a first step of half
        # a step, not L-BFGS-B's raw gradient (see LBFGSB.first_step).
        first_step = radius = None
        # The refinement is for d >> n designs, whose CV curves have close local minima; on
        # a taller design its points, screened at the grid's loose tolerance, can rank a
        # worse one first (diabetes degree 3: 1.4e-5 above LassoCV's best, 3.8e-5 of error).
        refine = self._grid_refine if X.shape[1] > X.shape[0] else 0
        if self._grid_step is not None:  # radius: only the penalty strength, theta[0]
            step = self._grid_step / (refine + 1)  # the finest spacing screened
            first_step = step / 2
            radius = np.full(grid.shape[1], np.inf)
            radius[0] = step
        # One penalty: a bracketing search on the CV curve (fewer evaluations than a
        # quasi-Newton method's line searches); several: L-BFGS-B.
        bracket = grid.shape[1] == 1
        optimizer = make_optimizer("bracket" if bracket else "lbfgs", max_iter=self.max_iter,
                                   tol=self.tol, first_step=first_step,
                                   **({"start": self._bracket_start} if bracket else {}))
        progress.grid(to_numpy(grid), "screening grid")
        grid_solver = self._make_solver(solver_name, scale, inner_tol * GRID_TOL)
        if stack is not None:
            grid_solver = stack.screening_solver(grid_solver)
        result = minimize_hyperparams(
            folds, grid[0], start_grid=grid[1:], bounds=bounds, local_radius=radius,
            grid_patience=self._grid_patience, grid_path_length=self._grid_path_length,
            grid_refine=refine, grid_patience_below_first=self._grid_patience_below_first,
            grid_solver=grid_solver,
            warm_start=self._warm_start, **{**tune, "optimizer": optimizer,
                                            "method": make_method(self.hypergradient,
                                                                  grid.shape[1])})
        penalty = shared
        if per_feature is not None:
            first, penalty = result, per_feature
            staged = [Fold(_with_penalty(f.problem, per_feature), f.criterion)
                      for f in folds]
            # Many penalties tuned on the same validation folds overfit them: with a
            # holdout, the answer is the evaluated point that does best on it, and the
            # optimizer stops once that has not improved for n_iter_no_change evaluations.
            holdout, tuning_rows = None, full
            if held is not None:
                holdout = fold(rows, held)
                tuning_rows = holdout.problem
                holdout = Fold(_with_penalty(holdout.problem, per_feature), holdout.criterion)
            theta0 = first.theta.expand(per_feature.n_hyper).clone()
            box = tuple(float(np.ravel(b)[0]) for b in bounds)  # the shared entry's box
            # Starts: the shared penalty everywhere, and adaptive-Lasso penalties (the
            # holdout, or else the CV error, picks the better one).
            starts = adaptive_starts(tuning_rows, first.theta, per_feature.n_hyper, box,
                                     solver)
            progress.grid([to_numpy(theta0)] + [to_numpy(s) for s in starts],
                          "per-feature starting points")
            result = minimize_hyperparams(
                staged, theta0, start_grid=torch.stack(starts) if starts else None,
                bounds=box, holdout=holdout, n_iter_no_change=self.n_iter_no_change, **tune)
            result = broadcast_first_stage(first, result, per_feature.n_hyper)
        warn_if_not_converged(result, type(self).__name__)
        self.n_iter_ = max(1, result.n_iter)
        with np.errstate(over="ignore", under="ignore"):  # the grid's extremes may saturate
            self.history_ = history_to_arrays(
                history_in_user_units(result.history, theta_shift, value_exponent),
                self._user_params)
        self.solver_ = solver_name
        refit = _with_penalty(full, penalty)
        # REFIT_TOL times the search's tolerance (at inner_tol="auto", 1e-9 of the gradient
        # scale took the refit of 50,000 x 1,000 to float64 rounding: 21 evaluations, 6 of
        # them failed line searches at that level).
        refit_solver = self._make_solver(self._solver_name(refit), scale,
                                         search_tol * REFIT_TOL)
        self.best_cv_error_ = float(result.value)  # of the fitted data (see _scaling)
        # The twin's best_score_: each fold solved once more at the chosen point (as tight
        # as the refit) and scored by the twin's default scorer on its validation rows.
        last = folds if per_feature is None else staged
        warm = result.fold_solutions if len(result.fold_solutions) == len(last) else \
            [None] * len(last)
        # Where the kept path holds the folds' solutions at the chosen point, solved by the
        # tuning's own solver, they are that solver's answer already: its check costs one
        # gradient per fold, where the refit's tolerance cost as much as the search (a
        # third of the fit at n=100k, d=200; benchmarks/results/logistic_cv.md).
        exact = _solutions_at(result) if per_feature is None else None
        fold_solver = refit_solver if exact is None else solver
        warm = warm if exact is None else exact
        solved = [fold_solver.solve(f.problem, result.theta, w0).w for f, w0 in zip(last, warm)]
        if stack is not None:
            self.best_score_ = float(np.mean(stack.fold_accuracies(solved[0])))
            fold_solutions = stack.unstack(result.fold_solutions[0])
            path = stack.unstack_path(result.solution_path or [])
        else:
            self.best_score_ = float(np.mean([
                self._fold_score(f.problem, w, Xv[va], yv[va], sv[va])
                for f, w, (Xv, yv, sv, va) in zip(last, solved, validation)]))
            fold_solutions, path = result.fold_solutions, result.solution_path
        # Like LogisticRegressionCV: start from the mean of the folds' solutions.
        w0 = torch.stack(fold_solutions).mean(0) if fold_solutions else None
        return refit, refit_solver.solve(refit, result.theta, w0), result.theta, path

    def _side_by_side(self, full, X, y, splits, penalty, solver_name, layout, held):
        """The folds solved side by side as one problem (an object with ``fold``,
        ``inner_tol``, ``screening_solver``, ``search_solver``,
        ``unstack``, ``unstack_path`` and ``fold_accuracies``), or None to solve each fold
        on its own rows (the default; see ``_logistic_stacked``)."""
        return None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
