"""PrivateHyperparamSearch: hyperparameter tuning and refit under (epsilon, delta)-DP."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils._tags import ClassifierTags, RegressorTags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted

from ._private_base import PrivateTask
from ._private_methods import PRIVATE_METHODS, resolve_method
from ._private_refit import refit_logistic, refit_ridge
from ._private_spec import DOC_PARAMETERS, check_spec, model_of, plain_twin
from .engine.dp import PrivacyLedger
from .utils._memory import without_hugepage_advice
from .utils._sklearn_compat import Interval, StrOptions, _fit_context, validate_data


def _has_proba(self):
    return hasattr(self.estimator, "predict_proba")


class PrivateHyperparamSearch(MetaEstimatorMixin, BaseEstimator):
    __doc__ = """Tune one regularisation hyperparameter and refit, under (epsilon, delta)-DP.

    Every row of ``(X, y)`` given to :meth:`fit` is protected (add/remove-one neighbours)
    for the whole fit: the tuning *and* the refit of :attr:`best_estimator_`. What was spent
    is a fitted attribute (:attr:`epsilon_`, :attr:`privacy_report_`), never above the
    budget; the budget is a parameter, so :func:`~sklearn.base.clone`,
    :func:`~sklearn.model_selection.cross_val_score` and
    :class:`~sklearn.model_selection.GridSearchCV` cannot lose it. Each fit spends its own
    budget on the data it sees: ten fits of ``epsilon=1`` on the same rows spend ten times
    (by composition) on them.

    Read more in the :ref:`User Guide <private_guide>`.

    Parameters
    ----------
