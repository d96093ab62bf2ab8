"""``BilevelLogisticRegressionCV``: ``C`` (or one per feature) by CV log-loss hypergradients."""

from __future__ import annotations

from numbers import Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.extmath import safe_sparse_dot

from ._classifier import LinearClassifierOutputs, encode_classes
from ._logistic_problem import logistic_criterion, logistic_problem
from ._logistic_stacked import STACK_AUTO_TOL, SideBySideFolds, stack_applies
from ._progress import FitProgress
from ._tuning import N_JOBS_DOC
from ._proximal_cv import EARLY_STOPPING_CONSTRAINTS, EARLY_STOPPING_DOC, BaseProximalCV
from ._routing import FIT_PARAMS_DOC
from ._scaling import feature_unit, ldexp, scale_back
from .engine.inner import L1, L2, WeightedL1
from .utils._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from .utils._tensor import resolve_dtype, to_numpy
from .utils._memory import without_hugepage_advice
from .utils._threads import single_threaded_if_small

_LOG_C_GRID = np.linspace(-4, 4, 9)  # safety grid of log10(C), strong to weak penalty
_LOG_C_BOUNDS = (-4.0, 4.0)  # log10(C): LogisticRegressionCV's default range


class BilevelLogisticRegressionCV(LinearClassifierOutputs, ClassifierMixin, BaseProximalCV):
    __doc__ = """Logistic regression whose ``C`` minimises the K-fold CV log-loss (hypergradients).

    A ``LogisticRegressionCV`` look-alike without a list of ``Cs``: ``log C`` follows the
    gradient of the cross-validated log-loss from the best of 9 values of ``C`` in
    ``[1e-4, 1e4] / u**2`` (``/ u`` for ``penalty="l1"``), within the same box (so the
    answer is never worse than them). ``u`` is the unit of the features: the median
    standard deviation of the nonzero columns (their root mean square without
    ``fit_intercept``), rounded to a power of ten; it is 1, and the range
    ``LogisticRegressionCV``'s, for standardised data, and it makes ``X * c`` and ``X``
    give the same decision function (with ``C_`` divided by ``c**2``) whatever ``c``,
    as long as ``C_`` fits in float64 (a ValueError names ``X`` and its scale
    otherwise); features whose unit leaves ``[2**-16, 2**16]`` are fitted divided by a
    power of two, exactly, and mapped back. The model and its ``C``
    convention are ``LogisticRegression``'s (binary or multinomial, unpenalised intercept,
    ``C`` against the *sum* of the losses), and it is refitted on all the data. With
    ``C_per_feature=True`` every feature then gets its own ``C`` (binary problems), which
    no grid can tune. ``penalty="l1"`` tunes the sparse model instead.

    Parameters
    ----------
    penalty : {"l2", "l1"}, default="l2"
        Penalty of the model. ``"l2"`` is solved by L-BFGS; ``"l1"`` by proximal Newton
        steps on working sets for two classes (``solver="newton-cd"``), by FISTA for
        more. Their tolerances are measured in a diagonally scaled variable, so that they
        do not depend on the units of the features (the model does: the penalty is on the
        coefficients, as in scikit-learn). A dense ``"l2"`` problem of 65 to 500
        coefficients (binary, or all classes' together) is solved in the variable of the
        Cholesky factor of its Hessian estimated from a subset of the rows (see
        :class:`~skbilevel.engine.solvers.LBFGS`),
        which also preconditions the adjoint systems: 3-4 times fewer passes over the
        data. A binary ``"l2"`` problem on a dense design of at least 2,000,000 entries
        solves its folds side by side, as one problem on the rows of ``X`` (no copy of
        the folds, one pass over ``X`` for all of them; its screening grid, the search's
        fits (above 499 features; checked in float64) and the adjoint systems run their
        products in float32 on a copy of ``X``; see the user guide). With
        ``"l1"`` the whole safety grid is evaluated: its CV error can rise before it
        falls.
    C_per_feature : bool, default=False
        One ``C`` per feature, started from the best shared one (binary problems).
    {early_stopping}
    cv : int, cross-validation generator or iterable, default=5
        Folds (stratified for an integer), as in ``LogisticRegressionCV``. A group
        splitter (:class:`~sklearn.model_selection.GroupKFold`,
        :class:`~sklearn.model_selection.StratifiedGroupKFold`, ...) takes its ``groups``
        from ``fit(X, y, groups=groups)``.
    fit_intercept : bool, default=True
        Whether to fit an unpenalised intercept.
    class_weight : dict or "balanced", default=None
        Class weights, multiplied into the sample weights (fits and validation losses).
    hypergradient : {"implicit", "forward", "reverse"}, default="implicit"
        Implicit differentiation of the solution (on its support for "l1"), or forward /
        reverse differentiation of the FISTA / ISTA iterations.
    solver : {"auto", "lbfgs", "newton-cd", "fista", "ista"}, default="auto"
        Inner solver. "auto": with implicit differentiation, L-BFGS for "l2" (the smooth
        case) and "newton-cd" for a binary "l1" problem (proximal Newton, as glmnet and
        liblinear: each step's quadratic model solved by scikit-learn's coordinate
        descent, so the support and the KKT conditions are exact); FISTA otherwise.
    step : "constant", "backtracking" or callable, default="constant"
        Step-size rule of FISTA / ISTA (see :class:`~skbilevel.engine.solvers.FISTA`).
    max_iter : int, default=100
        Outer evaluations: a bracketing search on ``log C``
        (:class:`~skbilevel.engine.outer.Bracket`), L-BFGS-B with ``C_per_feature``. At
        least 1, as in scikit-learn (the starting grid is always evaluated).
    tol : float, default=1e-4
        Outer tolerance, relative to the CV log-loss. One ``C``: stop when the search's
        model of the CV curve predicts less than this relative decrease (1e-4 is far
        below the CV error's own standard error). ``C_per_feature``: L-BFGS-B's
        projected-gradient tolerance.
    inner_max_iter : int, default=10000
        Iterations per inner solve.
    inner_tol : float or "auto", default="auto"
        Inner tolerance relative to ``||grad f(0)||_inf`` (on the gradient for L-BFGS,
        measured per unit of each feature's scale so that units do not matter; on the
        gradient mapping for FISTA / ISTA) of the fold fits; hypergradients come out
        to about this relative accuracy. ``"auto"``: 1e-8 for designs of at most 1e6
        entries, 1e-6 above, where each factor of 10 costs L-BFGS several passes over the
        data (1e-6 locates the CV minimum as well; the tuned ``C`` then varies in its
        fifth digit with the rounding of the solver's path); folds solved side by side
        (see ``penalty``) solve the search's fits to 3e-5 (with more than 499 features,
        in float32 and then checked in float64; the same ``C`` to 1e-3). The final refit
        is solved 1000 times tighter than the search's fits.
    device : str, default="cpu"
        Torch device of the computation ("cuda" for a GPU).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation.
    {n_jobs}
    verbose : int, default=0
        0 prints nothing. 1 prints, as the fit goes: a header (data, folds,
        hyperparameters), the screening grid's range of ``C``, one line per CV evaluation
        (the grid's included) with the seconds since ``fit`` began, the CV log-loss and
        ``C``, and a final line (the chosen ``C``, total time, ``n_iter_``). 2 adds the
        hypergradient norm and inner iteration counts to each evaluation.

    Attributes
    ----------
    C_ : float or ndarray of shape (n_features,)
        Selected inverse penalty (one per feature with ``C_per_feature``).
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients refitted at ``C_``; float64 whatever the dtype of ``X``, as
        ``LogisticRegressionCV``'s (whose outputs are then float64 too).
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts (float64).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    best_score_ : float
        The mean over the folds of the accuracy (the default scorer of
        ``LogisticRegressionCV``, whose ``scores_`` hold it; it has no ``best_score_``) on
        each validation fold of the fold's fit at ``C_``, weighted by ``sample_weight`` and
        ``class_weight`` as the validation losses are. The tuned criterion is the CV
        log-loss, ``best_cv_error_``.
    best_cv_error_ : float
        The tuned criterion at ``C_``: the mean over the folds of the validation
        log-loss.
    Cs_ : ndarray of shape (n_evaluations,) or (n_evaluations, n_features)
        The ``C`` at which the CV log-loss was evaluated (the coarse grid, then the
        search), in the order of ``history_``, not sorted.
    scores_ : ndarray of shape (n_folds, 1, n_evaluations)
        Negative validation log-loss of each fold at ``Cs_`` (the tuned criterion; the
        layout of ``LogisticRegressionCV(use_legacy_attributes=False)``, whose middle
        axis runs over ``l1_ratios_``; the twin's hold accuracies, which here are only
        computed at ``C_``, as ``best_score_``). The coarse grid's come from fits at a 1000
        times looser tolerance.
    coefs_paths_ : ndarray of shape (n_folds, 1, n_evaluations, n_rows, n_dof)
        Each fold's coefficients at ``Cs_``, the intercept last when fitted (``n_dof =
        n_features + fit_intercept``; ``n_rows`` is 1 for a binary problem, ``n_classes``
        otherwise).
    l1_ratio_ : float
        0.0 for ``penalty="l2"``, 1.0 for ``"l1"`` (scikit-learn's convention).
    l1_ratios_ : ndarray of shape (1,)
        ``[l1_ratio_]``.
    n_iter_ : int
        Outer iterations.
    solver_ : str
        Inner solver used.
    history_ : dict of ndarray
        Per CV evaluation: phase, objective, C, gradient norm, time, inner iterations.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.LogisticRegressionCV : The same model, tuned over a list of Cs.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbilevel import BilevelLogisticRegressionCV
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), BilevelLogisticRegressionCV()).fit(X, y)
    >>> bool(clf.score(X, y) > 0.95)
    True
    """.replace("{early_stopping}", EARLY_STOPPING_DOC).replace("{n_jobs}", N_JOBS_DOC)

    _parameter_constraints: dict = {
        **BaseProximalCV._parameter_constraints,
        "penalty": [StrOptions({"l1", "l2"})],
        "C_per_feature": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "solver": [StrOptions({"auto", "lbfgs", "newton-cd", "fista", "ista"})],
        "inner_tol": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        **EARLY_STOPPING_CONSTRAINTS,
    }
    _classifier = True
    _keep_solution_path = True  # coefs_paths_
    _hyper_names = ("C",)
    _grid_step = np.log(10.0) * (_LOG_C_GRID[1] - _LOG_C_GRID[0])

    @property
    def _grid_patience(self):
        # An L2 path's CV error has one minimum: stop a point past it. An L1 path can rise
        # before it falls (a noise feature in large units, cheap to penalise, enters
        # first): it stops two points past its best once that best beats the null model
        # (_grid_patience_below_first), where the weak penalties' fits cost the most.
        return 2 if self.penalty == "l1" else 1

    @property
    def _warm_start(self):
        # The L2 screening path runs strong to weak penalty and stops a point past its
        # best: the search then starts near the best point, whose fold solutions (plain
        # vectors) are a closer start than the path's last point's.
        return "nearest" if self.penalty == "l2" else "last"

    @property
    def _bracket_start(self):
        # The L2 CV log-loss in log C is steep towards strong penalties and flat towards
        # weak ones: the vertex of a parabola through three grid values lands on the flat
        # side (50,000 x 1,000, minimum at C = 0.030 between grid values at 0.01 and 0.1:
        # the parabola started at 0.137, and the search took 4 evaluations; the cubic
        # through four values started at 0.031 and took 1; seeds 0 and 1: 2 against 2
        # and 3). The search adapter's reason for the same choice.
        return "cubic" if self.penalty == "l2" else "parabola"

    @property
    def _grid_patience_below_first(self):
        return self.penalty == "l1"

    def __init__(self, *, penalty="l2", C_per_feature=False, early_stopping="auto",
                 validation_fraction=0.2, n_iter_no_change=10, random_state=None, cv=5,
                 fit_intercept=True, class_weight=None, hypergradient="implicit",
                 solver="auto", step="constant", max_iter=100, tol=1e-4,
                 inner_max_iter=10000, inner_tol="auto", device="cpu", dtype="float64",
                 n_jobs=None, verbose=0):
        self.penalty = penalty
        self.C_per_feature = C_per_feature
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.cv = cv
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
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

    # theta = -log C; the folds are the search adapter's (see _logistic_problem), over the
    # classes of all the data, as LogisticRegressionCV's.
    def _problem(self, X, y, sample_weight, penalty):
        return logistic_problem(X, y, len(self.classes_), sample_weight, penalty,
                                self.fit_intercept)

    def _criterion(self, problem, X, y, sample_weight):
        return logistic_criterion(problem, X, y, sample_weight)

    def _penalties(self, n_features):
        shared = L1() if self.penalty == "l1" else L2()
        if not self.C_per_feature:
            return shared, None
        if len(self.classes_) > 2:
            raise ValueError("C_per_feature=True is implemented for binary problems only; "
                             f"y has {len(self.classes_)} classes")
        return shared, WeightedL1(n_features) if self.penalty == "l1" else L2(n_features)

    def _grid(self, problem):
        candidates = -np.log(10.0 ** _LOG_C_GRID)[:, None]
        return candidates, (-np.log(10.0) * _LOG_C_BOUNDS[1], -np.log(10.0) * _LOG_C_BOUNDS[0])

    def _user_params(self, theta):
        C = np.exp(-np.asarray(theta))
        return {"C": C if self.C_per_feature else float(C[0])}

    @_fit_context(prefer_skip_nested_validation=True)
    @without_hugepage_advice
    @single_threaded_if_small
    def fit(self, X, y, sample_weight=None, **params):
        """Tune ``C`` by cross-validated hypergradients, then refit on all the data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights, in the fits and the validation losses.
        {params}

        Returns
        -------
        self : object
            Fitted estimator.
        """
        split_params = self._split_params(params, sample_weight)
        progress = FitProgress(self, self._user_params)  # the clock starts with fit
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32])
        codes, sample_weight = encode_classes(self, y, X, sample_weight)
        progress.begin(X, y, sample_weight)
        # Extreme scales: fit X / 2**ex (see _scaling), where C' = C * 2**(power * ex) and
        # coef = coef' / 2**ex. The grid and box of C are in units of the features, to the
        # nearest decade (see the class docstring).
        name, inputs = type(self).__name__, {"X": X}
        ex, log2_unit = feature_unit(X, resolve_dtype(self.dtype), self.fit_intercept)
        X = ldexp(X, -ex)
        power = 1 if self.penalty == "l1" else 2  # ||w||_1 / C or ||w||^2 / (2 C)
        decade = int(np.round(log2_unit * np.log10(2.0)))
        problem, solution, theta, path = self._fit_proximal(
            X, codes, sample_weight, progress, split_params,
            theta_shift=power * ex * np.log(2.0),
            grid_shift=power * (decade * np.log(10.0) - ex * np.log(2.0)))
        C = scale_back(np.exp(-to_numpy(theta)), -power * ex, "C_", name, inputs)
        self.C_ = C if self.C_per_feature else float(C[0])
        coef, intercept = self._coef_intercept(problem.datafit, solution.w)
        # float64 whatever X's dtype: LogisticRegressionCV converts X to float64.
        self.coef_ = scale_back(coef, -ex, "coef_", name, inputs)
        self.intercept_ = intercept
        # LogisticRegressionCV's path attributes (its use_legacy_attributes=False layout:
        # folds, l1_ratios, Cs, ...), over the points this search evaluated.
        self.l1_ratio_ = 1.0 if self.penalty == "l1" else 0.0
        self.l1_ratios_ = np.array([self.l1_ratio_])
        self.Cs_ = self.history_["C"]
        self.scores_ = -self.history_["fold_objectives"].T[:, None, :]
        rows = [[self._dof_rows(problem.datafit, w) for w in folds] for folds in path]
        paths = np.asarray(rows).transpose(1, 0, 2, 3)[:, None]
        d = self.coef_.shape[1]
        paths[..., :d] = scale_back(paths[..., :d], -ex, "coefs_paths_", name, inputs)
        self.coefs_paths_ = paths
        progress.done({"C": self.C_}, self.best_cv_error_,
                      self.best_score_, self.n_iter_)
        return self

    fit.__doc__ = fit.__doc__.replace("{params}", FIT_PARAMS_DOC)

    def _side_by_side(self, full, X, codes, splits, penalty, solver_name, layout, held):
        if not stack_applies(self, X, solver_name, layout, held):
            return None
        datafit = full.datafit  # the tensors of all the rows, shared without a copy
        X = datafit.design.X
        return SideBySideFolds(X, torch.as_tensor(codes, device=X.device),
                               datafit.sample_weight, splits, penalty, self.fit_intercept,
                               inner_tol=STACK_AUTO_TOL if self.inner_tol == "auto" else None)

    def _fold_score(self, problem, w, X, codes, sample_weight):
        coef, intercept = self._coef_intercept(problem.datafit, w)
        decision = safe_sparse_dot(X, coef.T, dense_output=True) + intercept
        predicted = (decision[:, 0] > 0).astype(int) if decision.shape[1] == 1 else \
            decision.argmax(1)
        # accuracy_score's input checks cost ~9 ms a fold, as much as a Newton solve.
        return float(np.average(predicted == codes, weights=sample_weight))

    def _dof_rows(self, datafit, w):
        """``[coef, intercept]`` of an inner solution, ``(n_rows, n_dof)``."""
        coef, intercept = self._coef_intercept(datafit, w)
        return np.hstack([coef, intercept[:, None]]) if self.fit_intercept else coef

    def _coef_intercept(self, datafit, w):
        """``(coef (n_rows, n_features), intercept (n_rows,))`` of an inner solution."""
        if len(self.classes_) == 2:
            coef = to_numpy(w[:datafit.n_features]).T
            intercept = to_numpy(datafit.intercept(w))
        else:
            coef = to_numpy(datafit.coef(w)).T
            intercept = to_numpy(datafit.intercept(w))
            intercept = intercept - intercept.mean()  # softmax is blind to a common shift
        intercept = intercept.reshape(-1) if self.fit_intercept else np.zeros(coef.shape[0])
        return coef, intercept
