"""BilevelRidgeCV: ridge regression whose penalties are tuned by hypergradients."""

from __future__ import annotations

from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.model_selection import RepeatedKFold
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from ._tuning import (N_JOBS_DOC, early_stopping_rows, history_to_arrays, make_splits,
                      warn_if_not_converged)
from ._routing import FIT_PARAMS_DOC, SplitterRoutingMixin, check_groups
from ._moments import fold_moments
from ._ridge_dask import fit_dask, is_dask_array
from ._ridge_folds import gram_scale, one_shot, ridge_fold, ridge_solvers, uses_moments
from ._ridge_per_feature import feature_groups, per_feature_starts, shrinkage_penalty
from ._progress import FitProgress
from ._scaling import history_in_user_units, ldexp, rescale_exponent, scale_back
from .engine import Fold, minimize_hyperparams
from .engine.loop import broadcast_first_stage
from .engine.inner import RidgeProblem
from .engine.outer import make_optimizer
from .utils._sklearn_compat import (CallbackSupportMixin, Interval, StrOptions,
                                    _check_sample_weight, _fit_context, validate_data)
from .utils._tensor import resolve_device, resolve_dtype, to_numpy, to_tensor
from .utils._memory import without_hugepage_advice
from .utils._threads import single_threaded_if_small

# Safety-net grid: alpha / scale over 1e-6..1e6, scale = mean diagonal of the Gram; one
# point a decade where a point costs an eigen-solve, every second decade where each point
# is a Krylov fit per fold. Large alpha first: well-conditioned fits warm-start the rest.
# (Sharing the fine grid with an explicitly chosen Krylov solver was tried: on scikit-learn's
# 15 x 30 sample-weight check the Krylov L-BFGS then stalls near alpha = 1e-7 scale for one
# of the two equivalent fits and not the other.)
_GRID = np.logspace(6, -6, 13)
_GRID_MATRIX_FREE = np.logspace(6, -6, 7)
# Sparse X, matrix-free, one alpha (optimizer="auto"): the grid only ranks starting
# points, so its fits stop at a looser residual (Krylov fits at a 1e-8 residual were 40 %
# of the time), and a bracketing search then needs 2-4 evaluations where L-BFGS-B took
# 8-9 on the sparse benchmark (benchmarks/results/sparse_ridge.md). (Grid patience cannot
# stop the grid early:
# alpha_init, evaluated first, is often near the best, so the strong penalties that
# follow it would exhaust any patience before the basin.)
_GRID_RTOL_MATRIX_FREE = 1e-5
# ... and the search's fits and adjoint solves stop at a tenth of the outer ``tol`` (within
# [1e-8, 1e-6]): a relative residual r moves the CV error by ~0.01-0.2 r relative (measured
# at 20,000 x 4,000, 1 %, and 1,000 x 300, 2 %), far below the ``tol`` the search stops at;
# 1e-6 instead of 1e-8 saved 30 % of the search's Hessian products with the same alpha_ on
# three seeds (above _LOOSE_SEARCH_NNZ stored entries). ``best_score_`` keeps the 1e-8 of
# ``ridge_solvers``; the refit, the model users get, is solved to _REFIT_RTOL.
_SEARCH_RTOL_MATRIX_FREE = (1e-8, 1e-6)
_REFIT_RTOL = 1e-12
_LOOSE_SEARCH_NNZ = 2_000


