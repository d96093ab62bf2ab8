"""BilevelLogisticRegressionCV: ``C`` by CV log-loss hypergradients, refit = LogisticRegression."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skbilevel import BilevelLogisticRegressionCV


def _cv_log_loss(X, y, splits, C, solver="lbfgs"):
    losses = []
    for tr, va in splits:
        fit = LogisticRegression(C=C, tol=1e-12, max_iter=100000, solver=solver) \
            .fit(X[tr], y[tr])
        losses.append(log_loss(y[va], fit.predict_proba(X[va]), labels=np.unique(y)))
    return float(np.mean(losses))


def _breast_cancer(n=300):
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:n], y[:n]


# The reference LogisticRegressionCV announces its scikit-learn 1.10 defaults (l1_ratios,
# use_legacy_attributes); this test reads its legacy scores_ dict, fine up to 1.10.
@pytest.mark.filterwarnings("ignore::FutureWarning:sklearn")
def test_binary_C_beats_the_cv_grid_and_refits_sklearn():
    X, y = _breast_cancer()
    splits = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    clf = BilevelLogisticRegressionCV(cv=splits).fit(X, y)
    ref = LogisticRegression(C=clf.C_, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(clf.intercept_, ref.intercept_, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(clf.best_cv_error_, _cv_log_loss(X, y, splits, clf.C_),
                               rtol=1e-6)
    grid = LogisticRegressionCV(Cs=20, cv=splits, scoring="neg_log_loss", tol=1e-10,
                                max_iter=10000).fit(X, y)
    best_grid = -grid.scores_[1].mean(axis=0).max()
    assert clf.best_cv_error_ <= best_grid * (1 + 1e-8)


def test_multinomial_refits_sklearn():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)[:400]
    y = y[:400]
    clf = BilevelLogisticRegressionCV(cv=3).fit(X, y)
    ref = LogisticRegression(C=clf.C_, tol=1e-12, max_iter=100000).fit(X, y)
    assert clf.coef_.shape == (10, 64)
    # 650 variables: the refit's L-BFGS stops near 1e-6 of the coefficients' scale
    np.testing.assert_allclose(clf.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def _small(seed=0, n=120):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 5))
    return X, (X @ np.array([1.0, -1.0, 0.5, 0.0, 0.0]) + rng.standard_normal(n) > 0).astype(int)


def test_forward_mode_finds_the_implicit_C():
    X, y = _small()
    implicit = BilevelLogisticRegressionCV(cv=3).fit(X, y)
    forward = BilevelLogisticRegressionCV(cv=3, hypergradient="forward").fit(X, y)
    assert forward.solver_ == "fista"
    np.testing.assert_allclose(forward.C_, implicit.C_, rtol=1e-3)


def test_per_feature_C_and_l1():
    X, y = _small(1)
    shared = BilevelLogisticRegressionCV(cv=3).fit(X, y)
    per_feature = BilevelLogisticRegressionCV(cv=3, C_per_feature=True).fit(X, y)
    assert per_feature.C_.shape == (X.shape[1],)
    assert per_feature.best_cv_error_ <= shared.best_cv_error_
    sparse = BilevelLogisticRegressionCV(cv=3, penalty="l1").fit(X, y)
    assert sparse.solver_ == "newton-cd"  # binary L1: proximal Newton (_logistic_newton)
    # Strong L1 penalties all give the zero model, a plateau of the CV curve: the grid must
    # walk across it rather than stop there (it once did, returning the zero model).
    assert sparse.best_cv_error_ < 0.9 * log_loss(y, np.full(len(y), y.mean()))
    reference = LogisticRegression(l1_ratio=1.0, solver="saga", C=sparse.C_, tol=1e-12,
                                   max_iter=100000).fit(X, y)
    np.testing.assert_allclose(sparse.coef_, reference.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse.intercept_, reference.intercept_, atol=1e-6)


def test_errors_name_the_parameter():
    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="C_per_feature"):
        BilevelLogisticRegressionCV(C_per_feature=True).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="solver"):
        BilevelLogisticRegressionCV(solver="lbfgs", hypergradient="reverse").fit(X[:100],
                                                                                 y[:100] > 4)
    with pytest.raises(ValueError, match="penalty"):
        BilevelLogisticRegressionCV(penalty="l3").fit(X[:100], y[:100] > 4)


def _badly_scaled(n, scale):
    """Feature 0 decides ``y``; feature 2 is noise ``scale`` times larger, feature 5 is
    ``scale`` times smaller; stratified 5-fold splits."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 8))
    y = (X[:, 0] + 0.3 * rng.standard_normal(n) > 0).astype(int)
    X[:, 2] *= scale
    X[:, 5] /= scale
    return X, y, list(StratifiedKFold(5).split(X, y))


