"""The logistic Hessian formed directly (``support_hessian``) and the Newton polish it serves."""

import numpy as np
import pytest
import torch

from skbilevel.engine.inner import L2, ProximalProblem
from skbilevel.engine.solvers import LBFGS


def _problem(fit_intercept, seed=0, n=300, d=7, separation=0.3):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (X[:, 0] + separation * torch.randn(n, generator=gen, dtype=torch.float64) > 0)
    weights = torch.rand(n, generator=gen, dtype=torch.float64)
    return ProximalProblem.logistic(X, y.double(), L2(), weights, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_support_hessian_is_the_hessian_of_the_products(fit_intercept):
    """The whole block (its fast path) and a masked one equal smooth_hvp of the identity."""
    problem = _problem(fit_intercept)
    rows = 7 + fit_intercept
    w = 0.3 * torch.randn(rows, 1, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    theta = torch.zeros(1, dtype=torch.float64)
    full = problem.smooth_hvp(w, theta, torch.eye(rows, dtype=torch.float64))
    everywhere = torch.ones_like(w, dtype=torch.bool)
    torch.testing.assert_close(problem.support_hessian(w, everywhere), full, rtol=1e-12,
                               atol=1e-14)
    # Most rows (the whole Hessian's block) and few (the masked columns' product); the
    # last row is the intercept's, if any.
    for out in ([2], [2, rows - 1], [0, 1, 3, 4, 5], [0, 1, 3, 4, 5, rows - 1]):
        mask = everywhere.clone()
        mask[out] = False
        keep = mask[:, 0]
        torch.testing.assert_close(problem.support_hessian(w, mask), full[keep][:, keep],
                                   rtol=1e-12, atol=1e-14)


def test_newton_polish_with_the_direct_hessian_reaches_the_tolerance():
    """Nearly separable data and a weak penalty: L-BFGS alone stops short of 1e-12; the
    polish (Hessian formed directly) gets there, to the minimiser the products' polish finds."""
    problem = _problem(True, separation=0.05)
    theta = torch.tensor([-8.0], dtype=torch.float64)
    direct = LBFGS(tol=1e-12, max_iter=30, newton_max=0).solve(problem, theta)
    assert direct.residual <= 1e-12
    products = LBFGS(tol=1e-12, max_iter=30, newton_max=0)
    products.optional = ("variable_scale", "smooth_hvp", "penalty_hessian_diag")
    reference = products.solve(problem, theta)
    torch.testing.assert_close(direct.w, reference.w, rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_hessian_sketch_is_the_hessian_of_its_rows(fit_intercept):
    """All rows: the Hessian itself. Every 3rd row: the weighted Hessian of those rows,
    scaled to the whole data's weight (the mean loss's Hessian), i.e. the Hessian of the
    same problem built on them. A sparse design has none."""
    problem = _problem(fit_intercept)
    rows = 7 + fit_intercept
    w = 0.3 * torch.randn(rows, 1, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    full = problem.smooth_hvp(w, None, torch.eye(rows, dtype=torch.float64))
    torch.testing.assert_close(problem.hessian_sketch(w, 300), full, rtol=1e-12, atol=1e-14)
    data = problem.datafit
    sub = ProximalProblem.logistic(data.design.X[::3], (data.loss.sign[::3] + 1) / 2, L2(),
                                   data.sample_weight[::3], fit_intercept)
    torch.testing.assert_close(problem.hessian_sketch(w, 100),
                               sub.smooth_hvp(w, None, torch.eye(rows, dtype=torch.float64)),
                               rtol=1e-12, atol=1e-14)
    # 200 of the 300 rows: exactly 200 evenly spaced ones (rows floor(1.5 i)).
    keep = torch.arange(200) * 3 // 2
    sub = ProximalProblem.logistic(data.design.X[keep], (data.loss.sign[keep] + 1) / 2, L2(),
                                   data.sample_weight[keep], fit_intercept)
    torch.testing.assert_close(problem.hessian_sketch(w, 200),
                               sub.smooth_hvp(w, None, torch.eye(rows, dtype=torch.float64)),
                               rtol=1e-12, atol=1e-14)
    sparse = ProximalProblem.logistic(data.design.X.to_sparse_csr(), (data.loss.sign + 1) / 2,
                                      L2(), data.sample_weight, fit_intercept)
    assert sparse.hessian_sketch(w, 300) is None


def test_implicit_hypergradient_through_the_sketched_solver_matches_finite_differences():
    """120 correlated features (above newton_max: L-BFGS sketches the Hessian; above
    ImplicitSupport's dense_max: CG solves the adjoint) and an intercept: the held-out
    log-loss's hypergradient, with the adjoint preconditioned by the solver's factor,
    equals central differences of the tightly solved criterion, in a third of the CG
    products of the unpreconditioned adjoint (a sketch of all the rows: the default's
    coarse one, 400 rows for 121 variables, saves less at this size)."""
    from skbilevel.engine import WarmStart
    from skbilevel.engine.hypergrad import ImplicitSupport
    from skbilevel.engine.outer import HeldOutLogLoss

    gen = torch.Generator().manual_seed(0)
    n, d = 1200, 120
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) @ \
        (torch.eye(d, dtype=torch.float64) + torch.randn(d, d, generator=gen,
                                                         dtype=torch.float64) / 4)
    y = (X[:, :5].sum(1) + 2 * torch.randn(n, generator=gen, dtype=torch.float64) > 0).double()
    weights = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    train, val = slice(0, 800), slice(800, n)
    problem = ProximalProblem.logistic(X[train], y[train], L2(), weights[train], True)
    criterion = HeldOutLogLoss.for_problem(problem, X[val], y[val], weights[val])
    theta = torch.tensor([-1.0], dtype=torch.float64)
    solver = LBFGS(tol=1e-11, sketch_passes=100)  # a sketch of all 800 rows
    sol = solver.solve(problem, theta)
    assert sol.preconditioner is not None
    # Warm-started from the solution at a 20 % larger C, as in a search: the sketch is
    # taken there.
    warm = WarmStart(solver.solve(problem, theta - 0.2).w)
    result = ImplicitSupport(rtol=1e-10).compute(problem, criterion, theta, solver=solver,
                                                 warm_start=warm)
    plain = ImplicitSupport(rtol=1e-10).compute(problem, criterion, theta, warm_start=warm,
                                                solver=LBFGS(tol=1e-11, sketch_max=0))
    h = 1e-4

    def value(t):
        return float(criterion.value(solver.solve(problem, theta + t).w))

    fd = (value(h) - value(-h)) / (2 * h)
    assert abs(float(result.grad[0]) - fd) <= 1e-6 * abs(fd)
    torch.testing.assert_close(result.grad, plain.grad, rtol=1e-7, atol=0)
    assert 0 < 3 * result.n_linsys_iter <= plain.n_linsys_iter


def _multinomial(fit_intercept, n=240, d=30, K=3, seed=0, mix=0.0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    if mix:  # correlated columns, a third of them in units 100 times larger
        X = X @ (torch.eye(d, dtype=torch.float64) +
                 mix * torch.randn(d, d, generator=gen, dtype=torch.float64))
        X[:, :d // 3] *= 100.0
    scores = X[:, :K] * 2 + torch.randn(n, K, generator=gen, dtype=torch.float64)
    weights = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    return ProximalProblem.multinomial(X, scores.argmax(1), K, L2(), weights, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_multinomial_hessian_sketch_is_the_hessian_of_its_rows(fit_intercept):
    """All rows: the Hessian of the products; every 3rd row: the Hessian of the problem
    built on them. With an intercept, plus ``c e e^T`` along the common shift ``e`` of the
    intercepts (a direction the Hessian annihilates), ``c`` their mean curvature: then
    positive definite, its Cholesky factor exists. A sparse design has none."""
    problem, K = _multinomial(fit_intercept), 3
    rows = (30 + fit_intercept) * K
    w = 0.3 * torch.randn(rows, 1, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    eye = torch.eye(rows, dtype=torch.float64)

    def with_shift(H):
        if not fit_intercept:
            return H
        e = torch.zeros(rows, 1, dtype=torch.float64)
        e[-K:] = 1.0
        assert float((H @ e).abs().max()) < 1e-14  # e is in the Hessian's null space
        return H + float(H.diagonal()[-K:].mean()) / K * (e @ e.t())

    full = problem.smooth_hvp(w, None, eye)
    sketch = problem.hessian_sketch(w, 300)
    torch.testing.assert_close(sketch, with_shift(full), rtol=1e-12, atol=1e-14)
    # With the penalty's Hessian (the coefficients' common shifts are the penalty's to
    # hold): a Cholesky factor, which the unshifted Hessian has not with an intercept.
    penalty = torch.diag(problem.penalty_hessian_diag(w, torch.tensor([-3.0])).reshape(-1))
    assert int(torch.linalg.cholesky_ex(sketch + penalty)[1]) == 0
    assert (int(torch.linalg.cholesky_ex(full + penalty)[1]) == 0) != fit_intercept
    data = problem.datafit
    sub = ProximalProblem.multinomial(data.design.X[::3], data.loss.onehot[::3].argmax(1), K,
                                      L2(), data.sample_weight[::3], fit_intercept)
    torch.testing.assert_close(problem.hessian_sketch(w, 80),
                               with_shift(sub.smooth_hvp(w, None, eye)), rtol=1e-12,
                               atol=1e-14)
    sparse = ProximalProblem.multinomial(data.design.X.to_sparse_csr(),
                                         data.loss.onehot.argmax(1), K, L2(),
                                         data.sample_weight, fit_intercept)
    assert sparse.hessian_sketch(w, 300) is None


def test_multinomial_lbfgs_in_the_sketched_variable_equals_sklearn():
    """93 variables (above newton_max) over 400 rows, correlated columns in mixed units:
    L-BFGS in the Cholesky variable of the Hessian sketched from all the rows,
    warm-started from the solution at 1.5 C, reaches scikit-learn's multinomial solution
    in under a tenth of the gradient evaluations of the diagonal scaling (8 against 378;
    the default's coarser sketch, 275 of the rows, in under half: 67), and the implicit
    hypergradient preconditioned by its factor equals the unpreconditioned one."""
    from sklearn.linear_model import LogisticRegression

    from skbilevel.engine import WarmStart
    from skbilevel.engine.hypergrad import ImplicitSupport
    from skbilevel.engine.outer import HeldOutLogLoss

    whole = _multinomial(True, n=500, mix=0.5).datafit  # 400 rows to fit, 100 held out
    X, y, sw = whole.design.X[:400], whole.loss.onehot[:400].argmax(1), whole.sample_weight[:400]
    problem = ProximalProblem.multinomial(X, y, 3, L2(), sw, True)
    C = 0.5
    theta = torch.tensor([-np.log(C * float(sw.sum()))], dtype=torch.float64)
    sketched = LBFGS(tol=1e-9, newton_max=0, polish_max=0, sketch_passes=100)  # all rows
    plain = LBFGS(tol=1e-9, newton_max=0, polish_max=0, sketch_max=0)
    w0 = plain.solve(problem, theta - np.log(1.5)).w
    sol, diag = sketched.solve(problem, theta, w0), plain.solve(problem, theta, w0)
    # Both precondition the adjoint: the sketch by its factor, the diagonal scaling by its
    # last curvature pairs (tests/engine/test_lbfgs_pairs.py).
    assert sol.converged and sol.preconditioner is not None and diag.preconditioner is not None
    assert 10 * sol.n_grad_eval < diag.n_grad_eval
    coarse = LBFGS(tol=1e-9, newton_max=0, polish_max=0).solve(problem, theta, w0)
    assert coarse.converged and 2 * coarse.n_grad_eval < diag.n_grad_eval
    ref = LogisticRegression(C=C, solver="newton-cg", tol=1e-14, max_iter=1000).fit(
        X.numpy(), y.numpy(), sample_weight=sw.numpy())
    coef = problem.coef(sol.w).numpy().reshape(30, 3)  # the (d + 1, K) layout, intercepts last
    np.testing.assert_allclose(coef.T, ref.coef_, atol=1e-6 * np.abs(coef).max())
    # Intercepts up to their common shift (unpenalised, the softmax does not see it).
    intercept = problem.intercept(sol.w).numpy()
    np.testing.assert_allclose(intercept - intercept.mean(), ref.intercept_ - ref.intercept_.mean(),
                               atol=1e-5)
    X_val, y_val = whole.design.X[400:], whole.loss.onehot[400:].argmax(1)
    criterion = HeldOutLogLoss.for_problem(problem, X_val, y_val)
    method = ImplicitSupport(rtol=1e-10)
    result = method.compute(problem, criterion, theta, solver=sketched,
                            warm_start=WarmStart(w0))
    reference = method.compute(problem, criterion, theta, solver=plain,
                               warm_start=WarmStart(w0))
    torch.testing.assert_close(result.grad, reference.grad, rtol=1e-5, atol=0)