""" + DOC_PARAMETERS + """
    Attributes
    ----------
    best_params_ : dict
        The chosen hyperparameter, e.g. ``{"alpha": 3.2}``.
    best_estimator_ : Ridge or LogisticRegression
        A plain scikit-learn model at ``best_params_`` whose ``coef_`` and ``intercept_``
        are the private refit's: a clone of a scikit-learn ``estimator``, the scikit-learn
        twin of a skbilevel one (with its ``fit_intercept``).
    epsilon_, delta_ : float
        What the fit spent: ``epsilon_`` is the accountant's epsilon of
        ``privacy_report_["dp_event"]`` at ``delta_ = delta``; at most ``epsilon``.
    privacy_report_ : dict
        ``phases`` (per phase, e.g. the tuning and the refit: mechanism, noise
        multiplier, number of releases, largest sensitivity, ``epsilon_share`` (what the
        phase added to the composition, in order: the shares add up to ``epsilon_``) and
        ``epsilon_alone`` (what it would spend alone; these do not add up)),
        ``dp_event`` (one dp-accounting event composing every release that read the
        data, as calibrated, from which anyone can recompute ``epsilon_``),
        ``accountant``, ``epsilon``, ``delta``, ``note``.
    history_ : dict
        The tuning method's trace, of private quantities only (released statistics and
        what is computed from them; no exact validation loss).
    method_ : str
        The tuning method used (``method="auto"`` resolved).
    n_iter_ : int
        Criterion evaluations or outer steps of the tuning method.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when they are all strings.
    classes_ : ndarray of shape (2,)
        Class labels (classification only).

    See Also
    --------
    sklearn.model_selection.GridSearchCV : Non-private exhaustive search.
    BilevelRidgeCV : Non-private ridge tuning by hypergradients.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from skbilevel import PrivateHyperparamSearch
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-0.3, 0.3, size=(5000, 5))
    >>> y = np.clip(X @ np.ones(5) + 0.1 * rng.standard_normal(5000), -1, 1)
    >>> search = PrivateHyperparamSearch(Ridge(), {{"alpha": (1e-3, 1e3)}}, epsilon=1.0,
    ...                                  delta=1e-6, data_norm=1.0, y_bound=1.0,
    ...                                  random_state=0).fit(X, y)
    >>> bool(search.epsilon_ <= 1.0)
    True
    """.replace("{{", "{").replace("}}", "}")

    _parameter_constraints: dict = {
        "estimator": [object],
        "param_bounds": [dict],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "delta": [Interval(Real, 0, 1, closed="neither"), None],
        "data_norm": [Interval(Real, 0, None, closed="neither"), None],
        "y_bound": [Interval(Real, 0, None, closed="neither"), None],
        "method": [StrOptions({"auto", *PRIVATE_METHODS})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "cv": [Interval(Integral, 2, None, closed="left")],
        "budget_split": [Interval(Real, 0, 1, closed="neither")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, param_bounds, *, epsilon, delta=None, data_norm=None,
                 y_bound=None, method="auto", max_iter=100, cv=5, budget_split=0.5,
                 random_state=None, verbose=0):
        self.estimator = estimator
        self.param_bounds = param_bounds
        self.epsilon = epsilon
        self.delta = delta
        self.data_norm = data_norm
        self.y_bound = y_bound
        self.method = method
        self.max_iter = max_iter
        self.cv = cv
        self.budget_split = budget_split
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if getattr(model_of(self.estimator), "kind", None) == "logistic":
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags(multi_class=False)
        else:
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags

    # Test hook of the audits' power check, never a public option: scales every noise the
    # fit adds (0: none), in the tuning method (PrivateMethod._noise_factor) and the refit
    # alike, while the ledger and epsilon_ still report the calibrated releases.
    _noise_factor = 1.0

    @_fit_context(prefer_skip_nested_validation=False)
    @without_hugepage_advice
    def fit(self, X, y):
        """Tune the hyperparameter privately, then refit privately on all the rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (dense). Rows of L2 norm above ``data_norm`` are scaled down.
        y : array-like of shape (n_samples,)
            Targets (clipped to ``[-y_bound, y_bound]``) or binary labels.

        Returns
        -------
        self : object
            The fitted search.

        Notes
        -----
        There is no ``sample_weight``: a weight scales what one row can change beyond the
        bounds the noise is calibrated to. ``fit`` has no such parameter, so scikit-learn's
        meta-estimators (which look for it in the signature) never pass one, and passing
        one is a ``TypeError``.
        """
        kind, name, (lo, hi) = check_spec(self)
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=kind == "ridge")
        if kind == "logistic":
            y_type = type_of_target(y, input_name="y", raise_unknown=True)
            if y_type != "binary":
                raise ValueError("Only binary classification is supported by "
                                 "PrivateHyperparamSearch with "
                                 f"{type(self.estimator).__name__}. The type of the target "
                                 f"is {y_type}.")
            self.classes_, y = np.unique(y, return_inverse=True)
            y = y.astype(np.float64)
        else:
            if y.dtype.kind not in "biuf":  # strings pass validate_data's y_numeric
                raise ValueError(f"y must be numeric for regression, got dtype {y.dtype}")
            y = np.clip(y, -self.y_bound, self.y_bound)
        # Bounds are enforced, never read from the data: rows outside the ball are scaled
        # onto it (directions kept), whatever the other rows are.
        norms = np.linalg.norm(X, axis=1)
        X = X * np.minimum(1.0, self.data_norm / np.maximum(norms, 1e-300))[:, None]

        rng = np.random.default_rng(check_random_state(self.random_state).randint(2**32))
        # Each row joins one of cv validation blocks independently and uniformly: one row's
        # presence never moves another between blocks, which the parallel composition over
        # blocks needs (KFold's blocks depend on n, StratifiedKFold's on the labels).
        assignment = rng.integers(self.cv, size=X.shape[0])
        splits = [(np.flatnonzero(assignment != k), np.flatnonzero(assignment == k))
                  for k in range(self.cv)]
        task = PrivateTask(
            X=X, y=y, kind=kind, data_norm=float(self.data_norm),
            y_bound=None if kind == "logistic" else float(self.y_bound),
            fit_intercept=bool(self.estimator.get_params()["fit_intercept"]),
            theta_bounds=(math.log(lo), math.log(hi)),
            to_params=lambda theta: {name: float(math.exp(theta))}, splits=splits)

        method = resolve_method(self.method, kind)()
        method._noise_factor = float(self._noise_factor)
        ledger = PrivacyLedger(getattr(method, "accountant", "rdp"))
        share = 1.0 if getattr(method, "provides_refit_moments", False) else self.budget_split
        tuning = method.tune(task, share * self.epsilon, share * self.delta, ledger, rng,
                             max_iter=self.max_iter, progress=self._progress())
        value = np.float64(task.to_params(tuning.theta)[name])  # as GridSearchCV's
        if kind == "ridge":
            coef, intercept = refit_ridge(task, value, self.epsilon, self.delta, ledger, rng,
                                          moments=tuning.refit_moments,
                                          noise_factor=method._noise_factor)
        else:
            coef, intercept = refit_logistic(task, value, self.epsilon, self.delta, ledger,
                                             rng, gram=tuning.refit_gram,
                                             noise_factor=method._noise_factor)

        self.epsilon_ = ledger.epsilon(self.delta)
        self.delta_ = float(self.delta)
        if not self.epsilon_ <= self.epsilon * (1 + 1e-9):
            raise RuntimeError(f"spent epsilon={self.epsilon_} above the budget "
                               f"{self.epsilon}: a bug in the accounting of {method.name}")
        self.privacy_report_ = ledger.report(self.delta)
        self.best_params_ = {name: value}
        self.best_estimator_ = self._plain_model(value, coef, intercept, X.shape[1])
        self.history_ = tuning.history
        self.n_iter_ = int(tuning.n_iter)
        self.method_ = method.name
        if self.verbose:
            for phase in self.privacy_report_["phases"]:
                print(f"[PrivateHyperparamSearch] {phase['phase']}: {phase['mechanism']}, "
                      f"{phase['releases']} release(s), noise multiplier "
                      f"{phase['noise_multiplier']:.4g}, epsilon share "
                      f"{phase['epsilon_share']:.4g} (alone {phase['epsilon_alone']:.4g})")
            print(f"[PrivateHyperparamSearch] {name}={value:.4g}, epsilon spent "
                  f"{self.epsilon_:.4g} at delta={self.delta_:.3g}")
        return self

    def _progress(self):
        if self.verbose < 2:
            return None
        return lambda **info: print("[PrivateHyperparamSearch]", ", ".join(
            f"{key}={value:.4g}" for key, value in info.items()))

    def _plain_model(self, value, coef, intercept, n_features):
        model = plain_twin(self.estimator, value)
        if isinstance(model, LogisticRegression):
            model.classes_ = self.classes_
            model.coef_, model.intercept_ = coef[None, :], np.array([intercept])
            model.n_iter_ = np.array([self.n_iter_ if hasattr(self, "n_iter_") else 0])
        else:
            model.coef_, model.intercept_ = coef, intercept
            model.n_iter_ = None
        model.n_features_in_ = n_features
        if hasattr(self, "feature_names_in_"):
            model.feature_names_in_ = self.feature_names_in_
        return model

    def predict(self, X):
        """Predict with :attr:`best_estimator_` (no further privacy cost: post-processing).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples; not clipped (clipping bounds what one training row can change).

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predictions.
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    @available_if(_has_proba)
    def predict_proba(self, X):
        """Class probabilities of :attr:`best_estimator_` (classification only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Probabilities of ``classes_``.
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    @available_if(_has_proba)
    def decision_function(self, X):
        """Decision function of :attr:`best_estimator_` (classification only).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Signed distances to the separating hyperplane.
        """
        check_is_fitted(self)
        return self.best_estimator_.decision_function(X)

    def score(self, X, y, sample_weight=None):
        """:attr:`best_estimator_`'s score: R^2 (regression) or accuracy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,)
            True targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            The score.
        """
        check_is_fitted(self)
        return self.best_estimator_.score(X, y, sample_weight=sample_weight)

