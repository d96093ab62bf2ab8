"""One meaning per parameter and attribute, whatever the estimator or the input container.

* ``max_iter=0`` is rejected by every estimator (scikit-learn's ``max_iter >= 1``);
* ``best_score_`` is what the scikit-learn twin's default scorer reports (R^2 for the
  regressors, accuracy for the logistic tuner): ``GridSearchCV``'s ``best_score_`` of the
  twin's model at the selected hyperparameters, on the same splits; the tuned criterion is
  ``best_cv_error_``;
* dense, CSR and CSC input give the same hyperparameters, coefficients and scores.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

from .zoo import CV_ZOO, ZOO, parametrize, problem

# The twin's model at the fitted hyperparameters, solved tightly; name -> (model, grid).
_AT_THE_OPTIMUM = {
    "BilevelRidgeCV": lambda m: (Ridge(), {"alpha": [m.alpha_]}),
    "BilevelLassoCV": lambda m: (Lasso(tol=1e-12, max_iter=100_000), {"alpha": [m.alpha_]}),
    "BilevelElasticNetCV": lambda m: (ElasticNet(tol=1e-12, max_iter=100_000),
                                      {"alpha": [m.alpha_], "l1_ratio": [m.l1_ratio_]}),
    "BilevelLogisticRegressionCV": lambda m: (LogisticRegression(tol=1e-12, max_iter=10_000),
                                              {"C": [m.C_]}),
}
_HYPERPARAMETERS = ("alpha_", "l1_ratio_", "C_")


def _splits(entry, X, y, seed=0):
    cv = (StratifiedKFold if entry.classifier else KFold)(5, shuffle=True, random_state=seed)
    return list(cv.split(X, y))


def _fit(entry, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter of the fast settings
        return entry(**params).fit(X, y)


@parametrize(ZOO)
def test_max_iter_zero_is_rejected(entry):
    X, y = problem(entry)
    with pytest.raises(ValueError, match="max_iter"):
        entry(max_iter=0).fit(X, y)


@parametrize(ZOO)
def test_max_iter_one_fits(entry):
    X, y = problem(entry)
    model = _fit(entry, X, y, max_iter=1)
    assert np.isfinite(model.coef_).all()


@parametrize(CV_ZOO)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_best_score_is_the_twins_grid_search_score(entry, fit_intercept):
    """best_score_ == GridSearchCV(twin model at the selected point, same splits).best_score_
    (R^2 / accuracy), and best_cv_error_ is the tuned CV criterion at that point."""
    X, y = problem(entry)
    splits = _splits(entry, X, y)
    model = _fit(entry, X, y, cv=splits, fit_intercept=fit_intercept)
    twin, grid = _AT_THE_OPTIMUM[entry.name](model)
    twin.set_params(fit_intercept=fit_intercept)
    search = GridSearchCV(twin, grid, cv=splits).fit(X, y)
    # Ridge is solved exactly on both sides; the others to their solvers' tolerances.
    assert model.best_score_ == pytest.approx(search.best_score_,
                                              abs=1e-8 if entry.name == "BilevelRidgeCV" else 1e-6)
    assert 0 < model.best_score_ <= 1
    assert model.best_cv_error_ == pytest.approx(np.min(model.history_["objective"]), rel=1e-6)


def test_best_score_is_ridgecv_s():
    """Where RidgeCV(cv=K) selects the same alpha, the two best_score_ agree."""
    from sklearn.linear_model import RidgeCV

    from skbilevel import BilevelRidgeCV

    X, y = problem(CV_ZOO[0])
    cv = KFold(5, shuffle=True, random_state=0)
    ours = BilevelRidgeCV(cv=cv).fit(X, y)
    twin = RidgeCV(alphas=[ours.alpha_], cv=cv).fit(X, y)
    assert ours.best_score_ == pytest.approx(twin.best_score_, abs=1e-8)


def _flat_problem(entry, seed):
    """A CV curve flat in the penalty: many samples, few features, strong signal."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((200, 10)) * (rng.random((200, 10)) < 0.5)
    signal = X @ rng.uniform(1, 3, 10)
    y = (signal + 0.3 * rng.standard_normal(200) > 0).astype(int) if entry.classifier else \
        signal + 0.01 * rng.standard_normal(200)
    return X, y


@parametrize(CV_ZOO)
@pytest.mark.parametrize("case", ["seed0", "seed1", "seed2", "flat"])
def test_same_answer_whatever_the_container(entry, case):
    if case == "flat":
        X, y = _flat_problem(entry, 0)
    else:
        X, y = problem(entry, seed=int(case[-1]))
        X = X * (np.random.default_rng(0).random(X.shape) < 0.6)  # zeros worth storing sparse
    splits = _splits(entry, X, y)
    fits = [_fit(entry, A, y, cv=splits) for A in (X, sp.csr_matrix(X), sp.csc_matrix(X))]
    dense = fits[0]
    for fit in fits[1:]:
        for name in _HYPERPARAMETERS:
            if hasattr(dense, name):
                assert_allclose(getattr(fit, name), getattr(dense, name), rtol=1e-8,
                                err_msg=name)
        scale = np.abs(dense.coef_).max()
        assert_allclose(fit.coef_, dense.coef_, rtol=1e-8, atol=1e-8 * scale)
        assert_allclose(fit.intercept_, dense.intercept_, rtol=1e-8, atol=1e-8 * scale)
        assert fit.best_score_ == pytest.approx(dense.best_score_, rel=1e-8)
        assert fit.best_cv_error_ == pytest.approx(dense.best_cv_error_, rel=1e-8)
