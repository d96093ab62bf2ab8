"""HypergradientSearchCV on HDMLogisticRegression: tuned as LogisticRegression, refitted by HDM."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import HDMLogisticRegression, HypergradientSearchCV

CV = StratifiedKFold(4, shuffle=True, random_state=0)
# Converged fits: both estimators then score the same fold minimisers.
HDM = HDMLogisticRegression(tol=1e-8, max_iter=5000)
LR = LogisticRegression(tol=1e-8, max_iter=10000)


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=160, n_features=6, n_informative=3, random_state=0)


def _search(model, data, **kwargs):
    X, y = data
    pipe = make_pipeline(StandardScaler(), model)
    key = f"{pipe.steps[-1][0]}__C"
    return HypergradientSearchCV(pipe, {key: (1e-2, 1e2)}, cv=CV, scoring="neg_log_loss",
                                 **kwargs).fit(X, y), key


@pytest.fixture(scope="module")
def hdm_search(data):
    return _search(HDM, data)


def test_same_path_and_choice_as_logistic_regression(data, hdm_search):
    hdm, key = hdm_search
    lr, lr_key = _search(LR, data)
    # The same objective, folds and engine: the same evaluated values of C ...
    C = [p[key] for p in hdm.cv_results_["params"]]
    np.testing.assert_allclose(C, [p[lr_key] for p in lr.cv_results_["params"]], rtol=1e-10)
    # ... which scikit-learn scores alike from HDM's and L-BFGS's fits (the same minimisers),
    np.testing.assert_allclose(hdm.cv_results_["mean_test_score"],
                               lr.cv_results_["mean_test_score"], rtol=1e-6)
    # and the chosen C agrees (the last points of the search differ by less than 1e-6
    # in score, so scikit-learn's ranking may pick a neighbour).
    assert abs(np.log10(hdm.best_params_[key] / lr.best_params_[lr_key])) < 0.01


# The grid's weakest penalty stops HDM just short of tol=1e-8 on one fold (8e-8).
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_no_worse_than_a_grid_over_hdm(data, hdm_search):
    X, y = data
    search, key = hdm_search
    grid = GridSearchCV(make_pipeline(StandardScaler(), HDM), {key: np.logspace(-2, 2, 9)},
                        cv=CV, scoring="neg_log_loss").fit(X, y)
    assert search.best_score_ >= grid.best_score_ - 1e-9
    assert len(search.cv_results_["params"]) < 9


def test_refit_is_hdms_own_fit(data, hdm_search):
    X, y = data
    search, key = hdm_search
    best = search.best_estimator_[-1]
    assert isinstance(best, HDMLogisticRegression) and best.C == search.best_params_[key]
    expected = make_pipeline(StandardScaler(), HDMLogisticRegression(
        C=best.C, tol=1e-8, max_iter=5000)).fit(X, y)
    np.testing.assert_array_equal(best.coef_, expected[-1].coef_)
    assert best.n_iter_[0] == expected[-1].n_iter_[0] > 1


def test_class_weight_is_refused(data):
    X, y = data
    search = HypergradientSearchCV(HDMLogisticRegression(class_weight="balanced"),
                                   {"C": (1e-2, 1e2)})
    with pytest.raises(ValueError, match="HDMLogisticRegression with class_weight"):
        search.fit(X, y)
