"""The K training folds of a binary logistic problem solved side by side as one problem."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

from skbilevel.engine.hypergrad import ImplicitSupport
from skbilevel.engine.inner import L2, ProximalProblem, Shifted, StackedLogisticDatafit, \
    stacked_shift
from skbilevel.engine.outer import HeldOutLogLoss, HeldOutStackedLogLoss
from skbilevel.engine.solvers import LBFGS


def T(a):
    return torch.as_tensor(a, dtype=torch.float64)


def _data(seed=0, n=240, d=7, K=4):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, d)
    y = (X[:, 0] - X[:, 1] + rng.logistic(size=n) > 0).astype(float)
    sw = rng.uniform(0.5, 2.0, n)
    splits = list(StratifiedKFold(K, shuffle=True, random_state=seed).split(X, y))
    train, val = np.zeros((n, K)), np.zeros((n, K))
    for k, (tr, va) in enumerate(splits):
        train[tr, k], val[va, k] = sw[tr], sw[va]
    return X, y, sw, splits, train, val


def _stacked(X, y, train, val, fit_intercept):
    datafit = StackedLogisticDatafit(T(X), T(y), T(train), fit_intercept)
    problem = ProximalProblem(datafit, Shifted(L2(), stacked_shift(T(train))))
    return problem, HeldOutStackedLogLoss(datafit, T(val))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_columns_are_the_folds_logistic_regressions(fit_intercept):
    X, y, sw, splits, train, val = _data()
    problem, criterion = _stacked(X, y, train, val, fit_intercept)
    C = 0.3
    theta = T([-np.log(C)])
    w = LBFGS(tol=1e-12, max_iter=5000).solve(problem, theta).w
    columns = problem.datafit.unstack(w)
    torch.testing.assert_close(problem.datafit.stack(columns), w, rtol=0, atol=0)
    losses = []
    for k, (tr, va) in enumerate(splits):
        ref = LogisticRegression(C=C, tol=1e-12, max_iter=10000,
                                 fit_intercept=fit_intercept).fit(X[tr], y[tr], sw[tr])
        col = columns[k][:, 0].numpy()
        np.testing.assert_allclose(col[:X.shape[1]], ref.coef_[0], rtol=1e-6, atol=1e-7)
        if fit_intercept:
            np.testing.assert_allclose(col[-1], ref.intercept_[0], rtol=1e-6, atol=1e-7)
        losses.append(log_loss(y[va], ref.predict_proba(X[va]), sample_weight=sw[va]))
    np.testing.assert_allclose(criterion.fold_values(w).numpy(), losses, rtol=1e-7)
    np.testing.assert_allclose(float(criterion.value(w)), np.mean(losses), rtol=1e-7)


def test_hypergradient_is_the_mean_of_the_folds():
    X, y, sw, splits, train, val = _data(1)
    problem, criterion = _stacked(X, y, train, val, True)
    theta = T([np.log(2.0)])
    method = ImplicitSupport(rtol=1e-12)
    solver = LBFGS(tol=1e-12, max_iter=5000)
    joint = method.compute(problem, criterion, theta, solver=solver)
    per_fold = []
    for tr, va in splits:
        fold = ProximalProblem.logistic(T(X[tr]), T(y[tr]), Shifted(L2(), -np.log(sw[tr].sum())),
                                        T(sw[tr]), True)
        crit = HeldOutLogLoss.for_problem(fold, T(X[va]), T(y[va]), T(sw[va]))
        per_fold.append(method.compute(fold, crit, theta, solver=solver))
    np.testing.assert_allclose(joint.value, np.mean([r.value for r in per_fold]), rtol=1e-9)
    torch.testing.assert_close(joint.grad, torch.stack([r.grad for r in per_fold]).mean(0),
                               rtol=1e-6, atol=0)
    # and the finite difference of the CV curve
    step = 1e-5
    plus = method.compute(problem, criterion, theta + step, solver=solver, with_grad=False)
    minus = method.compute(problem, criterion, theta - step, solver=solver, with_grad=False)
    np.testing.assert_allclose(float(joint.grad[0]), (plus.value - minus.value) / (2 * step),
                               rtol=1e-5)


def test_shapes_are_checked():
    X, y, _, _, train, val = _data()
    with pytest.raises(ValueError, match="fold_weight"):
        StackedLogisticDatafit(T(X), T(y), T(train[:-1]), True)
    datafit = StackedLogisticDatafit(T(X), T(y), T(train), True)
    with pytest.raises(ValueError, match="validation_weight"):
        HeldOutStackedLogLoss(datafit, T(val[:, :2]))


def test_hessian_sketch_from_every_row_is_the_block_diagonal_hessian():
    X, y, _, _, train, val = _data(2, n=120, d=5, K=3)
    problem, _ = _stacked(X, y, train, val, True)
    rng = np.random.default_rng(0)
    w = T(rng.standard_normal((problem.init_params().shape[0], 1)) / 3)
    H = problem.smooth_hvp(w, None, torch.eye(w.shape[0], dtype=torch.float64))
    torch.testing.assert_close(problem.datafit.hessian_sketch(w, 10_000), H, rtol=1e-10,
                               atol=1e-12)
    assert problem.independent_blocks == 3
    # From a third of the rows: still block-diagonal, each block near the fold's Hessian.
    sketch = problem.datafit.hessian_sketch(w, 40).reshape(6, 3, 6, 3)
    assert float(sketch[:, 0, :, 1].abs().max()) == 0.0
    block, exact = sketch[:, 1, :, 1], H.reshape(6, 3, 6, 3)[:, 1, :, 1]
    assert float(torch.linalg.matrix_norm(block - exact) / torch.linalg.matrix_norm(exact)) < 0.5


def test_low_precision_hessian_products_keep_values_and_gradients_exact():
    X, y, _, _, train, val = _data(seed=3, n=400, d=300)  # 120,000 entries
    exact, _ = _stacked(X, y, train, val, True)
    low = StackedLogisticDatafit(T(X), T(y), T(train), True, low_precision_hvp=True)
    rng = np.random.default_rng(0)
    w = T(rng.standard_normal((exact.datafit.init_params().shape[0], 1)) * 0.05)
    V = T(rng.standard_normal((w.shape[0], 2)))
    reference = exact.datafit.hvp(w, V)
    got = low.hvp(w, V)
    error = float((got - reference).abs().max() / reference.abs().max())
    assert 0 < error < 1e-5  # float32 products, within their rounding
    torch.testing.assert_close(low.grad(w), exact.datafit.grad(w), rtol=0, atol=0)
    # Scores computed in low precision never serve an exact request at the same point.
    w2 = 1.5 * w
    with low.design.low_precision():
        inexact = float(low.value(w2))
    value = float(low.value(w2))
    assert value == float(exact.datafit.value(w2))
    assert inexact != value and abs(inexact - value) < 1e-6 * abs(value)
