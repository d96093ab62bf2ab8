"""The adjoint solve on an indefinite Hessian (a saddle point of a nonconvex inner problem).

Implicit differentiation holds at any nondegenerate stationary point, but CG, the default
adjoint solver, assumes a positive definite Hessian. The default must either give the right
hypergradient or stop with an error naming the remedy (MINRES), never a wrong answer.
"""

import pytest
import torch

from skbilevel.engine import InnerSolution
from skbilevel.engine.hypergrad import ImplicitSupport, make_hypergradient
from skbilevel.engine.inner import InnerProblem
from skbilevel.engine.linalg import CG, MINRES, make_linear_solver
from skbilevel.engine.solvers import InnerSolver, make_inner_solver

F64 = torch.float64


def _symmetric(n, eigenvalues, seed):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return (Q * eigenvalues) @ Q.T, g


class Saddle(InnerProblem):
    """``g(w, theta) = w^T H w / 2 - (b + C theta)^T w`` with ``H`` indefinite: its one
    stationary point ``w* = H^{-1} (b + C theta)`` is a saddle. It also gives the support
    interface of :class:`ImplicitSupport` (every coordinate, no penalty)."""

    def __init__(self, n=30, n_hyper=2, seed=0):
        self.H, g = _symmetric(n, torch.linspace(-1.0, 3.0, n, dtype=F64), seed)
        self.b = torch.randn(n, 1, generator=g, dtype=F64)
        self.C = torch.randn(n, n_hyper, generator=g, dtype=F64)
        self.target = torch.randn(n, 1, generator=g, dtype=F64)
        self.n_hyper = n_hyper

    def init_params(self):
        return torch.zeros_like(self.b)

    def objective(self, w, theta):
        return 0.5 * (w * (self.H @ w)).sum() - ((self.b + self.C @ theta[:, None]) * w).sum()

    def grad(self, w, theta):
        return self.H @ w - self.b - self.C @ theta[:, None]

    def hvp(self, w, theta, v):
        return self.H @ v

    smooth_hvp = hvp

    def support(self, w):
        return torch.ones_like(w, dtype=torch.bool)

    def penalty_hessian_diag(self, w, theta):
        return torch.zeros_like(w)

    def penalty_cross_vjp(self, w, theta, v):
        return -(self.C.T @ v.reshape(-1, 1))[:, 0]

    def exact_hypergradient(self, theta):
        w = torch.linalg.solve(self.H, self.b + self.C @ theta[:, None])
        return (self.C.T @ torch.linalg.solve(self.H, w - self.target))[:, 0]


class Distance:
    """Outer criterion ``||w - target||^2 / 2``."""

    def __init__(self, target):
        self.target = target

    def value(self, w):
        return 0.5 * float(((w - self.target) ** 2).sum())

    def grad_w(self, w):
        return w - self.target

    def grad_theta(self, w, theta):
        return torch.zeros_like(theta)


class Exact(InnerSolver):
    """The stationary point by a dense solve: no factorisation handed to the method."""

    requires = ("H", "b", "C")
    residual_kind = "exact"

    def solve(self, problem, theta, w0=None, recycle=None):
        w = torch.linalg.solve(problem.H, problem.b + problem.C @ theta[:, None])
        return InnerSolution(w=w, residual_kind=self.residual_kind)


@pytest.mark.parametrize("seed", range(5))
def test_cg_raises_on_negative_curvature_naming_minres(seed):
    H, g = _symmetric(30, torch.linspace(-1.0, 3.0, 30, dtype=F64), seed)
    b = torch.randn(30, generator=g, dtype=F64)
    with pytest.raises(ValueError, match="MINRES"):
        CG()(lambda v: H @ v, b)
    x, info = MINRES(rtol=1e-12)(lambda v: H @ v, b)
    assert info.converged and torch.allclose(x, torch.linalg.solve(H, b), atol=1e-9)


def test_cg_on_semidefinite_rounding_stops_without_error():
    # A singular positive semi-definite system in float32: p^T H p reaches 0 (or a little
    # below) by rounding only. That is no indefiniteness: CG stops unconverged, as before.
    g = torch.Generator().manual_seed(0)
    A = torch.randn(200, 50, generator=g)
    H, b = A @ A.T, torch.randn(200, generator=g)
    _, info = CG(rtol=1e-14, max_iter=2000)(lambda v: H @ v, b)
    assert not info.converged


@pytest.mark.parametrize("seed", range(3))
def test_default_implicit_adjoint_never_silently_wrong_on_a_saddle(seed):
    problem = Saddle(seed=seed)
    criterion, theta = Distance(problem.target), torch.tensor([0.3, -0.7], dtype=F64)
    exact = problem.exact_hypergradient(theta)
    # The inner fit by MINRES (the saddle is a stationary point), then the default adjoint.
    solver = make_inner_solver("krylov", linear_solver=make_linear_solver("minres",
                                                                          rtol=1e-13))
    with pytest.raises(ValueError, match="MINRES"):
        make_hypergradient("implicit").compute(problem, criterion, theta, solver=solver)
    # The remedy the message names gives the exact hypergradient.
    method = make_hypergradient("implicit", linear_solver=MINRES(rtol=1e-13))
    out = method.compute(problem, criterion, theta, solver=solver)
    assert torch.allclose(out.grad, exact, rtol=1e-7, atol=1e-9)


def test_implicit_support_defaults_on_a_saddle():
    problem = Saddle(seed=1)
    criterion, theta = Distance(problem.target), torch.tensor([0.3, -0.7], dtype=F64)
    exact = problem.exact_hypergradient(theta)
    # Small support: a dense symmetric solve, exact on an indefinite block.
    out = ImplicitSupport().compute(problem, criterion, theta, solver=Exact())
    assert torch.allclose(out.grad, exact, rtol=1e-8, atol=1e-10)
    # Large support: the default CG stops with an error naming MINRES...
    with pytest.raises(ValueError, match="MINRES"):
        ImplicitSupport(dense_max=0).compute(problem, criterion, theta, solver=Exact())
    # ...which solves it.
    out = ImplicitSupport("minres").compute(problem, criterion, theta, solver=Exact())
    assert torch.allclose(out.grad, exact, rtol=1e-6, atol=1e-8)
