"""The Lasso / logistic half of the demo (``python -m skbilevel demo --part sparse``)."""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold

from skbilevel._demo_sparse import (lasso_cv_mse, load_lasso_data, load_logistic_data,
                                    logistic_cv_loss, run_sparse_demo)

METHODS = ["LassoCV(alphas=100)", "BilevelLassoCV", "BilevelLassoCV(alpha_per_feature)",
           "LogisticRegressionCV(Cs=20)", "BilevelLogisticRegressionCV"]


@pytest.fixture(scope="module")
def rows():
    return {r["method"]: r for r in run_sparse_demo()}


def test_rows_and_tables(rows, capsys):
    assert list(rows) == METHODS
    for r in rows.values():
        assert set(r) == {"problem", "method", "n_hyper", "cv_error", "test_error",
                          "n_nonzero", "time"}
        assert np.isfinite(r["cv_error"]) and r["cv_error"] > 0
        assert np.isfinite(r["test_error"]) and r["test_error"] > 0
    X, _, _, _ = load_lasso_data()
    assert rows["BilevelLassoCV(alpha_per_feature)"]["n_hyper"] == X.shape[1]


def test_hypergradients_no_worse_than_the_grids(rows):
    """On the same folds, scored by the same scikit-learn refits, the continuous optimum is
    at least as good as the best grid point."""
    assert rows["BilevelLassoCV"]["cv_error"] <= \
        rows["LassoCV(alphas=100)"]["cv_error"] * (1 + 1e-6)
    assert rows["BilevelLogisticRegressionCV"]["cv_error"] <= \
        rows["LogisticRegressionCV(Cs=20)"]["cv_error"] * (1 + 1e-6)


def test_lasso_cv_mse_weighted_form_matches_the_shared_alpha():
    X, _, y, _ = load_lasso_data()
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    shared = lasso_cv_mse(X, y, 2.0, splits)
    np.testing.assert_allclose(lasso_cv_mse(X, y, np.full(X.shape[1], 2.0), splits), shared,
                               rtol=1e-6)
    errors = [np.mean((Lasso(alpha=2.0, tol=1e-10, max_iter=100000).fit(X[t], y[t])
                       .predict(X[v]) - y[v]) ** 2) for t, v in splits]
    assert shared == pytest.approx(np.mean(errors), rel=1e-6)


def test_logistic_cv_loss_matches_logistic_regression_cv():
    X, _, y, _ = load_logistic_data()
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = LogisticRegressionCV(Cs=[0.3], cv=splits, scoring="neg_log_loss", tol=1e-10,
                                   max_iter=10000).fit(X, y)
    score = np.mean(ref.scores_[1])
    assert logistic_cv_loss(X, y, 0.3, splits) == pytest.approx(-score, rel=1e-6)
