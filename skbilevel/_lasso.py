"""``BilevelLassoCV``: the Lasso penalty chosen by cross-validation hypergradients."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from ._base import history_to_arrays, make_splits, warn_if_not_converged
from .engine import Fold, minimize_hyperparams
from .engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
from .engine.inner import L1, LassoProblem, WeightedL1
from .engine.outer import HeldOutMSE, make_optimizer
from .engine.solvers import FISTA, ProximalGradient
from .utils._sklearn_compat import (Interval, StrOptions, _check_sample_weight, _fit_context,
                                    validate_data)
from .utils._tensor import resolve_device, resolve_dtype, to_numpy, to_tensor

_METHODS = {"implicit": ImplicitSupport, "forward": ForwardMode, "reverse": ReverseMode}
_SOLVERS = {"fista": FISTA, "ista": ProximalGradient}
_GRID = np.logspace(0, -4, 9)  # the safety grid, in units of alpha_max


class BilevelLassoCV(RegressorMixin, BaseEstimator):
    """Lasso whose penalty minimises the K-fold CV error, by hypergradients.

    A ``LassoCV`` look-alike without a path of alphas: ``log(alpha)`` follows the gradient of
    the cross-validated MSE, obtained by differentiating the proximal solver (FISTA or
    ISTA): implicitly on the support of the solution, or by forward / reverse automatic
    differentiation of its iterations. With ``alpha_per_feature=True`` every feature gets its
    own penalty (a weighted Lasso), which no grid can tune. The objective is scikit-learn's,
    ``1/(2 n) ||y - X w - b||^2 + alpha ||w||_1``, and the model is refitted on all the data.

    Parameters
    ----------
    alpha_per_feature : bool, default=False
        One penalty per feature (weighted Lasso), started from the best shared one.
    cv : int, cross-validation generator or iterable, default=5
        Folds, as in ``LassoCV``.
    fit_intercept : bool, default=True
        Whether to fit an unpenalised intercept.
    hypergradient : {"implicit", "forward", "reverse"}, default="implicit"
        How the hypergradient is obtained: implicit differentiation on the support (exact
        at the solution, cost independent of the number of penalties), forward mode
        (Jacobian of the iterates, for few penalties) or reverse mode (backpropagation
        through the iterations).
    solver : {"fista", "ista"}, default="fista"
        Inner proximal solver.
    step : "constant", "backtracking" or callable, default="constant"
        Step-size rule of the inner solver (see :class:`~skbilevel.engine.solvers.FISTA`).
    max_iter : int, default=100
        Outer iterations (L-BFGS-B on ``log(alpha)``).
    tol : float, default=1e-5
        Outer tolerance, relative to the CV error.
    inner_max_iter : int, default=10000
        Inner iterations per solve.
    inner_tol : float, default=1e-9
        Inner tolerance on the gradient mapping, relative to ``alpha_max``.
    device : str, default="cpu"
        Torch device of the computation.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation.
    n_jobs : int, default=None
        Folds evaluated in parallel through joblib.
    verbose : int, default=0
        Progress of the outer loop.

    Attributes
    ----------
    alpha_ : float or ndarray of shape (n_features,)
        Selected penalty (one per feature with ``alpha_per_feature``).
    coef_ : ndarray of shape (n_features,)
        Coefficients of the Lasso refitted at ``alpha_``.
    intercept_ : float
        Intercept.
    best_score_ : float
        Negative CV MSE at ``alpha_``.
    n_iter_ : int
        Outer iterations.
    history_ : dict of ndarray
        Per CV evaluation: phase, objective, alpha, gradient norm, time, inner iterations.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.LassoCV : The same model, tuned over a path of alphas.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skbilevel import BilevelLassoCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = BilevelLassoCV().fit(X, y)
    >>> bool(reg.alpha_ > 0)
    True
    """

    _parameter_constraints: dict = {
        "alpha_per_feature": ["boolean"],
        "cv": ["cv_object"],
        "fit_intercept": ["boolean"],
        "hypergradient": [StrOptions(set(_METHODS))],
        "solver": [StrOptions(set(_SOLVERS))],
        "step": [StrOptions({"constant", "backtracking"}), callable],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "inner_max_iter": [Interval(Integral, 1, None, closed="left")],
        "inner_tol": [Interval(Real, 0, None, closed="left")],
        "device": [str],
        "dtype": [StrOptions({"float64", "float32"})],
        "n_jobs": [Integral, None],
        "verbose": ["verbose"],
    }

    def __init__(self, *, alpha_per_feature=False, cv=5, fit_intercept=True,
                 hypergradient="implicit", solver="fista", step="constant", max_iter=100,
                 tol=1e-5, inner_max_iter=10000, inner_tol=1e-9, device="cpu",
                 dtype="float64", n_jobs=None, verbose=0):
        self.alpha_per_feature = alpha_per_feature
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.hypergradient = hypergradient
        self.solver = solver
        self.step = step
        self.max_iter = max_iter
        self.tol = tol
        self.inner_max_iter = inner_max_iter
        self.inner_tol = inner_tol
        self.device = device
        self.dtype = dtype
        self.n_jobs = n_jobs
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Tune ``alpha`` by cross-validated hypergradients, then refit on all the data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Target.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, in the fits and the validation errors.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        X, y = validate_data(self, X, y, accept_sparse="csr", y_numeric=True,
                             dtype=[np.float64, np.float32])
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        n, d = X.shape
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)
        to_t = lambda a: to_tensor(a, dtype, device)  # noqa: E731
        Y = y.reshape(n, 1)
        splits = make_splits(self.cv, X, Y)

        def problem(rows, penalty):
            return LassoProblem(to_t(X[rows]), to_t(Y[rows]), penalty,
                                to_t(sample_weight[rows]), self.fit_intercept)

        full = problem(np.arange(n), L1())
        # alpha_max: the smallest penalty whose solution is 0 (LassoCV's upper end).
        alpha_max = float(full.xty.abs().max())
        alpha_max = alpha_max if alpha_max > 0 else 1.0
        solver = _SOLVERS[self.solver](step=self.step, max_iter=self.inner_max_iter,
                                       tol=self.inner_tol * alpha_max)
        bounds = (np.log(alpha_max * 1e-6), np.log(alpha_max))
        folds = [Fold(p, HeldOutMSE.for_problem(p, to_t(X[va]), to_t(Y[va]),
                                                to_t(sample_weight[va])))
                 for p, va in ((problem(tr, L1()), va) for tr, va in splits)]
        tune = dict(solver=solver, method=_METHODS[self.hypergradient](),
                    optimizer=make_optimizer("lbfgs", max_iter=self.max_iter, tol=self.tol),
                    bounds=bounds, n_jobs=self.n_jobs, verbose=self.verbose)
        grid = torch.as_tensor(np.log(alpha_max * _GRID), dtype=dtype, device=device)[:, None]
        result = minimize_hyperparams(folds, grid[0], start_grid=grid[1:], **tune)
        if self.alpha_per_feature:
            shared = result
            weighted = [Fold(problem(tr, WeightedL1(d)), f.criterion)
                        for (tr, _), f in zip(splits, folds)]
            result = minimize_hyperparams(weighted, shared.theta.expand(d).clone(), **tune)
            for rec in shared.history:
                rec["theta"] = np.full(d, rec["theta"][0])
            result.history[:0] = shared.history
        warn_if_not_converged(result, type(self).__name__)
        theta = result.theta
        alpha = np.exp(to_numpy(theta))
        self.alpha_ = alpha if self.alpha_per_feature else float(alpha[0])
        self.best_score_ = -float(result.value)
        self.n_iter_ = max(1, result.n_iter)
        self.history_ = history_to_arrays(result.history, lambda t: np.exp(np.asarray(t)))
        refit = full if not self.alpha_per_feature else problem(np.arange(n), WeightedL1(d))
        w = solver.solve(refit, theta).w
        self.coef_ = to_numpy(w)[:, 0].astype(X.dtype)
        self.intercept_ = float(to_numpy(refit.intercept(w))[0]) if self.fit_intercept else 0.0
        return self

    def predict(self, X):
        """Predict with the refitted Lasso.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted values.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False,
                          dtype=[np.float64, np.float32])
        return safe_sparse_dot(X, self.coef_, dense_output=True) + self.intercept_