# The reference Newton fits, at tol=1e-12 on a Hessian of condition ~1e24: their line
# search stalls, or their Cholesky factor fails and they fall back to lbfgs. The reference
# losses stay right (the assertion compares them); the warnings are about the reference.
@pytest.mark.filterwarnings("ignore:Line search of Newton solver")
@pytest.mark.filterwarnings("ignore:The inner solver of NewtonCholeskySolver")
def test_badly_scaled_features_tune_as_well_as_the_grid():
    """One feature in units 1e6 larger, one 1e6 smaller: L-BFGS works on the features'
    RMS scale, so the folds are solved properly and the CV log-loss is no worse than the
    best of LogisticRegressionCV's 10 Cs, scored by Newton refits (scikit-learn's lbfgs
    itself stops 3e-3 off on these folds). Measuring the gradient in raw units made the
    largest feature set every tolerance (C = 1e-3, CV log-loss 0.69 against 0.27)."""
    X, y, splits = _badly_scaled(60, 1e6)
    clf = BilevelLogisticRegressionCV(cv=splits).fit(X, y)
    newton = "newton-cholesky"
    best_grid = min(_cv_log_loss(X, y, splits, C, newton) for C in np.logspace(-4, 4, 10))
    ours = _cv_log_loss(X, y, splits, clf.C_, newton)
    assert ours <= best_grid * (1 + 1e-6)
    np.testing.assert_allclose(clf.best_cv_error_, ours, rtol=1e-6)


def test_l1_with_badly_scaled_features_finds_the_informative_model():
    """penalty='l1' with a noise feature in units 100 times larger: its CV log-loss first
    rises above the null model's (the noise feature, cheapest to penalise, enters first)
    and then falls to ~0.15. Stopping the grid a point past the null model returned
    C = 1e-4 and 0.69; unscaled FISTA needed ~400,000 iterations for the grid."""
    X, y, splits = _badly_scaled(200, 100.0)
    clf = BilevelLogisticRegressionCV(cv=splits, penalty="l1").fit(X, y)
    grid = clf.history_["objective"][clf.history_["phase"] == "grid"]
    assert grid[2] > grid[0]  # the rise before the fall
    assert clf.best_cv_error_ < 0.16
    assert clf.coef_[0, 0] != 0.0


def test_l1_grid_stops_two_points_past_a_best_below_the_null_model():
    """The informative feature in small units, two noise features in large ones: the CV
    log-loss rises above the null model's for two grid points (a patience counted from
    the first point would stop there, at C = 1e-4 and 0.69), falls to ~0.17 and rises
    again; the weak penalties after two rises past that minimum are not fitted."""
    X, y, splits = _badly_scaled(200, 100.0)
    X[:, 0] *= 0.1
    X[:, 3] *= 10.0
    clf = BilevelLogisticRegressionCV(cv=splits, penalty="l1").fit(X, y)
    grid = clf.history_["objective"][clf.history_["phase"] == "grid"]
    assert grid[0] < grid[2] < grid[3]  # two rises above the null model first
    best = int(np.argmin(grid))
    assert grid[best] < 0.18 and len(grid) == best + 3  # stopped two points past it
    assert grid[best] < grid[best + 1] < grid[best + 2]
    assert clf.best_cv_error_ <= grid[best] and clf.coef_[0, 0] != 0.0
