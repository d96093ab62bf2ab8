"""Fold moments: the ridge problems built from block moments equal those built from rows."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import KFold, RepeatedKFold, ShuffleSplit

from skbilevel._moments import fold_moments
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.solvers import ClosedFormSolver


def T(a):
    return torch.as_tensor(a, dtype=torch.float64)


@pytest.mark.parametrize("cv", [KFold(4, shuffle=True, random_state=0),
                                RepeatedKFold(n_splits=3, n_repeats=2, random_state=0)],
                         ids=["kfold", "repeated"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["icpt", "noicpt"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_fold_problems_from_moments_match_problems_from_rows(cv, fit_intercept, n_targets,
                                                            make_data, global_random_seed):
    X, y, sw = make_data(global_random_seed, n_samples=50, n_features=6,
                                    n_targets=n_targets, sample_weight=True)
    Y = y.reshape(len(y), -1)
    splits = list(cv.split(X))
    folds, total = fold_moments(X, Y, sw, splits, T)
    assert len(folds) == len(splits)
    theta = T([0.3])
    for (train, _), raw in zip(splits + [(np.arange(len(y)), None)], folds + [total]):
        ref = RidgeProblem(T(X[train]), T(Y[train]), T(sw[train]),
                           fit_intercept=fit_intercept)
        got = RidgeProblem.from_moments(**raw.centred(fit_intercept))
        np.testing.assert_allclose(got.gram, ref.gram, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got.xty, ref.xty, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(float(got.weight_sum), sw[train].sum(), rtol=1e-12)
        w_ref = ClosedFormSolver().solve(ref, theta).w
        w_got = ClosedFormSolver().solve(got, theta).w
        np.testing.assert_allclose(w_got, w_ref, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.intercept(w_got), ref.intercept(w_ref), rtol=1e-9)
        np.testing.assert_allclose(float(got.objective(w_got, theta)),
                                   float(ref.objective(w_ref, theta)), rtol=1e-9)
        np.testing.assert_allclose(float(got.weighted_rss(w_got)),
                                   float(ref.weighted_rss(w_ref)), rtol=1e-8)
        v = T(np.random.default_rng(0).standard_normal(w_ref.shape))
        np.testing.assert_allclose(got.hvp(w_got, theta, v), ref.hvp(w_ref, theta, v),
                                   rtol=1e-10, atol=1e-10)


def test_non_complementary_splits_are_refused(make_data):
    X, y, sw = make_data(0, n_samples=40, n_features=4, sample_weight=True)
    splits = list(ShuffleSplit(3, test_size=0.2, train_size=0.5, random_state=0).split(X))
    assert fold_moments(X, y[:, None], sw, splits, T) == (None, None)


def test_exact_fit_rss_is_not_negative():
    # y is an exact linear function of X: the expanded RSS rounds around zero.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, (30, 3)).astype(float)
    y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    (raw,), _ = fold_moments(X, y[:, None], np.ones(30), [(np.arange(20), np.arange(20, 30))],
                             T)
    problem = RidgeProblem.from_moments(**raw.centred(True))
    w = ClosedFormSolver().solve(problem, T([-30.0])).w
    assert float(problem.weighted_rss(w)) >= 0.0
