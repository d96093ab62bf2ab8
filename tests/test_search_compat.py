"""HypergradientSearchCV across scikit-learn versions: private helpers and 1.9's callbacks."""

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import GroupKFold, KFold, LeaveOneOut, ShuffleSplit

from skbilevel import HypergradientSearchCV
from skbilevel.utils._sklearn_compat import _constant_splits_fallback


@pytest.mark.parametrize("cv, constant", [
    (KFold(3), True), (KFold(3, shuffle=True), False), (KFold(3, shuffle=True, random_state=0),
                                                        True),
    (ShuffleSplit(), False), (ShuffleSplit(random_state=1), True), (LeaveOneOut(), True),
    (GroupKFold(3), True)])
def test_vendored_constant_splits_is_scikit_learns(cv, constant):
    assert _constant_splits_fallback(cv) is constant
    split = pytest.importorskip("sklearn.model_selection._split")
    if hasattr(split, "_yields_constant_splits"):
        assert split._yields_constant_splits(cv) is constant


class Recorder:
    """A scikit-learn >= 1.9 fit callback that records the tasks it sees."""

    def __init__(self):
        self.events = []

    def setup(self, estimator, context):
        self.events.append(("setup", type(estimator).__name__))

    def teardown(self, estimator, context):
        self.events.append(("teardown", type(estimator).__name__))

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, **kwargs):
        self.events.append(("end", context.task_name))


def test_callbacks_see_the_search():
    pytest.importorskip("sklearn.callback")
    X, y = make_regression(60, 4, noise=5.0, random_state=0)
    recorder = Recorder()
    search = HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, cv=3, max_iter=2)
    search.set_callbacks(recorder).fit(X, y)
    assert recorder.events[0] == ("setup", "HypergradientSearchCV")
    assert recorder.events[-1] == ("teardown", "HypergradientSearchCV")
    assert ("begin", "fit") in recorder.events and ("end", "fit") in recorder.events
    # The callback changed nothing: the same search without it.
    plain = HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, cv=3, max_iter=2).fit(X, y)
    assert search.best_params_ == plain.best_params_
    np.testing.assert_array_equal(search.cv_results_["hypergradient"],
                                  plain.cv_results_["hypergradient"])


def test_progress_bar():
    callback = pytest.importorskip("sklearn.callback")
    pytest.importorskip("rich")
    X, y = make_regression(60, 4, noise=5.0, random_state=0)
    search = HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, cv=3, max_iter=2)
    with pytest.warns(UserWarning, match="Ridge does not support callbacks"):  # the refit's
        search.set_callbacks(callback.ProgressBar()).fit(X, y)
    assert 1e-2 <= search.best_params_["alpha"] <= 1e2
