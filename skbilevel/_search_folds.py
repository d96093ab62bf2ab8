"""The folds of ``HypergradientSearchCV``: the pipeline split into its prefix and final
step, and each training / validation pair as the final step receives it."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures
from sklearn.utils import _safe_indexing, check_array, get_tags

from ._search_adapters import FoldData
from .utils._sklearn_compat import _check_method_params


def _split_pipeline(estimator):
    """``(prefix Pipeline or None, final estimator, final step name or None)``."""
    if isinstance(estimator, Pipeline):
        name, final = estimator.steps[-1]
        prefix = Pipeline(estimator.steps[:-1]) if len(estimator.steps) > 1 else None
        return prefix, final, name
    return None, estimator, None


def _transform_fold(prefix, last, X, y, fit_params, train, val):
    """One fold after the pipeline prefix, fitted on the training rows only.

    When the prefix learns nothing from the data (none, or only row-wise steps that need
    no fit, see :func:`_row_wise`), a row's features do not depend on the fold: only the
    validation block is transformed here, the training features on demand, and the fold
    carries its ``rows`` so that an adapter may build it from the validation blocks.
    """
    train_params = _check_method_params(X, params=fit_params, indices=train)
    own = f"{last}__" if last is not None else ""
    weight = train_params.get(f"{own}sample_weight")
    step_params = {k: v for k, v in train_params.items() if not k.startswith(own)}
    y_tr, y_va = _safe_indexing(y, train), _safe_indexing(y, val)
    # Named as what the final step receives: X itself, or the prefix's output.
    name = "X" if prefix is None else "X (after the pipeline's transformers)"
    if prefix is None or (not step_params and _row_wise(prefix)):
        val_weight = _check_method_params(X, params=fit_params, indices=val).get(
            f"{own}sample_weight")
        return FoldData(_RowFeatures(prefix, X, train, name), np.asarray(y_tr),
                        _weights(weight), _RowFeatures(prefix, X, val, name)(),
                        np.asarray(y_va), rows=(train, val), val_weight=_weights(val_weight))
    prefix = clone(prefix)
    X_tr = prefix.fit_transform(_safe_indexing(X, train), y_tr, **step_params)
    X_va = prefix.transform(_safe_indexing(X, val))
    return FoldData(_checked(X_tr, name), np.asarray(y_tr), _weights(weight),
                    _checked(X_va, name), np.asarray(y_va))


class _RowFeatures:
    """The final step's input on ``rows`` through a prefix that learns nothing from the
    data (a picklable callable: a fold may travel to a joblib worker)."""

    def __init__(self, prefix, X, rows, name):
        self.prefix, self.X, self.rows, self.name = prefix, X, rows, name

    def __call__(self):
        X_rows = _safe_indexing(self.X, self.rows)
        if self.prefix is not None:
            X_rows = clone(self.prefix).fit_transform(X_rows)
        return _checked(X_rows, self.name)


def _weights(weight):
    return None if weight is None else np.asarray(weight, dtype=np.float64)


def _row_wise(prefix):
    """Whether every step of ``prefix`` maps each row alone, learning nothing from the
    data: scikit-learn's stateless transformers (``requires_fit=False``: Normalizer,
    Binarizer, FunctionTransformer of a row-wise function) and PolynomialFeatures (its fit
    reads only the number of features)."""
    steps = [step for _, step in prefix.steps if step not in (None, "passthrough")]
    return all(type(step) is PolynomialFeatures or not get_tags(step).requires_fit
               for step in steps)


def _checked(X, name="X"):
    """The final step's input as float64, dense or CSR (sparse outputs stay sparse: the
    adapters densify them where their problems need it); check_array gives the final
    step's own messages for NaN, inf and empty inputs."""
    return check_array(X, accept_sparse="csr", dtype=np.float64, input_name=name)
