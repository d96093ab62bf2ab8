"""HyperCleaningClassifier: one weight per training sample, learned from a trusted set."""

from __future__ import annotations

import inspect
import time
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from ._cleaning_data import (build_problem, check_trusted_set, cv_quality, hold_out,
                             vote_weights)
from ._cleaning_doc import DOC
from .engine.cleaning import METHODS, make_cleaning_method
from .utils._sklearn_compat import (Interval, StrOptions, _check_sample_weight, _fit_context,
                                    validate_data)
from .utils._tensor import resolve_device
from .utils._memory import without_hugepage_advice
from .utils._threads import single_threaded_if_small

# The method "auto" picks, in order of preference, among those registered.
# Measured on benchmarks/bench_cleaning.py (results/cleaning.md) with the defaults
# (confidence="cv", refit_with_val, refit_threshold): pgd-cqa (qp1) had the best test
# accuracy in 3 of the 4 settings and is the cheapest per run; reweight next, implicit
# the exact reference.
AUTO_ORDER = ("pgd-cqa", "reweight", "implicit")


def _final_has(name):
    def check(self):
        final = self.estimator_ if hasattr(self, "estimator_") else \
            (self.estimator if self.estimator is not None else LogisticRegression())
        return hasattr(final, name)
    return check


class HyperCleaningClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    __doc__ = DOC

    _parameter_constraints: dict = {
        "estimator": [None, object],
        "model": [StrOptions({"linear", "mlp"})],
        "method": [str],
        "variant": [StrOptions({"qp1", "qp2"})],
        "hidden": [tuple, list],
        "reg": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither"), None],
        "refit_with_val": ["boolean"],
        "threshold": [Interval(Real, 0, 1, closed="both")],
        "refit_threshold": [Interval(Real, 0, 1, closed="both"), None],
        "confidence": [StrOptions({"cv"}), None],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "cv_rounds": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left"), None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator=None, *, model="linear", method="auto", variant="qp1",
                 hidden=(32,), reg=1e-4, max_iter=100, validation_fraction=None,
                 refit_with_val=True, threshold=0.5, refit_threshold=0.1, confidence="cv",
                 n_folds=5, cv_rounds=2, n_neighbors=7, device="cpu", random_state=None,
                 verbose=0):
        self.estimator = estimator
        self.model = model
        self.method = method
        self.variant = variant
        self.hidden = hidden
        self.reg = reg
        self.max_iter = max_iter
        self.validation_fraction = validation_fraction
        self.refit_with_val = refit_with_val
        self.threshold = threshold
        self.refit_threshold = refit_threshold
        self.confidence = confidence
        self.n_folds = n_folds
        self.cv_rounds = cv_rounds
        self.n_neighbors = n_neighbors
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=False)
    @without_hugepage_advice
    @single_threaded_if_small
    def fit(self, X, y, *, X_val=None, y_val=None, sample_weight=None):
        """Learn the sample weights from the trusted set, then refit :attr:`estimator_`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, whose labels may be wrong.
        y : array-like of shape (n_samples,)
            The labels of doubtful quality.
        X_val : array-like of shape (n_val, n_features), default=None
            The trusted set's features. Without it (and ``y_val``), ``validation_fraction``
            must be set: a ValueError says so.
        y_val : array-like of shape (n_val,), default=None
            The trusted labels; only classes present in ``y``.
        sample_weight : array-like of shape (n_samples,), default=None
            The user's weights: they multiply the learned ones (in the inner problem and in
            the refit).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        start = time.perf_counter()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in "
                             f"y, but y contains only one class: {self.classes_[0]!r}")
        codes = np.searchsorted(self.classes_, y)
        base = np.array(_check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True))
        final = clone(self.estimator if self.estimator is not None else LogisticRegression())
        if not has_fit_parameter(final, "sample_weight"):
            raise ValueError(f"estimator={final!r} does not accept sample_weight in fit: "
                             f"the learned weights could not be used")
        if self.confidence == "cv" and not hasattr(final, "predict_proba"):
            raise ValueError(f"confidence='cv' needs probabilities, but estimator={final!r} "
                             f"has no predict_proba: pass confidence=None (the learned "
                             f"weights as they are) or a probabilistic classifier")
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        device = resolve_device(self.device)

        if X_val is None and y_val is None:
            if self.validation_fraction is None:
                raise ValueError(
                    f"{type(self).__name__}.fit needs a trusted set: pass X_val and y_val "
                    f"(fit(X, y, X_val=X_trusted, y_val=y_trusted)), or set "
                    f"validation_fraction to hold out part of (X, y) as the trusted set")
            train, trusted = hold_out(codes, self.validation_fraction, seed)
            X_in, codes_in, base_in = X[train], codes[train], base[train]
            X_t, codes_t = X[trusted], codes[trusted]
        else:
            X_val, y_val = check_trusted_set(self, X, X_val, y_val, X.dtype)
            train, trusted = np.arange(len(y)), None
            X_in, codes_in, base_in = X, codes, base
            X_t, codes_t = X_val, np.searchsorted(self.classes_, y_val)

        method = self._resolve_method()
        problem = build_problem(self, X_in, codes_in, X_t, codes_t, base_in,
                                len(self.classes_), device)
        if self.verbose:
            print(f"[{type(self).__name__}] fit on {len(codes_in)} samples x {X.shape[1]} "
                  f"features, trusted set of {len(codes_t)}: method={method.name}, "
                  f"model={self.model}")
        result = method.run(problem, max_iter=self.max_iter,
                            generator=torch.Generator().manual_seed(int(seed)),
                            callback=self._callback(start))

        quality = np.ones(len(y))  # held-out trusted samples keep their weight
        weights = torch.sigmoid(result.x).detach().cpu().numpy()
        self.bilevel_weight_ = weights
        if self.confidence == "cv":
            weights = cv_quality(final, X_in, codes_in, X_t, codes_t, weights, base_in,
                                 self.n_folds, seed, self.cv_rounds, self.refit_threshold)
        quality[train] = weights
        # The neighbour vote reads the cv probabilities' band: without them it is off.
        vote = self.n_neighbors if self.confidence == "cv" else None
        sample_weight, voted = base.copy(), np.zeros(len(y), dtype=bool)
        sample_weight[train], voted[train] = vote_weights(
            weights, self.refit_threshold, base_in, X_in, codes_in, X_t, codes_t, vote)
        self.method_ = method.name
        self.label_quality_ = quality
        self.sample_weight_ = sample_weight
        self.voted_out_ = voted
        # The voted-out samples are flagged too, whatever the threshold.
        self.label_issues_ = (quality < self.threshold) | voted
        self.history_ = {key: np.asarray(value, dtype=np.float64)
                         for key, value in result.history.items()}
        self.n_iter_ = int(result.n_iter)
        self.kkt_residual_ = float(result.kkt_residual)

        X_fit, y_fit, w_fit = X, y, self.sample_weight_
        if self.refit_with_val and trusted is None:
            X_fit = np.concatenate([X, X_val.astype(X.dtype, copy=False)])
            y_fit = np.concatenate([y, y_val.astype(y.dtype, copy=False)])
            w_fit = np.concatenate([w_fit, np.ones(len(y_val))])
        self.estimator_ = final.fit(X_fit, y_fit, sample_weight=w_fit)
        # For get_label_issues: the labels as given and as the refit classifier sees them.
        self._given_label, self._predicted_label = y, self.estimator_.predict(X)
        if self.verbose:
            print(f"[{type(self).__name__}] done in {time.perf_counter() - start:.2f}s: "
                  f"{int(self.label_issues_.sum())} label issues of {len(y)}, "
                  f"n_iter={self.n_iter_}, kkt_residual={self.kkt_residual_:.4g}")
        return self

    def _resolve_method(self):
        """The cleaning method by name through the engine's registry; "auto" is the first
        of :data:`AUTO_ORDER` registered. ``variant`` goes to a method that takes one."""
        name = self.method
        if name == "auto":
            name = next(m for m in AUTO_ORDER if m in METHODS)
        if name not in METHODS:
            raise ValueError(f"method must be 'auto' or one of {sorted(METHODS)}, got "
                             f"{self.method!r}")
        params = {}
        if "variant" in inspect.signature(METHODS[name]).parameters:
            params["variant"] = self.variant
        return make_cleaning_method(name, **params)

    def _callback(self, start):
        """``callback(k, record)`` of the method: a progress line at iterations 1, 2, 5, 10,
        20, 50 and every 100th (``verbose=1``) or at every one (``verbose >= 2``)."""
        if not self.verbose:
            return None
        prefix = f"[{type(self).__name__}]"

        def report(k, record):
            if self.verbose < 2 and k not in (1, 2, 5, 10, 20, 50) and k % 100:
                return
            values = "  ".join(f"{key}={record[key]:.4g}" for key in
                               ("outer_value", "sqrt_h", "stationarity", "lambda")
                               if key in record)
            print(f"{prefix} iter {k:4d}  t={time.perf_counter() - start:.2f}s  {values}")
        return report

    def get_label_issues(self):
        """The training samples' verdicts, as cleanlab's ``CleanLearning.get_label_issues``.

        Returns
        -------
        issues : pandas.DataFrame
            One row per training sample, with columns ``is_label_issue``
            (:attr:`label_issues_`), ``label_quality`` (:attr:`label_quality_`),
            ``given_label`` (``y``) and ``predicted_label`` (:attr:`estimator_`'s
            prediction on the training sample).
        """
        check_is_fitted(self)
        try:
            import pandas as pd
        except ImportError as error:
            raise ImportError(f"{type(self).__name__}.get_label_issues returns a pandas "
                              f"DataFrame: install pandas (pip install pandas), or read "
                              f"label_issues_ and label_quality_") from error
        return pd.DataFrame({"is_label_issue": self.label_issues_,
                             "label_quality": self.label_quality_,
                             "given_label": self._given_label,
                             "predicted_label": self._predicted_label})

    def _delegate(self, name, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return getattr(self.estimator_, name)(X)

    def predict(self, X):
        """Predict with :attr:`estimator_`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Predicted classes.
        """
        return self._delegate("predict", X)

    @available_if(_final_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of :attr:`estimator_`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of ``classes_``.
        """
        return self._delegate("predict_proba", X)

    @available_if(_final_has("predict_log_proba"))
    def predict_log_proba(self, X):
        """Log class probabilities of :attr:`estimator_`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log probabilities of ``classes_``.
        """
        return self._delegate("predict_log_proba", X)

    @available_if(_final_has("decision_function"))
    def decision_function(self, X):
        """Decision function of :attr:`estimator_`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The estimator's scores.
        """
        return self._delegate("decision_function", X)
