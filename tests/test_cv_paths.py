"""The scikit-learn twins' path attributes: ``alphas_`` / ``mse_path_`` / ``dual_gap_`` of
the Lasso tuners, ``Cs_`` / ``scores_`` / ``coefs_paths_`` / ``l1_ratio(s)_`` of the
logistic tuner, checked against the twins evaluated at the same points on the same folds."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LassoCV, LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skbilevel import BilevelElasticNetCV, BilevelLassoCV, BilevelLogisticRegressionCV

# The coarse grid is solved 1000 times more loosely than the search's points (a mix-up of
# rows or folds shows as errors of 10% and more).
RTOL = {"grid": 1e-2, "optimize": 1e-6}


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _by_phase(history):
    return [(phase, history["phase"] == phase) for phase in ("grid", "optimize")]


def test_lasso_mse_path_matches_lasso_cv_at_the_same_alphas():
    X, y = _diabetes()
    splits = list(KFold(5, shuffle=True, random_state=0).split(X))
    reg = BilevelLassoCV(cv=splits).fit(X, y)
    n_eval = len(reg.history_["objective"])
    assert reg.alphas_.shape == (n_eval,) and reg.mse_path_.shape == (n_eval, 5)
    np.testing.assert_allclose(reg.mse_path_.mean(axis=1), reg.history_["objective"],
                               rtol=1e-12)
    # LassoCV on exactly these alphas (it sorts them decreasing) and folds, solved tightly
    order = np.argsort(-reg.alphas_)
    ref = LassoCV(alphas=reg.alphas_[order], cv=splits, tol=1e-12, max_iter=100000).fit(X, y)
    np.testing.assert_allclose(ref.alphas_, reg.alphas_[order])
    expected = np.empty_like(reg.mse_path_)
    expected[order] = ref.mse_path_
    for phase, rows in _by_phase(reg.history_):
        np.testing.assert_allclose(reg.mse_path_[rows], expected[rows], rtol=RTOL[phase])
    assert reg.alpha_ in reg.alphas_


def test_lasso_dual_gap_is_the_refits_gap():
    X, y = _diabetes()
    reg = BilevelLassoCV(cv=3).fit(X, y)
    assert reg.solver_ == "cd"
    # scikit-learn's stopping rule: gap <= tol * ||y - mean(y)||^2 / n, here with the
    # refit's tolerance (inner_tol * 1e-3)
    bound = 1e-8 * 1e-3 * np.sum((y - y.mean()) ** 2) / len(y)
    assert 0 <= reg.dual_gap_ <= bound


def test_weighted_lasso_and_enet_path_shapes():
    X, y = _diabetes()
    reg = BilevelLassoCV(cv=3, alpha_per_feature=True, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    n_eval = len(reg.history_["objective"])
    assert reg.alphas_.shape == (n_eval, X.shape[1]) and reg.mse_path_.shape == (n_eval, 3)
    # the shared stage's rows repeat one alpha; the per-feature stage's do not
    one_value = np.all(reg.alphas_ == reg.alphas_[:, :1], axis=1)
    assert one_value[0] and not one_value[-1]
    assert not np.any(one_value[np.argmin(one_value):])  # shared stage first
    enet = BilevelElasticNetCV(cv=3).fit(X, y)
    n_eval = len(enet.history_["objective"])
    assert enet.alphas_.shape == (n_eval,) and enet.mse_path_.shape == (n_eval, 3)
    np.testing.assert_allclose(enet.mse_path_.mean(axis=1), enet.history_["objective"],
                               rtol=1e-12)
    assert enet.best_cv_error_ == pytest.approx(enet.mse_path_.mean(axis=1).min())


def test_logistic_scores_and_coefs_paths_match_logistic_regression_cv():
    X, y = load_breast_cancer(return_X_y=True)
    X, y = StandardScaler().fit_transform(X)[:300], y[:300]
    splits = list(StratifiedKFold(4, shuffle=True, random_state=0).split(X, y))
    clf = BilevelLogisticRegressionCV(cv=splits).fit(X, y)
    n_eval = len(clf.history_["objective"])
    assert clf.Cs_.shape == (n_eval,)
    assert clf.scores_.shape == (4, 1, n_eval)
    assert clf.coefs_paths_.shape == (4, 1, n_eval, 1, X.shape[1] + 1)
    assert clf.l1_ratio_ == 0.0 and list(clf.l1_ratios_) == [0.0]
    np.testing.assert_allclose(-clf.scores_[:, 0].mean(axis=0), clf.history_["objective"],
                               rtol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = LogisticRegressionCV(Cs=clf.Cs_, cv=splits, scoring="neg_log_loss", tol=1e-12,
                                   max_iter=100000, use_legacy_attributes=False).fit(X, y)
    np.testing.assert_allclose(ref.Cs_, clf.Cs_)
    for phase, rows in _by_phase(clf.history_):
        np.testing.assert_allclose(clf.scores_[:, :, rows], ref.scores_[:, :, rows],
                                   rtol=RTOL[phase])
    # the same layout, (folds, l1_ratios, Cs, 1, features + intercept); the search's
    # points are solved tightly, so their coefficients agree
    assert ref.coefs_paths_.shape == clf.coefs_paths_.shape
    optimize = clf.history_["phase"] == "optimize"
    np.testing.assert_allclose(clf.coefs_paths_[:, :, optimize], ref.coefs_paths_[:, :, optimize],
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_multinomial_coefs_paths_predict_like_the_folds(fit_intercept):
    X, y = load_iris(return_X_y=True)
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    clf = BilevelLogisticRegressionCV(cv=splits, fit_intercept=fit_intercept).fit(X, y)
    n_eval = len(clf.history_["objective"])
    n_dof = X.shape[1] + fit_intercept
    assert clf.coefs_paths_.shape == (3, 1, n_eval, 3, n_dof)
    # each stored fold solution reproduces that fold's validation log-loss
    for k, (_, va) in enumerate(splits):
        for e in range(n_eval):
            coef = clf.coefs_paths_[k, 0, e]
            z = X[va] @ coef[:, :X.shape[1]].T + (coef[:, -1] if fit_intercept else 0.0)
            z -= z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            loss = -np.mean(logp[np.arange(len(va)), y[va]])
            np.testing.assert_allclose(-clf.scores_[k, 0, e], loss, rtol=1e-10)
