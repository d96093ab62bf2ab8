"""float32 as scikit-learn keeps it (issue 13, item 4).

Every estimator is fitted next to its scikit-learn twin on float32 and float64 input, dense
and CSR, and must give the twin's dtype for every fitted attribute they share and for every
output of ``predict``, ``predict_proba``, ``predict_log_proba``, ``decision_function`` and
``score`` -- also where the twin is odd (``LogisticRegressionCV`` computes in float64 and
returns float64 for float32 input). A scalar attribute must also have the twin's type
(``np.float32`` for a float32 ``intercept_``, Python ``float`` 0.0 without an intercept).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from .zoo import ZOO, parametrize, problem

pytestmark = [
    # The fast settings of the zoo stop the searches early; the dtypes do not depend on it.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")

# Shared attribute names whose values mean something else here than in the twin, so that
# their dtypes need not agree (the reason is the value).
DIFFERENT_MEANING = {
    ("BilevelLogisticRegressionCV", "n_iter_"):
        "an int (outer iterations), not the twin's per-fold, per-C solver iterations",
}
# The twin as scikit-learn 1.10 will have it (LogisticRegressionCV warns of these changes
# of default): the layout of the attributes our estimators already follow.
FUTURE_DEFAULTS = {"LogisticRegressionCV": {"use_legacy_attributes": False,
                                             "l1_ratios": (0.0,), "scoring": "neg_log_loss"}}


def _fitted(entry, X, y, **params):
    twin = entry.twin()
    twin.set_params(**FUTURE_DEFAULTS.get(type(twin).__name__, {}), **params)
    return entry(**params).fit(X, y), twin.fit(X, y)


def _shared_attributes(ours, twin):
    public = [name for name in vars(twin) if name.endswith("_") and not name.startswith("_")]
    return [name for name in public if hasattr(ours, name)]


def _values(value):
    """The arrays inside an attribute (``scores_`` of ``LogisticRegressionCV`` is a dict)."""
    return list(value.values()) if isinstance(value, dict) else [value]


def _is_scalar(value):
    return np.ndim(value) == 0 and not isinstance(value, np.ndarray)


def assert_same_dtypes(entry, ours, twin, X, y):
    """Every shared fitted attribute and every shared method output: the twin's dtype."""
    checked = []
    for name in _shared_attributes(ours, twin):
        if (entry.name, name) in DIFFERENT_MEANING:
            continue
        for mine, theirs in zip(_values(getattr(ours, name)), _values(getattr(twin, name))):
            assert np.asarray(mine).dtype == np.asarray(theirs).dtype, \
                f"{entry.name}.{name}: {np.asarray(mine).dtype}, twin " \
                f"{np.asarray(theirs).dtype} (input {X.dtype})"
            if _is_scalar(theirs) and _is_scalar(mine):
                assert type(mine) is type(theirs), \
                    f"{entry.name}.{name}: {type(mine)}, twin {type(theirs)}"
        checked.append(name)
    assert "coef_" in checked and "intercept_" in checked
    for method in METHODS:
        if hasattr(twin, method) and hasattr(ours, method):
            for Xp in (X, X.astype(np.float64), X.astype(np.float32)):
                mine, theirs = getattr(ours, method)(Xp), getattr(twin, method)(Xp)
                assert mine.dtype == theirs.dtype, \
                    f"{entry.name}.{method}({Xp.dtype}) after fit({X.dtype}): " \
                    f"{mine.dtype}, twin {theirs.dtype}"
    assert type(ours.score(X, y)) is type(twin.score(X, y))


@parametrize()
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("container", ["dense", "csr"])
def test_dtypes_follow_the_twin(entry, dtype, container):
    X, y = problem(entry)
    X = X.astype(dtype)
    if container == "csr":
        if not entry.twin().__sklearn_tags__().input_tags.sparse:
            pytest.skip(f"{entry.name}'s twin takes no sparse input")
        X = sp.csr_matrix(X)
    ours, twin = _fitted(entry, X, y)
    assert_same_dtypes(entry, ours, twin, X, y)


@parametrize()
def test_dtypes_follow_the_twin_without_intercept(entry):
    X, y = problem(entry)
    X = X.astype(np.float32)
    ours, twin = _fitted(entry, X, y, fit_intercept=False)
    assert_same_dtypes(entry, ours, twin, X, y)


@parametrize([e for e in ZOO if e().__sklearn_tags__().target_tags.multi_output])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_dtypes_follow_the_twin_with_several_targets(entry, fit_intercept):
    X, y = problem(entry)
    X, Y = X.astype(np.float32), np.column_stack([y, 2.0 * y - 1.0])
    ours, twin = _fitted(entry, X, Y, fit_intercept=fit_intercept)
    assert_same_dtypes(entry, ours, twin, X, Y)


@parametrize()
def test_float32_input_fits_the_float64_model(entry):
    """float32 in is the same model as float64 in, to float32's accuracy."""
    X, y = problem(entry)
    single, double = entry().fit(X.astype(np.float32), y), entry().fit(X, y)
    method = "decision_function" if entry.classifier else "predict"
    got = getattr(single, method)(X.astype(np.float32))
    want = getattr(double, method)(X)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
