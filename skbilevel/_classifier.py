"""What the linear classifiers share: encoding the targets, and their outputs."""

from __future__ import annotations

import types

import numpy as np
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot, softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .utils._sklearn_compat import _check_sample_weight, validate_data


def encode_classes(estimator, y, X, sample_weight):
    """Set ``estimator.classes_``; return the class codes and the sample weights with the
    estimator's ``class_weight`` folded in.

    Raises a ValueError when fewer than two classes have samples of positive weight.
    """
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    estimator.classes_ = encoder.classes_
    if len(estimator.classes_) < 2:
        raise ValueError(f"This solver needs samples of at least 2 classes in the data, "
                         f"but the data contains only one class: {estimator.classes_[0]!r}")
    codes = encoder.transform(y)
    sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                         ensure_non_negative=True)
    present = np.unique(codes[sample_weight > 0])
    if len(present) < 2:
        raise ValueError(f"This solver needs samples of at least 2 classes with positive "
                         f"sample_weight, but only one class has some: "
                         f"{estimator.classes_[present[0]] if len(present) else None!r}")
    if estimator.class_weight is not None:
        weights = compute_class_weight(estimator.class_weight, classes=estimator.classes_, y=y,
                                       sample_weight=sample_weight)
        sample_weight = sample_weight * weights[codes]
    return codes, sample_weight


class LinearClassifierOutputs:
    """``decision_function``, ``predict``, ``predict_proba``, ``predict_log_proba`` from
    ``coef_`` (``(1, d)`` binary or ``(K, d)``), ``intercept_`` and ``classes_``."""

    _OUTPUTS = ("decision_function", "predict", "predict_proba", "predict_log_proba")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Python's argument errors name the class that defines the function
        # ("LinearClassifierOutputs.predict() missing ... 'X'"): each estimator gets its
        # own copy of the methods, named after it. (Plain functions: no closure to rebind.)
        for name in cls._OUTPUTS:
            if name not in cls.__dict__:
                setattr(cls, name, _renamed(getattr(cls, name), cls))

    def decision_function(self, X):
        """Scores ``X @ coef_.T + intercept_``; 1-D for two classes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            Decision values.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False,
                          dtype=[np.float64, np.float32])
        scores = safe_sparse_dot(X, self.coef_.T, dense_output=True) + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Predicted labels.
        """
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[index]

    def predict_proba(self, X):
        """Class probabilities (sigmoid for two classes, softmax otherwise).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities, columns in the order of ``classes_``.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1.0 - p, p])
        return softmax(scores.copy())

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed stably.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities.
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros_like(scores), scores])
        return scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)


def _renamed(func, cls):
    """A copy of the function ``func`` whose ``__qualname__`` names ``cls``."""
    copied = types.FunctionType(func.__code__, func.__globals__, func.__name__,
                                func.__defaults__, func.__closure__)
    copied.__kwdefaults__, copied.__doc__ = func.__kwdefaults__, func.__doc__
    copied.__dict__.update(func.__dict__)
    copied.__module__, copied.__qualname__ = func.__module__, f"{cls.__name__}.{func.__name__}"
    return copied
