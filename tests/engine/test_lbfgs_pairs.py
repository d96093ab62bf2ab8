"""L-BFGS hands its last curvature pairs on as the preconditioner of the adjoint system."""

import numpy as np
import torch

from skbilevel.engine.hypergrad import ImplicitSupport
from skbilevel.engine.inner import L2, ProximalProblem
from skbilevel.engine.linalg import CG
from skbilevel.engine.outer import HeldOutLogLoss
from skbilevel.engine.solvers import LBFGS


def _problem(seed=0, n=600, d=120):
    # Above sketch_max=0 below: the diagonal scaling, whose pairs are the preconditioner.
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) @ (np.eye(d) + rng.standard_normal((d, d)) / 4)
    X[:, :10] *= 30.0  # mixed units: the pairs live in the scaled variable
    y = (X[:, 10] + rng.logistic(size=n) > 0).astype(float)
    T = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    problem = ProximalProblem.logistic(T(X[:500]), T(y[:500]), L2(), None, True)
    return problem, HeldOutLogLoss.for_problem(problem, T(X[500:]), T(y[500:]))


def test_pairs_approximate_the_inverse_hessian():
    problem, _ = _problem()
    theta = torch.tensor([np.log(0.5)], dtype=torch.float64)
    sol = LBFGS(tol=1e-9, newton_max=0, sketch_max=0).solve(problem, theta)
    assert sol.converged and sol.preconditioner is not None
    p = sol.w.shape[0]
    H = problem.hvp(sol.w, theta, torch.eye(p, dtype=torch.float64))
    # M^{-1} H: its spectrum is far better clustered than H's own (the pairs sample the
    # Hessian at the solution): condition number at least 10 times smaller.
    def cond(A):
        eig = torch.linalg.eigvals(A).real
        return float(eig.max() / eig.min())
    MH = sol.preconditioner(H)
    assert MH.shape == H.shape and 10 * cond(MH) < cond(H)
    # Symmetric positive definite: M^{-1} applied to the identity.
    Minv = sol.preconditioner(torch.eye(p, dtype=torch.float64))
    torch.testing.assert_close(Minv, Minv.T, rtol=1e-10, atol=1e-12)
    assert float(torch.linalg.eigvalsh(0.5 * (Minv + Minv.T)).min()) > 0


def test_preconditioned_adjoint_gives_the_same_hypergradient_in_fewer_products():
    problem, criterion = _problem(1)
    theta = torch.tensor([np.log(0.2)], dtype=torch.float64)
    solver = LBFGS(tol=1e-10, newton_max=0, sketch_max=0)
    with_pairs = ImplicitSupport(linear_solver=None, rtol=1e-10)
    res = with_pairs.compute(problem, criterion, theta, solver=solver)
    # The same system without a preconditioner: CG on the exact Hessian, dense check.
    w = res.w
    p = w.shape[0]
    H = problem.hvp(w, theta, torch.eye(p, dtype=torch.float64))
    v = torch.linalg.solve(H, criterion.grad_w(w).reshape(-1, 1))
    exact = -problem.penalty_cross_vjp(w, theta, v.reshape(w.shape))
    torch.testing.assert_close(res.grad, exact, rtol=1e-7, atol=0)
    _, plain = CG(rtol=1e-10)(lambda u: problem.hvp(w, theta, u.reshape(w.shape)).reshape(-1),
                              criterion.grad_w(w).reshape(-1))
    assert res.n_linsys_iter < plain.n_iter


def test_no_pairs_no_preconditioner():
    # A warm start that is a solution already: no iteration, no L-BFGS memory to hand on.
    problem, _ = _problem(2)
    theta = torch.tensor([0.0], dtype=torch.float64)
    solver = LBFGS(tol=1e-9, newton_max=0, sketch_max=0)
    sol = solver.solve(problem, theta)
    assert sol.preconditioner is not None
    assert solver.solve(problem, theta, sol.w).preconditioner is None


def test_short_line_searches_end_a_solve_stalled_by_rounding():
    import pytest

    problem, _ = _problem()
    theta = torch.tensor([np.log(0.5)], dtype=torch.float64)
    real = problem.value_and_grad

    def rounded(w, theta):  # values in float32, as float32 products give them
        value, grad = real(w, theta)
        return value.to(torch.float32).to(torch.float64), grad

    problem.value_and_grad = rounded
    # A tolerance far below what float32 values let a line search resolve.
    options = dict(tol=1e-13, newton_max=0, sketch_max=0, polish_max=0, max_iter=500)
    long = LBFGS(**options).solve(problem, theta)
    short = LBFGS(max_line_search=3, **options).solve(problem, theta)
    # Both stall at the same rounding level, far above tol; the short line searches
    # give up sooner.
    assert 1e-8 < long.residual < 1e-3 and short.residual < 2 * long.residual
    assert short.n_func_eval < long.n_func_eval
    with pytest.raises(ValueError, match="max_line_search"):
        LBFGS(max_line_search=0)
