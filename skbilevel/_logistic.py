"""``HDMLogisticRegression``: scikit-learn's L2 logistic regression, fitted by HDM."""

from __future__ import annotations

from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from ._classifier import LinearClassifierOutputs, encode_classes
from ._progress import FitProgress
from ._scaling import feature_unit, ldexp, out_of_range, scale_back
from .engine.hdm import VARIANTS
from .engine.inner import L2, ProximalProblem
from .engine.solvers import HDMSolver
from .utils._sklearn_compat import (CallbackSupportMixin, Interval, StrOptions,
                                    _fit_context, validate_data)
from .utils._tensor import resolve_device, resolve_dtype, to_numpy, to_tensor
from .utils._memory import without_hugepage_advice
from .utils._threads import single_threaded_if_small
from .utils._warnings import warn

_HISTORY_KEYS = ("objective", "grad_inf_norm", "P_mean", "P_min", "P_max", "beta", "accepted")
# verbose=1 reports these evaluations, then every 100th: quick feedback at the start, then
# at most max_iter / 100 lines however long the fit (each line at most ~100 gradients apart).
_FIRST_REPORTED = (1, 2, 5, 10, 20, 50)
_REPORT_EVERY = 100


class HDMLogisticRegression(LinearClassifierOutputs, ClassifierMixin, CallbackSupportMixin,
                            BaseEstimator):
    """L2-regularised logistic regression fitted by hypergradient descent (HDM).

    The model and objective of ``LogisticRegression(penalty="l2")``: the mean (weighted)
    log-loss plus ``||coef||^2 / (2 C sum(sample_weight))``, the intercept unpenalised,
    a sigmoid for two classes and a softmax over all classes otherwise. The optimizer is
    HDM (Chu, Gao, Ye & Udell, ICML 2025): gradient steps whose per-coordinate stepsizes
    and heavy-ball momentum are learned online from the hypergradient of the decrease they
    achieve; trial points that do not decrease the objective are rejected (null steps). Its
    state is a handful of vectors of the size of ``coef_``, against ``2 m`` of them for
    L-BFGS with memory ``m``, and it needs no line search.

    Read more in the :ref:`User Guide <hdm_guide>`.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularisation strength, as in ``LogisticRegression``.
    fit_intercept : bool, default=True
        Whether to fit an (unpenalised) intercept.
    class_weight : dict or "balanced", default=None
        Weights of the classes, multiplied into ``sample_weight``.
    variant : {"osgm-best", "hdm-best", "hdm-hb", "hdm-diag", "hdm"}, default="osgm-best"
        Which HDM: ``"hdm"`` learns one stepsize, ``"hdm-diag"`` one per coefficient,
        ``"hdm-hb"`` adds a learned heavy-ball momentum, ``"hdm-best"`` adds a one-off
        curvature re-estimate (the paper's practical method), ``"osgm-best"`` is the
        follow-up's OSGM-Best (smaller learning rates, a lookahead line search).
    lr : "auto" or float, default="auto"
        Learning rate of the stepsizes; "auto" is ``10 / L`` (``1 / L`` for ``"hdm"`` and
        ``"osgm-best"``) with ``L`` the smoothness estimate.
    beta_lr : "auto" or float, default="auto"
        Learning rate of the momentum; "auto" is ``min(1, L)`` for ``"osgm-best"``, 10
        otherwise.
    smoothness : {"sample", "power"}, default="sample"
        Where ``L`` comes from. "sample": three finite differences of the gradient at the
        start (:func:`~skbilevel.engine.linalg.sample_smoothness`; three gradient
        evaluations). "power": ``||[X, 1]||_2^2 / n + 1 / (C n)`` from 30 deterministic
        power iterations (about 30 gradient evaluations' worth of products), the estimate
        HDM-Best's reference code uses.
    max_iter : int, default=1000
        Budget of gradient evaluations (each iteration costs one function and one gradient
        evaluation, at the same point, plus objective-only evaluations in OSGM-Best's
        lookahead; ``smoothness="sample"`` spends three of them), at least 1 as in
        scikit-learn.
    tol : float, default=1e-4
        Stop when the gradient's infinity norm is at most ``tol`` (the ``gtol`` of the
        ``lbfgs`` solver).
    warm_start : bool, default=False
        Start from the previous ``coef_`` and ``intercept_`` when the shapes match.
    device : str, default="cpu"
        Torch device of the computation, e.g. ``"cuda"``.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the computation.
    random_state : int, RandomState or None, default=None
        Unused: HDM and its smoothness estimate are deterministic. Kept so that the
        estimator drops into code that sets it.
    verbose : int, default=0
        0 prints nothing. 1 prints a header, then the seconds since ``fit`` began, the
        objective, the gradient's infinity norm, the mean stepsize and the momentum at
        evaluations 1, 2, 5, 10, 20, 50 and every 100th, and a final line (total time,
        iterations). 2 prints every evaluation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients (one row for two classes, as ``LogisticRegression``), of the dtype of
        ``X`` (float32 in, float32 coefficients and probabilities out, whatever ``dtype``
        the computation ran in).
    intercept_ : ndarray of shape (1,) or (n_classes,)
        Intercepts, of the dtype of ``X`` (zeros when ``fit_intercept=False``; centred
        across classes for a multinomial model, whose loss does not see a common shift).
    n_iter_ : ndarray of shape (1,), dtype int32
        HDM iterations (trial points evaluated).
    n_grad_evals_ : int
        Gradient evaluations, the initial one and the smoothness samples included.
    n_func_evals_ : int
        Objective evaluations (the lookahead's included).
    history_ : dict of ndarray
        Per evaluation: ``objective``, ``grad_inf_norm``, ``P_mean``, ``P_min``, ``P_max``
        (learned stepsizes), ``beta`` (momentum) and ``accepted`` (False on null steps).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of the features, when ``X`` has string column names.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same model with other solvers.
    skbilevel.optim.HDM : The same optimizer for any torch model.

    Notes
    -----
    ``X * c`` with ``C / c**2`` is the model of ``X`` with ``C``. Features with entries
    whose unit (median standard deviation) leaves ``[2**-16, 2**16]``, or entries beyond
    ``[2**-64, 2**64]``, are fitted divided by a power of two ``2**e``, an exact
    division, with ``C * 4**e``, and ``coef_`` is mapped back; ``tol``, ``lr`` and
    ``history_`` are then in the units of that rescaled problem (inside the window, as
    with ``LogisticRegression``, ``tol`` bounds the gradient in the units of ``X``). A
    ValueError names ``X`` when ``1 / C`` relative to its scale squared overflows.

    References
    ----------
    Y. Chu, W. Gao, Y. Ye and M. Udell, "Provable and practical online learning rate
    adaptation with hypergradient descent", ICML 2025 (arXiv:2502.11229).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbilevel import HDMLogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> clf = HDMLogisticRegression(C=1.0).fit(X, y)
    >>> round(clf.score(X, y), 2)
    0.99
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="neither")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "variant": [StrOptions(set(VARIANTS))],
        "lr": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither")],
        "beta_lr": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "smoothness": [StrOptions({"sample", "power"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str],
        "dtype": [StrOptions({"float64", "float32"})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, C=1.0, *, fit_intercept=True, class_weight=None, variant="osgm-best",
                 lr="auto", beta_lr="auto", smoothness="sample", max_iter=1000, tol=1e-4,
                 warm_start=False, device="cpu", dtype="float64", random_state=None,
                 verbose=0):
        self.C = C
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.variant = variant
        self.lr = lr
        self.beta_lr = beta_lr
        self.smoothness = smoothness
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    @without_hugepage_advice
    @single_threaded_if_small
    def fit(self, X, y, sample_weight=None):
        """Fit the model by HDM.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        self : object
            Fitted estimator.
        """
        progress = FitProgress(self)  # the clock starts with fit
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=[np.float64, np.float32])
        codes, sample_weight = encode_classes(self, y, X, sample_weight)
        progress.begin(X, y, sample_weight)
        progress.say(f"fit on {X.shape[0]} samples x {X.shape[1]} features, "
                     f"{len(self.classes_)} classes: C={self.C:.4g}, {self.variant}, "
                     f"max_iter={self.max_iter}")
        device, dtype = resolve_device(self.device), resolve_dtype(self.dtype)
        to_t = lambda a: to_tensor(a, dtype, device)  # noqa: E731
        # Extreme scales: fit X / 2**ex (see _scaling) with C * 4**ex, coef = coef' / 2**ex.
        inputs, ex = {"X": X}, feature_unit(X, dtype, self.fit_intercept)[0]
        X = ldexp(X, -ex)
        problem = self._problem(to_t(X), torch.as_tensor(codes, device=device),
                                to_t(sample_weight))
        strength = 1.0 / (self.C * float(sample_weight.sum()))
        log_strength = np.log(strength) - 2 * ex * np.log(2.0)
        if log_strength > np.log(torch.finfo(dtype).max):  # an underflow is no penalty
            raise ValueError(out_of_range(
                type(self).__name__, inputs, f"the penalty 1 / C = {1 / self.C:.3g} "
                f"relative to X's scale squared overflows {self.dtype}; increase C"))
        theta = torch.tensor([log_strength], dtype=dtype, device=device)
        solver = HDMSolver(variant=self.variant, lr=self.lr, beta_lr=self.beta_lr,
                           tol=self.tol, max_iter=self.max_iter, record_history=True,
                           smoothness=(_hdm_smoothness(problem, theta)
                                       if self.smoothness == "power" else "sample"))
        sol = solver.solve(problem, theta,
                           w0=self._warm_start_point(problem, dtype, device, ex),
                           callback=partial(self._progress, progress))
        self._store(problem, sol, X.dtype)
        self.coef_ = scale_back(self.coef_, -ex, "coef_", type(self).__name__, inputs,
                                self.coef_.dtype)
        progress.done({"C": self.C}, n_iter=sol.n_iter)
        if not sol.converged:
            warn(f"HDM did not reach tol={self.tol} (gradient infinity norm "
                 f"{self.history_['grad_inf_norm'][-1]:.2e}) within max_iter="
                 f"{self.max_iter} gradient evaluations; increase max_iter.", ConvergenceWarning)
        return self

    def _problem(self, X, codes, sample_weight):
        """``LogisticRegression``'s objective at strength ``exp(theta) = 1 / (C S)``: the
        mean weighted log-loss plus ``exp(theta) / 2 ||coef||^2``."""
        n_classes = len(self.classes_)
        if n_classes == 2:
            return ProximalProblem.logistic(X, codes.to(X.dtype), L2(), sample_weight,
                                            self.fit_intercept)
        return ProximalProblem.multinomial(X, codes, n_classes, L2(), sample_weight,
                                           self.fit_intercept)

    def _warm_start_point(self, problem, dtype, device, ex):
        if not (self.warm_start and hasattr(self, "coef_")):
            return None
        w0 = problem.init_params()
        if self.coef_.shape != (problem.datafit.n_columns, problem.n_features):
            return None
        with np.errstate(over="ignore", under="ignore"):  # in the units of X / 2**ex
            coef = np.ldexp(self.coef_, ex)
        rows = [coef.T] + ([self.intercept_[None, :]] if self.fit_intercept else [])
        return torch.as_tensor(np.vstack(rows), dtype=dtype, device=device).reshape(w0.shape)

    def _progress(self, progress, w, state):
        k = state.n_grad_eval
        progress.task("HDM iteration")
        if self.verbose and (self.verbose > 1 or k in _FIRST_REPORTED or
                             k % _REPORT_EVERY == 0):
            hdm = state.hdm
            progress.say(f"eval {k:5d}  t={progress.elapsed:.2f}s  f={float(state.f):.8g}"
                         f"  |grad|_inf={float(state.g.abs().max()):.2e}  P mean="
                         f"{float(hdm.P.mean()):.3g}  beta={float(hdm.beta):.3f}")

    def _store(self, problem, sol, out_dtype):
        coef = to_numpy(problem.datafit.coef(sol.w))
        intercept = to_numpy(problem.datafit.intercept(sol.w))
        if len(self.classes_) > 2:
            intercept = intercept - intercept.mean()  # softmax is blind to a common shift
        # The dtypes of LogisticRegression: X's for the coefficients, int32 iterations.
        self.coef_ = coef.T.astype(out_dtype)
        self.intercept_ = (intercept if self.fit_intercept else np.zeros(coef.shape[1])
                           ).astype(out_dtype)
        self.n_iter_ = np.array([sol.n_iter], dtype=np.int32)
        self.n_grad_evals_, self.n_func_evals_ = sol.n_grad_eval, sol.n_func_eval
        self.history_ = {key: np.array([rec[key] for rec in sol.history])
                         for key in _HISTORY_KEYS}


def _hdm_smoothness(problem, theta):
    """HDM's smoothness estimate ``||S^{1/2} [X, 1]||^2 / S + exp(theta)``.

    As in the reference HDM code, the loss's own curvature bound (1/4 for the sigmoid, 1/2
    for the softmax) is left out, and the data part comes from 30 power iterations (an
    estimate from below): HDM's learning rate ``10 / L`` was tuned with this number, not
    with the datafit's Lipschitz bound that proximal gradient uses.
    """
    return problem.datafit.gram_norm() + float(torch.exp(theta[0]))
