"""``BilevelLassoCV`` and ``BilevelElasticNetCV``: L1-type penalties tuned by CV hypergradients."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from ._duality_gap import duality_gap
from ._progress import FitProgress
from ._tuning import N_JOBS_DOC
from ._proximal_cv import EARLY_STOPPING_CONSTRAINTS, EARLY_STOPPING_DOC, BaseProximalCV
from ._routing import FIT_PARAMS_DOC
from ._scaling import (common_exponent, exponent, ldexp, out_of_range, rescale_exponent,
                       scale_back)
from ._search_adapters._lasso import (alpha_max, enet_penalty, held_out_mse, lasso_penalties,
                                      least_squares_problem)
from .utils._sklearn_compat import _check_sample_weight, _fit_context, validate_data
from .utils._tensor import resolve_dtype, to_numpy
from .utils._memory import without_hugepage_advice
from .utils._threads import single_threaded_if_small

# Safety grid, in units of alpha_max (LassoCV's range). The CV error of the Lasso is only
# piecewise smooth, with local minima at support changes, so the start must already be
# near the best basin: 25 values-only points (a warm-started path, cheap) do that.
_ALPHA_GRID = np.logspace(0, -3, 25)
_ENET_ALPHA_GRID = np.logspace(0, -3, 7)  # half-decade steps: the optimizer refines
_L1_RATIO_GRID = (0.5, 0.1, 0.9, 0.99)
_ALPHA_FLOOR = 1e-6  # lower bound of alpha, in units of alpha_max

_COMMON_PARAMS = """cv : int, cross-validation generator or iterable, default=5
        Folds, as in ``LassoCV``. A group splitter
        (:class:`~sklearn.model_selection.GroupKFold`, ...) takes its ``groups`` from
        ``fit(X, y, groups=groups)``.
    fit_intercept : bool, default=True
        Whether to fit an unpenalised intercept.
    hypergradient : {"implicit", "forward", "reverse"}, default="implicit"
        How the hypergradient is obtained: implicit differentiation on the support of the
        solution (exact at convergence, cost independent of the number of penalties),
        forward mode (the Jacobian of the iterates propagated with them; cheap for a few
        penalties) or reverse mode (backpropagation through the iterations; memory grows
        with the iterations). The unrolled modes differentiate FISTA / ISTA.
    solver : {"auto", "cd", "fista", "ista"}, default="auto"
        Inner solver. "auto": coordinate descent (scikit-learn's) with implicit
        differentiation when the design can be held dense (sparse ones up to 1e7 entries
        are densified), FISTA otherwise (large sparse design, unrolled modes).
    step : "constant", "backtracking" or callable, default="constant"
        Step-size rule of FISTA / ISTA: ``1 / L``, a backtracking search, or a schedule
        ``k -> c_k`` giving the step ``c_k / L`` (see :class:`~skbilevel.engine.solvers.FISTA`).
    max_iter : int, default=100
        Outer evaluations: a bracketing search on the log-scale penalty when there is
        one (:class:`~skbilevel.engine.outer.Bracket`), L-BFGS-B with several. At least
        1, as in scikit-learn (the starting grid is always evaluated).
    tol : float, default=1e-4
        Outer tolerance, relative to the CV error. One penalty: stop when the search's
        model of the CV curve predicts less than this relative decrease (1e-4 is far
        below the CV error's own standard error). Several: L-BFGS-B's projected-gradient
        tolerance.
    inner_max_iter : int, default=10000
        Iterations (coordinate sweeps) per inner solve.
    inner_tol : float, default=1e-8
        Inner tolerance relative to ``alpha_max``: on the gradient mapping for FISTA / ISTA,
        ``inner_tol`` on the relative duality gap for coordinate descent. The final
        refit is solved 1000 times tighter.
    device : str, default="cpu"
        Torch device of the computation ("cuda" for a GPU).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation.
    {n_jobs}
    verbose : int, default=0
        0 prints nothing. 1 prints, as the fit goes: a header (data, folds,
        hyperparameters), the screening grid's range, one line per CV evaluation (the grid's
        included) with the seconds since ``fit`` began, the CV error and the
        hyperparameters, and a final line (the chosen values, total time, ``n_iter_``).
        2 adds the hypergradient norm and inner iteration counts to each evaluation.""" \
    .replace("{n_jobs}", N_JOBS_DOC)



class _LinearRegressionCV(RegressorMixin, BaseProximalCV):
    """Least-squares datafit, validation by the held-out MSE, refit on all the data."""

    def __init__(self, *, cv=5, fit_intercept=True, hypergradient="implicit", solver="auto",
                 step="constant", max_iter=100, tol=1e-4, inner_max_iter=10000,
                 inner_tol=1e-8, device="cpu", dtype="float64", n_jobs=None, verbose=0):
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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Python's argument errors (fit(X) without y, an extra positional argument) name
        # the class of the innermost function called; fit and predict are wrapped by
        # decorators, so each public estimator gets a thin fit and predict of its own.
        def fit(self, X, y, sample_weight=None, **params):
            return _LinearRegressionCV.fit(self, X, y, sample_weight, **params)

        def predict(self, X):
            return _LinearRegressionCV.predict(self, X)

        for method in (fit, predict):
            method.__qualname__ = f"{cls.__name__}.{method.__name__}"
            method.__doc__ = getattr(_LinearRegressionCV, method.__name__).__doc__
            setattr(cls, method.__name__, method)

    # The problems, criteria and penalties are the search adapters' (one source of truth).
    def _problem(self, X, y, sample_weight, penalty):
        return least_squares_problem(X, y, sample_weight, penalty, self.fit_intercept)

    def _criterion(self, problem, X, y, sample_weight):
        return held_out_mse(problem, X, y, sample_weight)

    def _fold_score(self, problem, w, X, y, sample_weight):
        pred = safe_sparse_dot(X, to_numpy(w)[:, 0], dense_output=True) + \
            float(to_numpy(problem.intercept(w))[0])
        return r2_score(y, pred, sample_weight=sample_weight)

    _alpha_max = staticmethod(alpha_max)

    @_fit_context(prefer_skip_nested_validation=True)
    @without_hugepage_advice
    @single_threaded_if_small
    def fit(self, X, y, sample_weight=None, **params):
        """Tune the penalty by cross-validated hypergradients, then refit on all the data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Target.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, in the fits and the validation errors.
        {params}

        Returns
        -------
        self : object
            Fitted estimator.
        """
        progress = FitProgress(self, self._user_params)  # the clock starts with fit
        split_params = self._split_params(params, sample_weight)
        X, y = validate_data(self, X, y, accept_sparse="csr", y_numeric=True,
                             dtype=[np.float64, np.float32])
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        progress.begin(X, y, sample_weight)
        # Extreme scales: fit X / 2**ex, y / 2**ey (see _scaling); alpha maps back by
        # 2**alpha_exponent, the coefficients by 2**(ey - ex), errors by 4**ey.
        name, inputs = type(self).__name__, {"X": X, "y": y}
        ex, ey = self._rescale_exponents(X, y, resolve_dtype(self.dtype))
        X, y = ldexp(X, -ex), ldexp(y, -ey)
        shift = self._theta_shift(ex, ey)
        problem, solution, theta, _ = self._fit_proximal(
            X, y.astype(np.float64), sample_weight, progress, split_params, theta_shift=shift,
            value_exponent=2 * ey)
        w = solution.w
        self._set_hyperparams(theta, ex + ey, name, inputs)
        self.best_cv_error_ = float(scale_back(self.best_cv_error_, 2 * ey, "best_cv_error_",
                                               name, {"y": inputs["y"]}))
        # LassoCV's path attributes, over the points this search evaluated.
        self.alphas_ = self.history_["alpha"]
        self.mse_path_ = self.history_["fold_objectives"]
        # scikit-learn's duality gap, whichever measure the inner solver stopped on.
        gap = float(solution.residual) if solution.residual_kind == "duality_gap" \
            else duality_gap(problem, w, theta)
        # The dtype of X for everything fitted on it, as LassoCV (0.0 without intercept).
        with np.errstate(over="ignore", under="ignore"):  # a gap of ~0 may underflow
            self.dual_gap_ = X.dtype.type(np.ldexp(gap, 2 * ey))
        self.coef_ = scale_back(to_numpy(w)[:, 0], ey - ex, "coef_", name, inputs, X.dtype)
        self.intercept_ = X.dtype.type(scale_back(to_numpy(problem.intercept(w))[0], ey,
                                                  "intercept_", name, {"y": inputs["y"]})) \
            if self.fit_intercept else 0.0
        progress.done(progress.user(to_numpy(theta)), self.best_cv_error_,
                      self.best_score_, self.n_iter_)
        return self

    fit.__doc__ = fit.__doc__.replace("{params}", FIT_PARAMS_DOC)

    @staticmethod
    def _rescale_exponents(X, y, dtype):
        """``(ex, ey)``: the powers of two ``X`` and ``y`` are divided by (see _scaling)."""
        return rescale_exponent(X, dtype), rescale_exponent(y, dtype)

    @staticmethod
    def _theta_shift(ex, ey):
        """The user's ``theta`` minus the fitted one: ``alpha = alpha' * 2**(ex + ey)``."""
        return (ex + ey) * np.log(2.0)

    def predict(self, X):
        """Predict with the refitted model.

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


class BilevelLassoCV(_LinearRegressionCV):
    __doc__ = """Lasso whose penalty minimises the K-fold CV error, by hypergradients.

    A ``LassoCV`` look-alike without a path of alphas: ``log(alpha)`` follows the gradient of
    the cross-validated MSE, from the best of up to 25 points of ``LassoCV``'s range
    (evaluated from strong to weak penalty, and stopped 2 points past the best, where the
    fits get expensive; then 3 more points between the best and each neighbour, as fine
    as ``LassoCV``'s 100-point path; the answer is never worse than the best of them). With
    ``alpha_per_feature=True`` every feature then gets its own penalty (a weighted Lasso),
    which no grid can tune. The objective is scikit-learn's,
    ``1/(2 n) ||y - X w - b||^2 + alpha ||w||_1``, and the model is refitted on all the data.

    Parameters
    ----------
    alpha_per_feature : bool, default=False
        One penalty per feature (weighted Lasso), started from the best shared one.
    {params}
    {early_stopping}

    Attributes
    ----------
    alpha_ : float or ndarray of shape (n_features,)
        Selected penalty (one per feature with ``alpha_per_feature``).
    coef_ : ndarray of shape (n_features,)
        Coefficients of the Lasso refitted at ``alpha_``.
    intercept_ : float
        Intercept, a scalar of the dtype of ``X`` (0.0 when ``fit_intercept=False``).
    best_score_ : float
        The mean over the folds of the R^2 (the default score of scikit-learn's
        regressors) on each validation fold of the fold's fit at ``alpha_``, weighted by
        ``sample_weight`` when given: ``GridSearchCV``'s ``mean_test_score`` at
        ``alpha_``. The tuned criterion is the CV MSE, ``best_cv_error_``.
    best_cv_error_ : float
        The tuned criterion at ``alpha_``: the mean over the folds of the validation MSE.
    alphas_ : ndarray of shape (n_evaluations,) or (n_evaluations, n_features)
        The penalties at which the CV error was evaluated (the coarse grid, then the
        search; with ``alpha_per_feature`` the shared stage's rows repeat one value), in
        the order of ``history_``, not sorted: ``np.argsort(alphas_)`` orders a plot.
    mse_path_ : ndarray of shape (n_evaluations, n_folds)
        Validation MSE of each fold at ``alphas_`` (the coarse grid's from fits at a
        1000 times looser tolerance).
    dual_gap_ : float
        Duality gap of the final refit (scikit-learn's definition, primal minus dual
        objective): as coordinate descent reports it with ``solver_ == "cd"``, computed at
        the refit's coefficients for the other solvers.
    n_iter_ : int
        Outer iterations.
    solver_ : str
        Inner solver used.
    history_ : dict of ndarray
        Per CV evaluation: phase, objective, alpha, gradient norm, time, inner iterations.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.LassoCV : The same model, tuned over a path of alphas.
    BilevelElasticNetCV : ``alpha`` and ``l1_ratio`` tuned jointly.

    Notes
    -----
    Data of any finite scale are fitted: when the largest entry of ``X`` or ``y`` lies
    outside ``[2**-64, 2**64]`` (``[2**-16, 2**16]`` with ``dtype="float32"``) the fit runs
    on ``X / 2**ex`` and ``y / 2**ey``, an exact division, and maps back: ``alpha_`` by
    ``2**(ex + ey)``, ``coef_`` by ``2**(ey - ex)``, the intercept by ``2**ey`` and the
    squared errors by ``4**ey``. The fitted model is therefore the same for ``(X * c,
    y * t)`` as for ``(X, y)``, with ``alpha_`` times ``c t``, as long as every fitted
    attribute fits in float64; beyond that (``y`` of ``1e200``, whose squared errors
    overflow) a ValueError names the input and its scale.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skbilevel import BilevelLassoCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = BilevelLassoCV().fit(X, y)
    >>> bool(reg.alpha_ > 0)
    True
    """.format(params=_COMMON_PARAMS, early_stopping=EARLY_STOPPING_DOC)

    _parameter_constraints: dict = {**BaseProximalCV._parameter_constraints,
                                    **EARLY_STOPPING_CONSTRAINTS,
                                    "alpha_per_feature": ["boolean"]}
    # 2 points past the best, as the search adapter's: the points past it are the costly
    # fits (weak penalties), and the refinement below then searches around the best.
    _grid_patience = 2
    _grid_step = np.log(_ALPHA_GRID[0] / _ALPHA_GRID[1])
    # 3 points between the best and each neighbour: LassoCV's spacing (a factor 1.07), fine
    # enough to find the lowest of the local minima that hundreds of support changes put
    # into the CV curve of a d >> n design (applied when n_features > n_samples only).
    _grid_refine = 3

    def __init__(self, *, alpha_per_feature=False, cv=5, fit_intercept=True,
                 hypergradient="implicit", solver="auto", step="constant", max_iter=100,
                 tol=1e-4, inner_max_iter=10000, inner_tol=1e-8, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=10, random_state=None,
                 device="cpu", dtype="float64", n_jobs=None, verbose=0):
        super().__init__(cv=cv, fit_intercept=fit_intercept, hypergradient=hypergradient,
                         solver=solver, step=step, max_iter=max_iter, tol=tol,
                         inner_max_iter=inner_max_iter, inner_tol=inner_tol, device=device,
                         dtype=dtype, n_jobs=n_jobs, verbose=verbose)
        self.alpha_per_feature = alpha_per_feature
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    def _penalties(self, n_features):
        return lasso_penalties(n_features, self.alpha_per_feature)

    def _grid(self, problem):
        alpha_max = self._alpha_max(problem)
        candidates = np.log(alpha_max * _ALPHA_GRID)[:, None]
        return candidates, (np.log(alpha_max * _ALPHA_FLOOR), np.log(alpha_max))

    def _user_params(self, theta):
        alpha = np.exp(np.asarray(theta))
        return {"alpha": alpha if self.alpha_per_feature else float(alpha[0])}

    def _set_hyperparams(self, theta, alpha_exponent, name, inputs):
        alpha = scale_back(np.exp(to_numpy(theta)), alpha_exponent, "alpha_", name, inputs)
        self.alpha_ = alpha if self.alpha_per_feature else alpha[0]  # np.float64, as LassoCV



class BilevelElasticNetCV(_LinearRegressionCV):
    __doc__ = """Elastic net whose ``alpha`` and ``l1_ratio`` minimise the CV error jointly.

    An ``ElasticNetCV`` look-alike without the grid of ``alphas x l1_ratio``: both
    hyperparameters are continuous, ``theta = [log alpha, logit l1_ratio]``, and follow the
    gradient of the cross-validated MSE from the best of up to 28 points (7 alphas, half a
    decade apart, for each of ``l1_ratio`` = 0.5, 0.1, 0.9, 0.99; each path of alphas is
    stopped 2 points past its best), so the answer is never worse than them. The objective is
    scikit-learn's, ``1/(2 n) ||y - X w - b||^2 + alpha l1_ratio ||w||_1
    + alpha (1 - l1_ratio) / 2 ||w||^2``, refitted on all the data.

    Parameters
    ----------
    {params}

    Attributes
    ----------
    alpha_ : float
        Selected penalty strength.
    l1_ratio_ : float
        Selected mix of L1 and L2 (1 is the Lasso).
    coef_ : ndarray of shape (n_features,)
        Coefficients refitted at ``(alpha_, l1_ratio_)``.
    intercept_ : float
        Intercept, a scalar of the dtype of ``X`` (0.0 when ``fit_intercept=False``).
    best_score_ : float
        The mean over the folds of the R^2 (the default score of scikit-learn's
        regressors) on each validation fold of the fold's fit at ``(alpha_, l1_ratio_)``,
        weighted by ``sample_weight`` when given: ``GridSearchCV``'s ``mean_test_score``
        there. The tuned criterion is the CV MSE, ``best_cv_error_``.
    best_cv_error_ : float
        The tuned criterion at the selected point: the mean over the folds of the
        validation MSE.
    alphas_ : ndarray of shape (n_evaluations,)
        The ``alpha`` of every point at which the CV error was evaluated (its
        ``l1_ratio`` is ``history_["l1_ratio"]``), in the order of ``history_``.
    mse_path_ : ndarray of shape (n_evaluations, n_folds)
        Validation MSE of each fold at those points (the coarse grid's from fits at a
        1000 times looser tolerance).
    dual_gap_ : float
        Duality gap of the final refit (scikit-learn's definition, primal minus dual
        objective): as coordinate descent reports it with ``solver_ == "cd"``, computed at
        the refit's coefficients for the other solvers.
    n_iter_ : int
        Outer iterations.
    solver_ : str
        Inner solver used.
    history_ : dict of ndarray
        Per CV evaluation: phase, objective, alpha, l1_ratio, gradient norm, time, inner
        iterations.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.ElasticNetCV : The same model, tuned over a grid.
    BilevelLassoCV : The Lasso (``l1_ratio=1``), optionally one penalty per feature.

    Notes
    -----
    ``X`` and ``y`` of any finite scale, within ``1e38`` of each other, are fitted: when
    the largest entry of either lies outside ``[2**-64, 2**64]`` (``[2**-16, 2**16]`` with
    ``dtype="float32"``) the fit runs on both divided by one power of two ``2**e``, an
    exact division that leaves ``l1_ratio`` as it is, and maps back: ``alpha_`` by
    ``4**e``, the intercept by ``2**e`` and the squared errors by ``4**e``. ``(X * c,
    y * c)`` thus gives the model of ``(X, y)`` with ``alpha_`` times ``c**2``. Scaling
    ``X`` or ``y`` alone is another matter, as for ``ElasticNetCV``: ``l1_ratio`` weighs an
    L1 penalty in units of ``y / X`` against an L2 one in units of ``(y / X)**2``, and the
    search's range of ``l1_ratio`` is in the user's units; standardise the data when
    their scales are far apart. Beyond ``1e38`` apart, or when a fitted attribute would
    leave float64, a ValueError names the inputs and their scales.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from skbilevel import BilevelElasticNetCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = BilevelElasticNetCV().fit(X, y)
    >>> bool(0 < reg.l1_ratio_ < 1)
    True
    """.format(params=_COMMON_PARAMS)

    _grid_patience = 2  # along each l1_ratio's path of alphas
    _hyper_names = ("alpha", "l1_ratio")
    _grid_path_length = len(_ENET_ALPHA_GRID)
    _grid_step = np.log(_ENET_ALPHA_GRID[0] / _ENET_ALPHA_GRID[1])

    def _penalties(self, n_features):
        return enet_penalty(), None

    def _grid(self, problem):
        alpha_max = self._alpha_max(problem)
        candidates = [(np.log(self._alpha_max(problem, rho) * a), np.log(rho / (1 - rho)))
                      for rho in _L1_RATIO_GRID for a in _ENET_ALPHA_GRID]
        # l1_ratio in [0.01, 1 - 1e-6]: below, alpha_max(l1_ratio) leaves any sensible box.
        low = np.array([np.log(alpha_max * _ALPHA_FLOOR), np.log(0.01 / 0.99)])
        high = np.array([np.log(alpha_max / 0.01), np.log((1 - 1e-6) / 1e-6)])
        return np.array(candidates), (low, high)

    def _user_params(self, theta):
        theta = np.asarray(theta)
        return {"alpha": float(np.exp(theta[0])), "l1_ratio": float(1 / (1 + np.exp(-theta[1])))}

    def _set_hyperparams(self, theta, alpha_exponent, name, inputs):
        params = self._user_params(to_numpy(theta))
        # numpy scalars, as ElasticNetCV's
        self.alpha_ = np.float64(scale_back(params["alpha"], alpha_exponent, "alpha_", name,
                                            inputs))
        self.l1_ratio_ = np.float64(params["l1_ratio"])

    @staticmethod
    def _rescale_exponents(X, y, dtype):
        """One power of two for ``X`` and ``y``: it leaves ``l1_ratio`` as it is (the L1
        penalty is in units of ``y / X``, the L2 one of ``(y / X)**2``), so ``X`` and ``y``
        can be no further apart in scale than the safe window is wide."""
        e = common_exponent({"X": exponent(X), "y": exponent(y)}, dtype)
        if e is None:
            raise ValueError(out_of_range(
                "BilevelElasticNetCV", {"X": X, "y": y},
                "l1_ratio balances an L1 penalty in units of y / X against an L2 one in "
                "units of (y / X)**2, and these scales are too far apart for one float64 "
                "exponent to bring both into range"))
        return e, e

    @staticmethod
    def _theta_shift(ex, ey):
        """``alpha = alpha' * 2**(ex + ey)``, ``l1_ratio`` unchanged (``ex == ey``)."""
        return np.array([(ex + ey) * np.log(2.0), 0.0])
