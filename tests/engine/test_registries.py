"""Registries of inner solvers, hypergradient methods and linear solvers: a new part is one
class plus one registry line, and is then usable by name."""

from math import isclose

import numpy as np
import pytest
import torch

from skbilevel import _proximal_parts
from skbilevel.engine import HypergradResult, InnerSolution, WarmStart
from skbilevel.engine.hypergrad import (METHODS, HypergradientMethod, ImplicitDifferentiation,
                                        make_hypergradient)
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.linalg import LINEAR_SOLVERS, make_linear_solver
from skbilevel.engine.outer import HeldOutMSE
from skbilevel.engine.solvers import SOLVERS, InnerSolver, make_inner_solver
from skbilevel._coordinate_descent import CoordinateDescent
from skbilevel._logistic_newton import LogisticNewtonCD

F64 = torch.float64
RESIDUAL_KINDS = {"exact", "grad_norm", "scaled_grad_inf_norm", "gradient_mapping",
                  "duality_gap"}


def _ridge(seed=0, n=40, n_val=20, d=6):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.standard_normal((n + n_val, d)), dtype=F64)
    y = X @ torch.as_tensor(rng.standard_normal((d, 1)), dtype=F64) + \
        torch.as_tensor(rng.standard_normal((n + n_val, 1)), dtype=F64)
    problem = RidgeProblem(X[:n], y[:n])
    return problem, HeldOutMSE.for_problem(problem, X[n:], y[n:]), torch.tensor([0.5], dtype=F64)


class GradientDescent(InnerSolver):
    """A new inner solver: fixed steps ``1 / L`` on a smooth problem."""

    requires = ("init_params", "grad", "lipschitz")

    def __init__(self, max_iter=5000, tol=1e-12):
        self.max_iter, self.tol = max_iter, tol

    def solve(self, problem, theta, w0=None, recycle=None):
        w = problem.init_params() if w0 is None else w0
        step = 1.0 / problem.lipschitz(theta)
        for k in range(1, self.max_iter + 1):
            g = problem.grad(w, theta)
            w = w - step * g
            if float(torch.linalg.vector_norm(g)) <= self.tol:
                break
        return InnerSolution(w=w, n_iter=k, residual=float(torch.linalg.vector_norm(g)),
                             residual_kind=self.residual_kind)


class FiniteDifferences(HypergradientMethod):
    """A new hypergradient method: central differences of the outer value."""

    def __init__(self, eps=1e-5):
        self.eps = eps

    def compute(self, problem, criterion, theta, *, solver, warm_start=None, with_grad=True):
        def value(t):
            return float(criterion.value(solver.solve(problem, t).w))

        w = solver.solve(problem, theta).w
        grad = torch.stack([torch.tensor((value(theta + e) - value(theta - e)) / (2 * self.eps),
                                         dtype=theta.dtype)
                            for e in self.eps * torch.eye(theta.numel(), dtype=theta.dtype)])
        return HypergradResult(float(criterion.value(w)), grad, w, WarmStart(w))


def test_every_registered_part_declares_itself():
    for cls in (*SOLVERS.values(), CoordinateDescent, LogisticNewtonCD):
        assert issubclass(cls, InnerSolver) and cls.residual_kind in RESIDUAL_KINDS
        assert isinstance(cls.requires, tuple) and isinstance(cls.unrollable, bool)
    assert {n for n, cls in SOLVERS.items() if cls.unrollable} == {"fista", "ista"}
    for cls in METHODS.values():
        assert issubclass(cls, HypergradientMethod)
    assert {n for n, cls in METHODS.items() if cls.differentiates_iterations} == \
        {"forward", "reverse"}


@pytest.mark.parametrize("make, registry", [(make_inner_solver, SOLVERS),
                                            (make_hypergradient, METHODS),
                                            (make_linear_solver, LINEAR_SOLVERS)])
def test_names_build_their_class_and_unknown_names_list_the_valid_ones(make, registry):
    for name, cls in registry.items():
        assert type(make(name)) is cls
    with pytest.raises(ValueError, match=str(sorted(registry)).replace("[", r"\[")):
        make("no-such-part")


def test_a_new_solver_is_one_class_and_one_registry_line():
    registry = {**SOLVERS, "gd": GradientDescent}  # the registry line
    problem, criterion, theta = _ridge()
    solver = make_inner_solver("gd", registry, tol=1e-13)
    out = make_hypergradient("implicit").compute(problem, criterion, theta, solver=solver)
    ref = make_hypergradient("implicit").compute(problem, criterion, theta,
                                                 solver=make_inner_solver("closed_form"))
    torch.testing.assert_close(out.grad, ref.grad, rtol=1e-8, atol=1e-12)
    assert make_inner_solver("closed_form", registry).residual_kind == "exact"
    # The engine's own registry is untouched.
    assert "gd" not in SOLVERS


def test_a_new_method_is_one_class_and_one_registry_line():
    registry = {**METHODS, "fd": FiniteDifferences}  # the registry line
    problem, criterion, theta = _ridge(1)
    solver = make_inner_solver("closed_form")
    out = make_hypergradient("fd", registry, eps=1e-5).compute(problem, criterion, theta,
                                                               solver=solver)
    ref = ImplicitDifferentiation().compute(problem, criterion, theta, solver=solver)
    torch.testing.assert_close(out.grad, ref.grad, rtol=1e-6, atol=1e-10)
    assert isclose(out.value, ref.value, rel_tol=1e-12)


def test_the_estimator_layer_adds_coordinate_descent_by_one_line():
    assert _proximal_parts.INNER_SOLVERS == {**SOLVERS, "cd": CoordinateDescent,
                                             "newton-cd": LogisticNewtonCD}
    assert set(_proximal_parts.SOLVER_OPTIONS) - {"auto"} <= set(_proximal_parts.INNER_SOLVERS)
    assert not CoordinateDescent.unrollable and not LogisticNewtonCD.unrollable
