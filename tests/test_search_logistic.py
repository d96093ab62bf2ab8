"""HypergradientSearchCV on LogisticRegression: each fold is the model scikit-learn scores.

A fold whose rows lack a class is fitted by ``LogisticRegression`` over the classes it holds
(binary when it holds two); the engine's CV criterion must be the log-loss of that model.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from skbilevel import HypergradientSearchCV
from skbilevel._search_adapters import FoldData, adapter_for
from skbilevel.engine.outer._bracket import cubic_start, parabola_start

# Converged fits: scikit-learn's scores are then those of the exact fold minimisers.
EXACT = LogisticRegression(tol=1e-8, max_iter=10000)


@pytest.fixture(scope="module")
def three_classes():
    X, y = make_classification(n_samples=180, n_features=5, n_informative=3, n_redundant=0,
                               n_classes=3, n_clusters_per_class=1, class_sep=0.7,
                               random_state=0)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    # A fourth fold without class 1 on either side: LogisticRegression fits it as a
    # binary model of class 2 against class 0.
    rows = np.flatnonzero(y != 1)
    folds.append((rows[:70], rows[70:]))
    return X, y, folds


def _path(estimator, X, y, folds, objective, max_iter=6):
    data = [FoldData(X[tr], y[tr], None, X[va], y[va]) for tr, va in folds]
    return adapter_for(estimator).tune(estimator, data, {"C": (1e-3, 1e3)}, objective,
                                       max_iter=max_iter, tol=1e-8)


def test_engine_criterion_is_scikit_learns_neg_log_loss(three_classes):
    X, y, folds = three_classes
    path = _path(EXACT, X, y, folds, "log_loss")
    assert len(path) >= 7
    for params, objective, grad, _ in path:
        scores = cross_val_score(clone(EXACT).set_params(**params), X, y, cv=folds,
                                 scoring="neg_log_loss")
        # The screening grid (no gradient) is solved 1000 times looser than the search.
        rel = 2e-7 if np.isfinite(grad["C"]) else 1e-4
        assert objective == pytest.approx(-scores.mean(), rel=rel), params


def test_search_with_a_fold_lacking_a_class_beats_the_grid(three_classes):
    X, y, folds = three_classes
    search = HypergradientSearchCV(EXACT, {"C": (1e-3, 1e3)}, cv=folds,
                                   scoring="neg_log_loss").fit(X, y)
    grid = GridSearchCV(EXACT, {"C": np.logspace(-3, 3, 13)}, cv=folds,
                        scoring="neg_log_loss").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ >= grid.best_score_ - 1e-9
    # ... and the best point is a stationary point of scikit-learn's own CV curve.
    C = search.best_params_["C"]
    around = [cross_val_score(clone(EXACT).set_params(C=c), X, y, cv=folds,
                              scoring="neg_log_loss").mean() for c in (C / 1.05, C * 1.05)]
    assert search.best_score_ >= max(around) - 1e-9


@pytest.fixture(scope="module")
def unseen_in_training(three_classes):
    """The three folds, and a fourth whose validation rows hold a class its training rows
    lack (class 1)."""
    X, y, folds = three_classes
    rows, ones = np.flatnonzero(y != 1), np.flatnonzero(y == 1)
    return X, y, folds[:3] + [(rows[:70], np.concatenate([rows[70:], ones[:10]]))]


def test_neg_log_loss_refuses_a_class_unseen_in_training(unseen_in_training):
    X, y, folds = unseen_in_training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's scoring failures
        grid = GridSearchCV(EXACT, {"C": [1.0]}, cv=folds, scoring="neg_log_loss").fit(X, y)
    assert np.isnan(grid.cv_results_["split3_test_score"]).all()  # what it would score
    search = HypergradientSearchCV(EXACT, {"C": (1e-2, 1e2)}, cv=folds,
                                   scoring="neg_log_loss")
    with pytest.raises(ValueError, match=r"Fold 3 holds classes \[0, 1, 2\] in its "
                                         r"validation rows and \[0, 2\]"):
        search.fit(X, y)


def test_other_scorings_follow_each_folds_own_log_loss(unseen_in_training):
    X, y, folds = unseen_in_training
    path = _path(EXACT, X, y, folds, "surrogate_log_loss", max_iter=2)
    for params, objective, grad, _ in path:
        losses = []
        for tr, va in folds:
            model = clone(EXACT).set_params(**params).fit(X[tr], y[tr])
            seen = np.isin(y[va], model.classes_)  # class 1 rows: infinite whatever C
            losses.append(log_loss(y[va][seen], model.predict_proba(X[va][seen]),
                                   labels=model.classes_))
        rel = 2e-7 if np.isfinite(grad["C"]) else 1e-4
        assert objective == pytest.approx(np.mean(losses), rel=rel), params
    search = HypergradientSearchCV(EXACT, {"C": (1e-1, 1e1)}, cv=folds, max_iter=1,
                                   scoring="accuracy").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_a_training_fold_with_one_class_is_refused(three_classes):
    X, y, _ = three_classes
    zeros, others = np.flatnonzero(y == 0), np.flatnonzero(y != 0)
    folds = [(zeros[:40], others[:20]), (others, zeros)]
    with pytest.raises(ValueError, match="training rows of fold 0 hold only one class, 0"):
        HypergradientSearchCV(EXACT, {"C": (1e-2, 1e2)}, cv=folds,
                              scoring="accuracy").fit(X, y)


def test_sketched_multinomial_folds_give_scikit_learns_neg_log_loss():
    # 3 classes x 31 rows of the variable (over 64: the folds' L-BFGS runs in the
    # variable of a sketched Hessian's Cholesky factor): the search's points are still
    # scikit-learn's CV log-loss of converged fits, and the path starts at the minimum of
    # the cubic through four grid values, not at the parabola's vertex through three.
    X, y = make_classification(n_samples=240, n_features=30, n_informative=6,
                               n_classes=3, random_state=1)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    data = [FoldData(X[tr], y[tr], None, X[va], y[va]) for tr, va in folds]
    adapter = adapter_for(EXACT)
    fold_problems = adapter.folds(EXACT, data, "log_loss")
    solver = adapter.solvers(fold_problems)[0]
    sol = solver.solve(fold_problems[0].problem, torch.zeros(1, dtype=torch.float64))
    assert sol.w.numel() == 93 and sol.preconditioner is not None
    path = _path(EXACT, X, y, folds, "log_loss")
    searched = [p for p in path if p[3] == "optimize"]
    grid = [p for p in path if p[3] == "grid"]
    # The search starts at the cubic's minimum through the grid's values (theta = -log C).
    values = sorted((-np.log(p[0]["C"]), p[1]) for p in grid)
    best = -np.log(min(grid, key=lambda p: p[1])[0]["C"])
    assert -np.log(searched[0][0]["C"]) == pytest.approx(cubic_start(values, best), abs=1e-9)
    assert cubic_start(values, best) != pytest.approx(parabola_start(values, best), abs=1e-3)
    for params, objective, _, _ in searched:
        scores = cross_val_score(clone(EXACT).set_params(**params), X, y, cv=folds,
                                 scoring="neg_log_loss")
        assert objective == pytest.approx(-scores.mean(), rel=2e-7), params
