"""Fits run without numpy's huge-page advice, and numpy's setting comes back after.

On kernels that compact memory when a huge page is first touched, the advice made fresh
arrays ~15x dearer on the benchmark machine (``skbilevel/utils/_memory.py``).
"""

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from skbilevel import HDMLogisticRegression, HypergradientSearchCV
from skbilevel.utils._memory import (hugepage_advice_enabled, no_hugepage_advice,
                                     without_hugepage_advice)
from tests.contract.zoo import CV_ZOO, parametrize, problem

pytestmark = pytest.mark.skipif(hugepage_advice_enabled() is None,
                                reason="this numpy has no huge-page switch")


@pytest.fixture(params=[True, False], ids=["advice on", "advice off"])
def advice(request):
    """numpy's setting before the fit, restored after the test."""
    with no_hugepage_advice():  # restores the process's own setting on exit
        from skbilevel.utils._memory import _SWITCH
        _SWITCH(request.param)
        yield request.param


class RecordingSplits(list):
    """Folds that record numpy's huge-page setting whenever the fit reads them."""

    seen = None

    def __iter__(self):
        self.seen = (self.seen or []) + [hugepage_advice_enabled()]
        return super().__iter__()


def _splits(X):
    return RecordingSplits(KFold(3).split(X))


def test_the_switch_is_restored_after_a_block_and_after_an_error(advice):
    with no_hugepage_advice():
        assert hugepage_advice_enabled() is False
        with no_hugepage_advice():  # nested fits (a search over our estimators)
            assert hugepage_advice_enabled() is False
        assert hugepage_advice_enabled() is False
    assert hugepage_advice_enabled() is advice

    @without_hugepage_advice
    def failing():
        assert hugepage_advice_enabled() is False
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing()
    assert hugepage_advice_enabled() is advice


@parametrize(CV_ZOO)
def test_cv_estimators_fit_without_the_advice(entry, advice):
    X, y = problem(entry)
    cv = _splits(X)
    entry(cv=cv).fit(X, y)
    assert cv.seen and not any(cv.seen)
    assert hugepage_advice_enabled() is advice


def test_the_search_and_its_scoring_fits_run_without_the_advice(advice):
    X, y = problem(CV_ZOO[0])
    cv = _splits(X)
    HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=cv).fit(X, y)
    assert cv.seen and not any(cv.seen)  # the engine's folds and scikit-learn's scoring
    assert hugepage_advice_enabled() is advice


def test_hdm_fits_without_the_advice(advice):
    seen = []

    class Recording:  # an array-like: validate_data reads it through __array__
        def __init__(self, array):
            self.array = array

        def __len__(self):
            return len(self.array)

        def __array__(self, dtype=None, copy=None):
            seen.append(hugepage_advice_enabled())
            return np.asarray(self.array, dtype=dtype)

    X, y = problem(next(e for e in CV_ZOO if e.classifier))
    HDMLogisticRegression(max_iter=5).fit(Recording(X), y)
    assert seen and not any(seen)
    assert hugepage_advice_enabled() is advice