class BilevelRidgeCV(RegressorMixin, SplitterRoutingMixin, CallbackSupportMixin,
                     BaseEstimator):
    """Ridge regression with its penalty tuned by K-fold CV hypergradients.

    Minimises the cross-validated mean squared error over ``log(alpha)`` by following its
    exact gradient (implicit differentiation of the ridge solution), then refits on all the
    data. One shared ``alpha`` reproduces :class:`~sklearn.linear_model.RidgeCV` without a
    grid; ``alpha_per_feature=True`` learns one penalty per feature (or per group), which no
    grid search can reach.

    Read more in the :ref:`User Guide <ridge_guide>`.

    Parameters
    ----------
    alpha_init : float, default=1.0
        Starting penalty. The outer loop starts from the better of ``alpha_init`` and the
        best point of a coarse log-grid, so a bad start cannot hurt.
    alpha_per_feature : bool or array-like of shape (n_features,), default=False
        False: one ``alpha``. True: one ``alpha`` per feature. An array of labels: one
        ``alpha`` per group of features with the same label.
    cv : int, cross-validation generator or iterable, default=5
        Folds of the outer criterion, as in :func:`~sklearn.model_selection.check_cv`.
        A group splitter (:class:`~sklearn.model_selection.GroupKFold`, ...) takes its
        ``groups`` from ``fit(X, y, groups=groups)``.
    cv_repeats : "auto" or int, default="auto"
        When ``cv`` is an int, repeat the K-fold split this many times with different
        shuffles (:class:`~sklearn.model_selection.RepeatedKFold`, seeded by
        ``random_state``) and average. Averaging over partitions makes the CV error less
        easy to overfit with many penalties. ``"auto"`` is 1 for one ``alpha`` and 3 for
        several.
    fit_intercept : bool, default=True
        Fit an unpenalised intercept (data are centred as in :class:`~sklearn.linear_model.Ridge`).
    linear_solver : {"auto", "cholesky", "cg", "minres", "recycled_minres"}, default="auto"
        How the inner and adjoint systems are solved. ``"cholesky"`` factorises the Gram
        (eigendecomposition for one ``alpha``); the others are matrix-free and solve both
        the ridge fit and the adjoint system of the hypergradient (same Hessian) with CG,
        MINRES or recycled MINRES, the last one carrying one recycle space through both
        systems and across outer iterations. ``"auto"`` is ``"cholesky"`` for dense ``X`` with at
        most 4000 features and ``"recycled_minres"`` for more. Sparse ``X`` keeps the
        Gram (from sparse products, so that it gives the dense ``X``'s ``alpha_``) while
        its eigendecomposition costs at most ~4000 passes over the stored entries
        (``n_features ** 3 <= 4000 * X.nnz``, and at most 4000 features), and goes to
        ``"cg"`` beyond (its products cost less than recycling's orthogonalisations).
        The recycle space holds Ritz vectors and the last solutions (snapshots); since
        the Hessian only moves by the diagonal ``alpha``, both are re-paired with each new
        Hessian without operator applications, and projecting onto the snapshots
        extrapolates along the path.
    recycle_dim : int, default=20
        Dimension of the recycled Krylov subspace (``"recycled_minres"`` only).
    optimizer : {"auto", "lbfgs", "adam", "gd", "hdm"}, default="auto"
        Outer optimizer over ``log(alpha)``. ``"hdm"`` is hypergradient descent (HDM-Best):
        per-hyperparameter stepsizes and a momentum learned online, one CV evaluation per
        iteration and no line search. ``"auto"`` is ``"lbfgs"``, except for the one shared
        ``alpha`` of sparse ``X`` with a matrix-free ``linear_solver``: there every CV
        evaluation is a Krylov fit per fold, and a bracketing search on the hypergradient
        within one step of the best grid point (:class:`~skbilevel.engine.outer.Bracket`)
        needs about half L-BFGS-B's evaluations; its grid fits stop at a looser residual
        (they only rank starting points). ``tol`` then bounds the relative decrease of the
        CV error still to be had.
    max_iter : int, default=200
        Maximum outer iterations (per stage: one shared alpha, then per-feature alphas),
        at least 1 (as in scikit-learn; the starting grid is always evaluated).
    tol : float, default=1e-5
        Outer tolerance on the projected gradient, relative to the CV error.
    alpha_bounds : "auto" or tuple of float, default="auto"
        Box for every ``alpha``. ``"auto"`` is ``scale * (1e-10, 1e10)`` with ``scale`` the
        mean diagonal of the centred Gram ``X^T X``.
    alpha_shrinkage : float, default=0.005
        With several penalties, strength of a prior pulling the ``log(alpha)`` toward their
        mean: the outer objective becomes ``CV MSE + alpha_shrinkage * CV_ref *
        var(log alpha)``, with ``CV_ref`` the CV MSE of the best single ``alpha`` (so the
        strength is scale-free). Many penalties tuned on the same validation folds overfit
        them when ``n_features`` is comparable to ``n_samples``; this prior is the remedy
        that measured best on the benchmark (see the user guide). 0 disables it.
    early_stopping : bool or "auto", default="auto"
        Keep ``validation_fraction`` of the samples out of the CV objective and return the
        evaluated point (starting candidates included) with the lowest error on them, a
        remedy against overfitting the validation folds with many penalties. ``"auto"``
        turns it on when there are several penalties (``alpha_per_feature``) and the holdout
        has at least 100 samples; a smaller holdout is too noisy to choose between paths.
    validation_fraction : float, default=0.2
        Fraction of the samples held out for early stopping (of the groups, held out
        whole, when ``fit`` is given ``groups``).
    n_iter_no_change : int, default=10
        With early stopping, stop after this many evaluations without improvement of the
        held-out error.
    device : str, default="cpu"
        Torch device of the computation, e.g. ``"cuda"``.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation.
    {n_jobs}
    random_state : int, RandomState instance or None, default=None
        Seeds the repeated K-fold shuffles and the early-stopping split.
    verbose : int, default=0
        0 prints nothing. 1 prints, as the fit goes: a header (data, folds, number of
        penalties), the range of the starting grid, one line per CV evaluation (the grid's
        included) with the seconds since ``fit`` began, the CV error (and the held-out
        error with early stopping) and ``alpha`` (its min / median / max when there are
        several), and a final line (``alpha_``, total time, ``n_iter_``). 2 adds the
        hypergradient norm and the inner and Krylov iteration counts.

    Attributes
    ----------
    alpha_ : float or ndarray of shape (n_features,)
        Selected penalty (per feature when ``alpha_per_feature`` is not False).
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
        Coefficients of the ridge refitted on all the data with ``alpha_``.
    intercept_ : float or ndarray of shape (n_targets,)
        Intercept of the refitted model, of the dtype of ``X`` (0.0 when
        ``fit_intercept=False``).
    best_score_ : float
        What :class:`~sklearn.linear_model.RidgeCV` reports with ``cv``: the mean over the
        folds of the R^2 (its default scorer) on each validation fold of the fold's fit at
        ``alpha_`` (weighted by ``sample_weight`` when given), as ``GridSearchCV``'s
        ``mean_test_score``. The tuned criterion is the CV squared error,
        ``best_cv_error_``.
    best_cv_error_ : float
        The tuned criterion at ``alpha_``: the mean over the folds of the weighted
        validation mean squared error (plus the ``alpha_shrinkage`` prior with several
        penalties), the minimum of ``history_["objective"]``.
    n_iter_ : int
        Outer iterations run.
    history_ : dict of ndarray
        One entry per objective evaluation: ``phase`` ("grid" or "optimize"), ``objective``
        (CV MSE), ``alpha``, ``theta`` (log alpha per hyperparameter), ``grad_norm``,
        ``time``, ``n_inner_iter``, ``n_linsys_iter`` (Krylov iterations), ``n_matvec`` and,
        with early stopping, ``holdout_objective``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during fit (only when X has string column names).

    See Also
    --------
    sklearn.linear_model.RidgeCV : Ridge with a grid of penalties.
    sklearn.linear_model.ARDRegression : Per-feature precisions by evidence maximisation.

    Notes
    -----
    For ``alpha`` with ``theta = log(alpha)`` the hypergradient of a fold's validation error
    ``F`` is ``dF/dtheta_g = -sum_{j in g} alpha_j w_j v_j`` with ``H v = grad_w F`` and
    ``H = X^T S X + diag(alpha)``: one extra linear solve per fold and outer step.

    Data of any finite scale are fitted: when the largest entry of ``X`` or ``y`` lies
    outside ``[2**-64, 2**64]`` (``[2**-16, 2**16]`` with ``dtype="float32"``) the fit runs
    on ``X / 2**ex`` and ``y / 2**ey``, an exact division, and maps back: ``alpha_`` by
    ``4**ex``, ``coef_`` by ``2**(ey - ex)``, the intercept by ``2**ey`` and the squared
    errors by ``4**ey``. ``(X * c, y * t)`` thus gives the model of ``(X, y)`` with
    ``alpha_`` times ``c**2``, as long as every fitted attribute fits in float64 (about
    ``1e-150 < c, t < 1e150``); beyond, a ValueError names the input and its scale.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skbilevel import BilevelRidgeCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = BilevelRidgeCV().fit(X, y)
    >>> round(float(reg.alpha_), 3) > 0
    True
    """

    _parameter_constraints: dict = {
        "alpha_init": [Interval(Real, 0, None, closed="neither")],
        "alpha_per_feature": ["boolean", "array-like"],
        "cv": ["cv_object"],
        "cv_repeats": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "fit_intercept": ["boolean"],
        "linear_solver": [StrOptions({"auto", "cholesky", "cg", "minres", "recycled_minres"})],
        "recycle_dim": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"auto", "lbfgs", "adam", "gd", "hdm"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "alpha_bounds": [StrOptions({"auto"}), tuple],
        "alpha_shrinkage": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "dtype": [StrOptions({"float64", "float32"})],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, alpha_init=1.0, *, alpha_per_feature=False, cv=5, cv_repeats="auto",
                 fit_intercept=True,
                 linear_solver="auto", recycle_dim=20, optimizer="auto", max_iter=200,
                 tol=1e-5, alpha_bounds="auto", alpha_shrinkage=0.005, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=10, device="cpu", dtype="float64",
                 n_jobs=None, random_state=None, verbose=0):
        self.alpha_init = alpha_init
        self.alpha_per_feature = alpha_per_feature
        self.cv = cv
        self.cv_repeats = cv_repeats
        self.fit_intercept = fit_intercept
        self.linear_solver = linear_solver
        self.recycle_dim = recycle_dim
        self.optimizer = optimizer
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_bounds = alpha_bounds
        self.alpha_shrinkage = alpha_shrinkage
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    @without_hugepage_advice
    @single_threaded_if_small
    def fit(self, X, y, sample_weight=None, **params):
        """Tune ``alpha`` by cross-validated hypergradients, then refit on all the data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, used in the fits and in the validation errors.
        {params}

        Returns
        -------
        self : object
            Fitted estimator.
        """
        progress = FitProgress(self, self._user_params)
        if is_dask_array(X):  # data larger than one machine: moments on the cluster
            return fit_dask(self, X, y, sample_weight, params, progress)
        split_params = self._split_params(params, sample_weight)
        X, y = validate_data(self, X, y, accept_sparse="csr", multi_output=True,
                             y_numeric=True, dtype=[np.float64, np.float32])
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        n, d = X.shape
        progress.begin(X, y, sample_weight)
        groups, n_hyper = feature_groups(self.alpha_per_feature, d)
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)
        # Extreme scales are fitted on X / 2**ex, y / 2**ey: alpha maps by 4**ex, the
        # coefficients by 2**(ey - ex), the intercept by 2**ey, squared errors by 4**ey.
        inputs = {"X": X, "y": y}
        ex, ey = rescale_exponent(X, dtype), rescale_exponent(y, dtype)
        X, y = ldexp(X, -ex), ldexp(y, -ey)
        log_shift = 2 * ex * np.log(2.0)  # log(alpha) - log(alpha in the fitted space)
        Y = y.reshape(n, -1)
        to_t = lambda a: to_tensor(a, dtype, device)  # noqa: E731

        check_groups(split_params, n)
        rows, held = early_stopping_rows(self.early_stopping, n, n_hyper > 1,
                                         self.validation_fraction, self.random_state,
                                         split_params.get("groups"))
        splits = make_splits(self._cv(n_hyper), X, Y, rows, params=split_params)
        progress.header(X, len(splits), n_hyper, "alpha" if n_hyper == 1 else
                        "alpha per feature" if self.alpha_per_feature is True else
                        "alpha per group of features")
        nnz = X.nnz if sp.issparse(X) else None
        solver, method = ridge_solvers(self.linear_solver, d, dtype, self.recycle_dim,
                                       nnz=nnz)
        # The model users get is solved to 1e-12 (matrix-free solvers): a warm-started
        # solve to 1e-8 leaves coefficients that depend on its start by ~1e-8, which
        # scikit-learn's sample-weight equivalence check (atol 1e-9) sees.
        refit_solver = solver if uses_moments(solver) else ridge_solvers(
            self.linear_solver, d, dtype, self.recycle_dim, rtol=_REFIT_RTOL, nnz=nnz)[0]
        shared = torch.zeros(d, dtype=torch.long, device=device)

        moments, total = [None] * len(splits), None
        if uses_moments(solver):
            data = (X, Y, sample_weight) if held is None else \
                (X[rows], Y[rows], sample_weight[rows])
            moments, total = fold_moments(*data, splits, to_t)
            moments = moments or [None] * len(splits)
        full_gram = None if total is None else total.centred(self.fit_intercept)["gram"]

        def fold(train, val, raw=None):
            # From the fold's moments when given: no copy of the training rows.
            return ridge_fold((to_t(X[val]), to_t(Y[val]), to_t(sample_weight[val])),
                              lambda: (to_t(X[train]), to_t(Y[train]),
                                       to_t(sample_weight[train])),
                              n_train=len(train), moments=raw,
                              fit_intercept=self.fit_intercept, groups=shared)

        folds = [fold(rows[tr], rows[va], m) for (tr, va), m in zip(splits, moments)]
        tuned_folds = folds  # the folds of the last stage (regrouped with several alphas)
        holdout = fold(rows, held) if held is not None else None
        # The natural unit of alpha: the Gram's mean diagonal (read off it when computed).
        scale = float(full_gram.diagonal().mean()) if full_gram is not None else \
            gram_scale(X, sample_weight, self.fit_intercept)
        scale = scale if scale > 0 else 1.0
        bounds = self._log_bounds(scale, log_shift)
        optimizer = "lbfgs" if self.optimizer == "auto" else self.optimizer
        tune = partial(minimize_hyperparams, solver=solver, method=method,
                       optimizer=make_optimizer(optimizer, max_iter=self.max_iter,
                                                tol=self.tol),
                       bounds=bounds, holdout=holdout, n_iter_no_change=self.n_iter_no_change,
                       n_jobs=self.n_jobs, progress=progress.loop)
        # Stage 1, one alpha from the better of alpha_init and a coarse log-grid: the whole
        # answer for a shared alpha, the safety net and the starting point otherwise.
        coarse = _GRID if uses_moments(solver) else _GRID_MATRIX_FREE
        grid = torch.as_tensor(np.log(scale * coarse), dtype=dtype, device=device)[:, None]
        theta0 = torch.full((1,), float(np.log(self.alpha_init) - log_shift), dtype=dtype,
                            device=device)
        progress.theta_shift = log_shift  # the lines in the user's units
        progress.grid([to_numpy(theta0)] + list(to_numpy(grid)), "alpha_init and grid")
        result = tune(folds, theta0, start_grid=grid,
                      **self._scalar_search(solver, d, dtype, float(np.log(coarse[0] /
                                                                         coarse[1])),
                                            nnz))
        g_t = torch.as_tensor(groups, device=device)
        if n_hyper > 1:
            scalar = result
            tuning_rows = self._whole_problem(X[rows], Y[rows], sample_weight[rows], to_t,
                                              shared, total if len(rows) >= d else None)
            starts = per_feature_starts(tuning_rows, g_t, n_hyper, scalar.theta, solver,
                                        bounds)
            progress.grid(to_numpy(starts), "per-feature starting points")
            regrouped = tuned_folds = [Fold(f.problem.regroup(g_t), f.criterion)
                                       for f in folds]
            if holdout is not None:
                holdout = Fold(holdout.problem.regroup(g_t), holdout.criterion)
            result = tune(regrouped, starts[0], start_grid=starts[1:], holdout=holdout,
                          penalty=shrinkage_penalty(self.alpha_shrinkage, scalar.value))
            result = broadcast_first_stage(scalar, result, n_hyper)  # one history
        warn_if_not_converged(result, type(self).__name__)

        theta = result.theta
        name = type(self).__name__
        alpha = scale_back(self._alpha_from_theta(to_numpy(theta), groups), 2 * ex,
                           "alpha_", name, {"X": inputs["X"]})
        self.alpha_ = alpha[()]  # np.float64 for one alpha, as RidgeCV
        if self.alpha_bounds != "auto":  # exp(log(bound)) may round past the bound
            self.alpha_ = np.clip(self.alpha_, *self._check_bounds())
            self.alpha_ = np.float64(self.alpha_) if np.ndim(self.alpha_) == 0 else self.alpha_
        self.best_cv_error_ = float(scale_back(result.value, 2 * ey, "best_cv_error_", name,
                                               {"y": inputs["y"]}))
        self.best_score_ = self._cv_score(tuned_folds, theta, solver, X, Y, sample_weight,
                                          [rows[va] for _, va in splits],
                                          result.fold_solutions)
        # At least the one gradient evaluation that confirmed the starting point.
        self.n_iter_ = max(1, result.n_iter)
        with np.errstate(over="ignore", under="ignore"):  # the grid's extremes may saturate
            self.history_ = history_to_arrays(
                history_in_user_units(result.history, log_shift, 2 * ey), self._user_params)
        self._refit(self._whole_problem(X, Y, sample_weight, to_t, g_t,
                                        total if held is None and n >= d else None),
                    theta, refit_solver, y.ndim, X.dtype, result.fold_solutions)
        self.coef_ = scale_back(self.coef_, ey - ex, "coef_", name, inputs, X.dtype)
        if self.fit_intercept:  # in the dtype of X, as Ridge
            self.intercept_ = scale_back(self.intercept_, ey, "intercept_", name,
                                         {"y": inputs["y"]}, X.dtype)[()]
        progress.done({"alpha": self.alpha_}, self.best_cv_error_,
                      self.best_score_, self.n_iter_)
        return self

    fit.__doc__ = fit.__doc__.replace("{params}", FIT_PARAMS_DOC)

    def predict(self, X):
        """Predict with the refitted ridge model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Predicted values.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False,
                          dtype=[np.float64, np.float32])
        return safe_sparse_dot(X, self.coef_.T, dense_output=True) + self.intercept_

    # -- helpers -------------------------------------------------------------------------
    def _cv(self, n_hyper):
        """``cv``, turned into repeated K-fold when asked for (see ``cv_repeats``)."""
        repeats = self.cv_repeats if self.cv_repeats != "auto" else (3 if n_hyper > 1 else 1)
        if isinstance(self.cv, Integral) and repeats > 1:
            return RepeatedKFold(n_splits=self.cv, n_repeats=repeats,
                                 random_state=self.random_state)
        return self.cv

    def _scalar_search(self, solver, d, dtype, step, nnz):
        """Options of the one-alpha stage: with ``optimizer="auto"``, a matrix-free solver and
        sparse X (``nnz`` stored entries; None when dense), a looser grid and a bracketing
        search within one grid ``step`` (in ``log alpha``) of its best point; nothing
        otherwise."""
        if self.optimizer != "auto" or uses_moments(solver) or nnz is None:
            return {}
        grid_solver, _ = ridge_solvers(self.linear_solver, d, dtype, self.recycle_dim,
                                       rtol=_GRID_RTOL_MATRIX_FREE, nnz=nnz)
        low, high = _SEARCH_RTOL_MATRIX_FREE
        # Below _LOOSE_SEARCH_NNZ stored entries a product costs next to nothing: the search
        # keeps 1e-8 there, and with it alpha_ reproducible to ~1e-9 between equivalent
        # data (scikit-learn's sample-weight equivalence check on 15 rows saw 1e-7 at 1e-6).
        rtol = min(max(0.1 * self.tol, low), high) if nnz >= _LOOSE_SEARCH_NNZ else low
        search_solver, search_method = ridge_solvers(
            self.linear_solver, d, dtype, self.recycle_dim, rtol=rtol, nnz=nnz)
        # (Starting the search at the best grid point instead of the parabola's vertex,
        # start="theta0", saved one of 5 evaluations at 20,000 x 4,000, 1 %, but took 4
        # instead of 2 at 50,000 x 20,000, 0.1 %, and tied at 5,000 x 2,000 and
        # 20,000 x 1,000: not kept.)
        return dict(optimizer=make_optimizer("bracket", max_iter=self.max_iter, tol=self.tol,
                                             first_step=step / 2),
                    local_radius=np.array([step]), grid_solver=grid_solver,
                    solver=search_solver, method=search_method)

    def _user_params(self, theta):
        """``{"alpha": ...}`` at ``theta`` (one value per entry of ``theta``)."""
        return {"alpha": self._alpha_from_theta(np.asarray(theta), None)}

    def _alpha_from_theta(self, theta, groups):
        alpha = np.exp(theta)
        if alpha.size == 1 and self.alpha_per_feature is False:
            return np.float64(alpha[0])  # a numpy scalar, as RidgeCV's
        return alpha if groups is None else alpha[groups]

    def _check_bounds(self):
        message = f"alpha_bounds must be 'auto' or (low, high) with 0 < low < high, " \
                  f"got {self.alpha_bounds!r}"
        try:
            low, high = (float(b) for b in self.alpha_bounds)
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if not 0 < low < high:
            raise ValueError(message)
        return low, high

    def _whole_problem(self, X, Y, sample_weight, to_t, groups, moments):
        """The ridge problem on the given rows, from their moments when already computed."""
        if moments is not None:
            return RidgeProblem.from_moments(**moments.centred(self.fit_intercept),
                                             groups=groups)
        return RidgeProblem(to_t(X), to_t(Y), to_t(sample_weight), groups=groups,
                            fit_intercept=self.fit_intercept)

    def _cv_score(self, folds, theta, solver, X, Y, sample_weight, validation_rows,
                  warm=()):
        """RidgeCV's ``best_score_``: the mean over the folds of the R^2 on the validation
        rows of each fold's fit at ``theta`` (``GridSearchCV``'s ``mean_test_score``).
        ``warm``: the folds' last solutions of the search, warm starts of a Krylov solver
        (at ``theta`` itself when the search's last point was its best)."""
        warm = list(warm) if len(warm) == len(folds) else [None] * len(folds)
        scores = []
        for fold, val, w0 in zip(folds, validation_rows, warm):
            w = one_shot(solver).solve(fold.problem, theta, w0=w0).w
            pred = safe_sparse_dot(X[val], to_numpy(w), dense_output=True) + \
                to_numpy(fold.problem.intercept(w))
            scores.append(r2_score(Y[val], pred, sample_weight=sample_weight[val]))
        return np.float64(np.mean(scores))  # as RidgeCV

    def _log_bounds(self, scale, log_shift=0.0):
        """The box of ``log(alpha)`` (shifted by ``log_shift``): twenty decades around the
        natural unit ``scale`` for ``alpha_bounds="auto"``, else the user's bounds."""
        if self.alpha_bounds == "auto":
            return np.log(scale * 1e-10), np.log(scale * 1e10)
        return tuple(np.log(self._check_bounds()) - log_shift)

    def _refit(self, problem, theta, solver, y_ndim, out_dtype, fold_solutions=()):
        """Fit ``problem`` (all the rows) at ``theta`` into ``coef_`` and ``intercept_``,
        a Krylov solver warm-started from the mean of the folds' ``fold_solutions`` (each
        fitted on most of the same rows)."""
        w0 = torch.stack(list(fold_solutions)).mean(0) if len(fold_solutions) else None
        w = one_shot(solver).solve(problem, theta, w0=w0).w
        # float32 in, float32 coefficients and intercept out, as Ridge does; without an
        # intercept Ridge stores the Python float 0.0, for one target or several.
        coef = to_numpy(w).T.astype(out_dtype)
        intercept = to_numpy(problem.intercept(w)).astype(out_dtype)
        if y_ndim == 1:
            coef, intercept = coef[0], intercept[0]
        self.coef_ = coef
        self.intercept_ = intercept if self.fit_intercept else 0.0


BilevelRidgeCV.__doc__ = BilevelRidgeCV.__doc__.replace("{n_jobs}", N_JOBS_DOC)
