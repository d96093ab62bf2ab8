"""Declared capabilities: one check up front, errors naming what is missing and who lacks it,
and ``InnerSolution.residual_kind`` naming what each solver's residual measures."""

from functools import cached_property

import numpy as np
import pytest
import torch

from skbilevel.engine._capabilities import check, missing, provides, require, value_and_grad
from skbilevel.engine.hypergrad import (ForwardMode, ImplicitDifferentiation, ImplicitSupport,
                                        ReverseMode)
from skbilevel.engine.inner import L1, L2, InnerProblem, ProximalProblem, RidgeProblem
from skbilevel.engine.solvers import (FISTA, LBFGS, ClosedFormSolver, HDMSolver, KrylovSolver,
                                      ProximalGradient)
from skbilevel._coordinate_descent import CoordinateDescent

F64 = torch.float64


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def _least_squares(penalty, seed=0, n=50, d=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    return ProximalProblem.least_squares(T(X), T(y)[:, None], penalty), X, y


class Lazy:
    """An expensive cached property, a method and an instance attribute."""

    def __init__(self):
        self.calls, self.xty = 0, 1.0

    @cached_property
    def gram_eigh(self):
        self.calls += 1
        return "expensive"

    def prox(self, z, step, theta):
        return z


class NoProx:
    """Everything proximal gradient needs but the proximal map."""

    def __init__(self, problem):
        self.problem = problem

    def init_params(self):
        return self.problem.init_params()

    def smooth_value(self, w, theta=None):
        return self.problem.smooth_value(w)

    def smooth_grad(self, w, theta=None):
        return self.problem.smooth_grad(w)

    def lipschitz(self, theta=None):
        return self.problem.lipschitz()

    def objective(self, w, theta):
        return self.problem.objective(w, theta)


def test_provides_finds_methods_and_attributes_without_evaluating_them():
    lazy = Lazy()
    assert provides(lazy, "gram_eigh") and provides(lazy, "prox") and provides(lazy, "xty")
    assert lazy.calls == 0  # hasattr would have computed the property
    assert missing(lazy, ("prox", "hvp", "xty", "grad")) == ("hvp", "grad")


def test_require_names_every_missing_method_and_the_class():
    with pytest.raises(TypeError, match=r"^Solver needs the problem to provide hvp, grad; "
                                        r"Lazy lacks them$"):
        require(Lazy(), ("prox", "hvp", "grad"), "Solver")
    with pytest.raises(TypeError, match="needs the inner solver to provide run; Lazy lacks it"):
        require(Lazy(), ("run",), "ForwardMode", role="inner solver")


@pytest.mark.parametrize("solver", [FISTA(), ProximalGradient()], ids=["fista", "ista"])
def test_proximal_solver_without_prox_names_prox_and_the_class(solver):
    problem = NoProx(_least_squares(L1())[0])
    name = type(solver).__name__
    with pytest.raises(TypeError, match=f"{name} needs the problem to provide prox; "
                                        "NoProx lacks it"):
        solver.solve(problem, T([0.0]))


def test_forward_mode_names_the_derivative_methods_it_needs():
    problem = NoProx(_least_squares(L1())[0])
    problem.prox = lambda z, step, theta: z  # proximable, but without derivatives
    with pytest.raises(TypeError, match="smooth_hvp, prox_jacobian; NoProx lacks them"):
        ForwardMode().compute(problem, None, T([0.0]), solver=FISTA())


@pytest.mark.parametrize("method", [ForwardMode(), ReverseMode()])
def test_unrolled_methods_need_a_solver_with_run(method):
    problem = _least_squares(L1())[0]
    with pytest.raises(TypeError, match="inner solver to provide run; LBFGS lacks it"):
        method.compute(problem, None, T([0.0]), solver=LBFGS())


def test_solvers_and_methods_name_what_a_problem_of_the_wrong_kind_lacks():
    lasso = _least_squares(L1())[0]
    ridge = RidgeProblem(T(np.eye(4)), T(np.ones((4, 1))))
    with pytest.raises(TypeError, match="ClosedFormSolver needs the problem to provide gram"):
        ClosedFormSolver().solve(lasso, T([0.0]))
    with pytest.raises(TypeError, match="ImplicitSupport needs the problem to provide support"):
        ImplicitSupport().compute(ridge, None, T([0.0]), solver=ClosedFormSolver())
    with pytest.raises(TypeError, match="ImplicitDifferentiation needs the problem to provide "
                                        "hvp, cross_vjp; object lacks them"):
        ImplicitDifferentiation().compute(object(), None, T([0.0]), solver=ClosedFormSolver())
    with pytest.raises(TypeError, match="KrylovSolver needs .* init_params, grad, hvp"):
        KrylovSolver().solve(object(), T([0.0]))
    # A declared flag, not a method: L-BFGS needs a differentiable objective.
    with pytest.raises(ValueError, match="LBFGS needs a differentiable objective"):
        LBFGS().solve(lasso, T([0.0]))
    assert not LBFGS.supports(lasso) and LBFGS.supports(_least_squares(L2())[0])


def test_check_returns_the_optional_methods_the_problem_provides():
    lasso = _least_squares(L1())[0]
    assert check(FISTA(), lasso) == {"optimality_residual", "preconditioner"}
    assert check(ImplicitSupport(), lasso) == {"support_hessian"}
    assert check(LBFGS(), _least_squares(L2())[0]) == {"variable_scale", "smooth_hvp",
                                                       "penalty_hessian_diag",
                                                       "support_hessian", "hessian_sketch",
                                                       "independent_blocks"}


def test_value_and_grad_uses_a_declared_one():
    class Shared(InnerProblem):
        calls = 0

        def value_and_grad(self, w, theta):
            Shared.calls += 1
            return (w ** 2).sum(), 2 * w

    class Duck:  # no value_and_grad: objective and grad
        def objective(self, w, theta):
            return (w ** 2).sum()

        def grad(self, w, theta):
            return 2 * w

    w = T([1.0, -2.0])
    assert float(value_and_grad(Shared())(w, None)[0]) == 5.0 and Shared.calls == 1
    value, grad = value_and_grad(Duck())(w, None)
    assert float(value) == 5.0 and torch.equal(grad, 2 * w)


def test_proximal_problem_grad_is_the_objectives_for_a_smooth_penalty():
    problem = _least_squares(L2(), seed=1)[0]
    w, theta = T(np.linspace(-1, 1, 8))[:, None].requires_grad_(True), T([np.log(0.7)])
    (expected,) = torch.autograd.grad(problem.objective(w, theta), w)
    torch.testing.assert_close(problem.grad(w.detach(), theta), expected)


def test_residual_kind_names_what_each_solver_measured():
    ridge = RidgeProblem(T(np.random.default_rng(0).standard_normal((30, 5))),
                         T(np.ones((30, 1))))
    theta = T([0.0])
    assert ClosedFormSolver().solve(ridge, theta).residual_kind == "exact"
    sol = KrylovSolver().solve(ridge, theta)
    assert sol.residual_kind == "grad_norm"
    assert sol.residual == pytest.approx(float(ridge.grad(sol.w, theta).norm()), abs=1e-9)
    sol = HDMSolver(tol=1e-8).solve(ridge, theta)
    assert sol.residual_kind == "grad_norm"
    lasso = _least_squares(L1())[0]
    theta = T([np.log(0.05)])
    sol = FISTA(tol=1e-9).solve(lasso, theta)
    assert sol.residual_kind == "gradient_mapping"
    assert sol.residual == pytest.approx(lasso.optimality_residual(sol.w, theta))
    sol = CoordinateDescent().solve(lasso, theta)
    assert sol.residual_kind == "duality_gap"
    sol = LBFGS().solve(_least_squares(L2())[0], theta)
    assert sol.residual_kind == "scaled_grad_inf_norm"
