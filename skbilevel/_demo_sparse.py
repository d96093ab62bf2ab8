"""The second half of ``python -m skbilevel demo``: Lasso and logistic tuning on bundled data,
beside scikit-learn's CV estimators.

Every method is scored the same way: the CV error of scikit-learn refits at the
hyperparameters it chose, on the folds every method tuned on, so the column compares the
choices and not the solvers.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, LassoCV, LogisticRegression, LogisticRegressionCV
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from ._lasso import BilevelLassoCV
from ._logistic_cv import BilevelLogisticRegressionCV

_TIGHT = dict(tol=1e-8, max_iter=100000)  # refits for scoring: the choice, not the solver


def load_lasso_data(random_state=0):
    """Diabetes with degree-3 polynomial features (285), standardised; 75/25 split."""
    X, y = load_diabetes(return_X_y=True)
    X = make_pipeline(PolynomialFeatures(3, include_bias=False),
                      StandardScaler()).fit_transform(X)
    return train_test_split(X, y, test_size=0.25, random_state=random_state)


def load_logistic_data(random_state=0):
    """Breast cancer (30 features), standardised; stratified 75/25 split."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=random_state)


def lasso_cv_mse(X, y, alpha, splits):
    """K-fold CV MSE of scikit-learn's Lasso refitted on ``splits``; a vector ``alpha`` is
    the weighted Lasso, i.e. ``Lasso(alpha=1)`` on the columns ``X_j / alpha_j``."""
    if np.ndim(alpha):
        X, alpha = X / np.asarray(alpha), 1.0
    errors = [np.mean((Lasso(alpha=alpha, **_TIGHT).fit(X[tr], y[tr]).predict(X[va]) - y[va])
                      ** 2) for tr, va in splits]
    return float(np.mean(errors))


def logistic_cv_loss(X, y, C, splits):
    """K-fold CV log-loss of scikit-learn's L2 LogisticRegression(C) refitted on ``splits``."""
    losses = [log_loss(y[va], LogisticRegression(C=C, **_TIGHT).fit(X[tr], y[tr])
                       .predict_proba(X[va]), labels=np.unique(y)) for tr, va in splits]
    return float(np.mean(losses))


def _timed_fit(est, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)  # LogisticRegressionCV's 1.10 notes
        est.fit(X, y)
    return time.perf_counter() - start


def _lasso_rows(random_state):
    X, X_test, y, y_test = load_lasso_data(random_state)
    splits = list(KFold(5, shuffle=True, random_state=random_state).split(X))
    methods = {"LassoCV(alphas=100)": LassoCV(alphas=100, cv=splits),
               "BilevelLassoCV": BilevelLassoCV(cv=splits),
               "BilevelLassoCV(alpha_per_feature)": BilevelLassoCV(
                   cv=splits, alpha_per_feature=True, random_state=random_state)}
    rows = []
    for name, est in methods.items():
        elapsed = _timed_fit(est, X, y)
        rows.append({"problem": "lasso", "method": name, "n_hyper": np.size(est.alpha_),
                     "cv_error": lasso_cv_mse(X, y, est.alpha_, splits),
                     "test_error": float(np.mean((est.predict(X_test) - y_test) ** 2)),
                     "n_nonzero": int(np.count_nonzero(est.coef_)), "time": elapsed})
    return rows, X.shape


def _logistic_rows(random_state):
    X, X_test, y, y_test = load_logistic_data(random_state)
    splits = list(StratifiedKFold(5, shuffle=True, random_state=random_state).split(X, y))
    methods = {"LogisticRegressionCV(Cs=20)": LogisticRegressionCV(
                   Cs=20, cv=splits, scoring="neg_log_loss"),
               "BilevelLogisticRegressionCV": BilevelLogisticRegressionCV(cv=splits)}
    rows = []
    for name, est in methods.items():
        elapsed = _timed_fit(est, X, y)
        C = float(np.ravel(est.C_)[0])
        rows.append({"problem": "logistic", "method": name, "n_hyper": 1,
                     "cv_error": logistic_cv_loss(X, y, C, splits),
                     "test_error": float(log_loss(y_test, est.predict_proba(X_test))),
                     "n_nonzero": int(np.count_nonzero(est.coef_)), "time": elapsed})
    return rows, X.shape


def _print_table(title, rows, error_name):
    print()
    print(title)
    print(f"{'method':<36} {'#hyper':>6} {'CV ' + error_name:>12} {'test ' + error_name:>13} "
          f"{'nonzero':>7} {'time (s)':>9} {'vs sklearn':>10}")
    base = rows[0]["time"]
    for r in rows:
        print(f"{r['method']:<36} {r['n_hyper']:>6d} {r['cv_error']:>12.6g} "
              f"{r['test_error']:>13.6g} {r['n_nonzero']:>7d} {r['time']:>9.3f} "
              f"{r['time'] / base:>10.3f}")


def run_sparse_demo(random_state=0):
    """Tune a Lasso (diabetes, degree 3) and an L2 logistic regression (breast cancer) by
    hypergradients and by scikit-learn's CV estimators on the same folds; print both tables.

    Returns
    -------
    rows : list of dict
        One row per method and problem: problem, method, number of hyperparameters, CV
        error (MSE or log-loss of scikit-learn refits), test error, nonzero coefficients,
        time.
    """
    lasso, (n, d) = _lasso_rows(random_state)
    _print_table(f"Lasso, diabetes degree-3 features: n_train={n}, n_features={d}", lasso,
                 "MSE")
    logistic, (n, d) = _logistic_rows(random_state)
    _print_table(f"L2 logistic regression, breast cancer: n_train={n}, n_features={d}",
                 logistic, "log-loss")
    return lasso + logistic
