"""Extending the engine: a penalty, an inner solver, a hypergradient method and an outer
driver, each one class (plus one registry line), as the user guide's "Extending the
engine" page shows them -- the page includes these classes from this file, so the
documented code is the tested code."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skbilevel.engine import (Fold, HypergradResult, InnerSolution, WarmStart,
                              minimize_hyperparams)
from skbilevel.engine.hypergrad import METHODS, HypergradientMethod, make_hypergradient
from skbilevel.engine.inner import ProximalProblem, RidgeProblem
from skbilevel.engine.loop import (DRIVERS, BestEvaluated, FoldEvaluator, OuterLoop,
                                   StepwiseDriver, make_driver)
from skbilevel.engine.outer import HeldOutMSE, make_optimizer
from skbilevel.engine.solvers import SOLVERS, FISTA, InnerSolver, make_inner_solver

F64 = torch.float64


# -- a penalty ----------------------------------------------------------------------------
class NonNegativeL1:
    """``alpha * sum(w)`` on ``w >= 0``: the nonnegative Lasso, ``alpha = exp(theta[0])``."""

    n_hyper = 1
    smooth = False

    def value(self, w, theta):
        return torch.exp(theta[0]) * w.sum()

    def prox(self, z, step, theta):
        return torch.clamp(z - step * torch.exp(theta[0]), min=0.0)

    def prox_jacobian(self, z, step, theta):  # forward mode: d prox / dz, d prox / dtheta
        tau = step * torch.exp(theta[0])
        active = (z > tau).to(z.dtype)
        return active, (-tau * active).reshape(-1, 1)

    def support(self, w):  # where the penalty is smooth (implicit differentiation)
        return w > 0

    def hessian_diag(self, w, theta):
        return torch.zeros_like(w)

    def cross_jacobian(self, w, theta):  # d (grad_w penalty) / d theta on the support
        return (torch.exp(theta[0]) * torch.ones_like(w)).reshape(-1, 1)


# -- an inner solver ---------------------------------------------------------------------
class GradientDescentSolver(InnerSolver):
    """Gradient descent with step ``1 / L`` on a smooth inner problem."""

    requires = ("grad", "lipschitz", "init_params")

    def __init__(self, max_iter=10_000, tol=1e-10):
        self.max_iter, self.tol = max_iter, tol

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        self.check_problem(problem)  # a clear error naming what the problem lacks
        w = problem.init_params() if w0 is None else w0.clone()
        step = 1.0 / problem.lipschitz(theta)
        for k in range(1, self.max_iter + 1):
            g = problem.grad(w, theta)
            residual = float(torch.linalg.vector_norm(g))
            if residual <= self.tol:
                return InnerSolution(w, n_iter=k - 1, residual=residual)
            w = w - step * g
        return InnerSolution(w, n_iter=self.max_iter, residual=residual, converged=False)


MY_SOLVERS = {**SOLVERS, "gd": GradientDescentSolver}


# -- a hypergradient method ----------------------------------------------------------------
class CentralDifferences(HypergradientMethod):
    """``dF/dtheta_i ~ (F(theta + h e_i) - F(theta - h e_i)) / 2h``: 2 n_hyper solves."""

    requires = ("init_params",)

    def __init__(self, h=1e-5):
        self.h = h

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        self._check(problem, solver)
        w = solver.solve(problem, theta).w
        grad = None
        if with_grad:
            grad = torch.empty_like(theta)
            for i in range(theta.numel()):
                e = torch.zeros_like(theta)
                e[i] = self.h
                up = criterion.value(solver.solve(problem, theta + e).w)
                down = criterion.value(solver.solve(problem, theta - e).w)
                grad[i] = (up - down) / (2 * self.h)
        return HypergradResult(float(criterion.value(w)), grad, w, WarmStart(w))


MY_METHODS = {**METHODS, "central_differences": CentralDifferences}


# -- an outer driver -----------------------------------------------------------------------
class HeavyBall(StepwiseDriver):
    """``theta <- theta - lr g + momentum (theta - theta_prev)``; stops on a small step."""

    def __init__(self, lr=1.0, momentum=0.5, tol=1e-6, max_iter=200):
        super().__init__(max_iter)
        self.lr, self.momentum, self.tol = lr, momentum, tol

    def init(self, ctx, theta):
        return {"theta": theta, "previous": theta}

    def step(self, ctx, state):
        _, grad = ctx.evaluate(state["theta"])
        theta = state["theta"] - self.lr * grad.cpu().numpy() + \
            self.momentum * (state["theta"] - state["previous"])
        return {"theta": ctx.project(theta), "previous": state["theta"]}

    def theta(self, state):
        return state["theta"]

    def terminate(self, ctx, state):
        if np.abs(state["theta"] - state["previous"]).max() < self.tol:
            return "step below tol"
        return None


MY_DRIVERS = {**DRIVERS, "heavy_ball": HeavyBall}


# -- the tests -----------------------------------------------------------------------------
def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def _data(seed, n=60, d=12):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X[:, :4] @ np.array([2.0, 1.5, 1.0, 0.5]) + rng.standard_normal(n)
    return X, y


def _ridge_folds(seed, n_folds=3):
    X, y = _data(seed)
    parts = np.array_split(np.arange(len(y)), n_folds)
    folds = []
    for i in range(n_folds):
        tr = np.concatenate([p for j, p in enumerate(parts) if j != i])
        p = RidgeProblem(T(X[tr]), T(y[tr, None]))
        folds.append(Fold(p, HeldOutMSE.for_problem(p, T(X[parts[i]]), T(y[parts[i], None]))))
    return folds


def test_a_new_penalty_works_with_fista_and_implicit_differentiation():
    X, y = _data(0)
    problem = ProximalProblem.least_squares(T(X[:40]), T(y[:40]), NonNegativeL1())
    criterion = HeldOutMSE.for_problem(problem, T(X[40:]), T(y[40:, None]))
    solver = FISTA(max_iter=100_000, tol=1e-13)
    method = make_hypergradient("implicit_support")
    theta = T([np.log(0.05)])
    res = method.compute(problem, criterion, theta, solver=solver)
    assert bool((res.w >= 0).all()) and 0 < int((res.w > 0).sum()) < X.shape[1]
    h = 1e-5
    values = [float(criterion.value(solver.solve(problem, theta + s).w)) for s in (h, -h)]
    assert_allclose(float(res.grad[0]), (values[0] - values[1]) / (2 * h), rtol=1e-4)


def _assert_same_hypergradients(folds, theta, ours, reference):
    """``ours`` and ``reference``, each ``(method, solver)``, agree on every fold."""
    for fold in folds:
        a, b = (method.compute(fold.problem, fold.criterion, theta, solver=solver)
                for method, solver in (ours, reference))
        assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)
        assert a.value == pytest.approx(b.value, rel=1e-9)


def test_a_new_solver_is_one_class_and_one_registry_line():
    ours = make_inner_solver("gd", registry=MY_SOLVERS, tol=1e-12)
    method = make_hypergradient("implicit")
    _assert_same_hypergradients(_ridge_folds(1), T([0.5]), (method, ours),
                                (method, make_inner_solver("closed_form")))
    theta = T([0.5])

    class NoSmoothness:  # a problem without the declared lipschitz
        def init_params(self):
            return torch.zeros(3, 1, dtype=F64)

        def grad(self, w, theta):
            return w

    assert not GradientDescentSolver.supports(NoSmoothness())
    with pytest.raises(TypeError, match="GradientDescentSolver needs .* lipschitz.*"
                                        "NoSmoothness lacks it"):
        ours.solve(NoSmoothness(), theta)


def test_a_new_method_is_one_class_and_one_registry_line():
    solver = make_inner_solver("closed_form")
    ours = make_hypergradient("central_differences", registry=MY_METHODS)
    _assert_same_hypergradients(_ridge_folds(2), T([1.0]), (ours, solver),
                                (make_hypergradient("implicit"), solver))


def test_a_new_driver_is_one_class_and_one_registry_line():
    folds = _ridge_folds(5)
    common = dict(solver=make_inner_solver("closed_form"),
                  method=make_hypergradient("implicit"))
    reference = minimize_hyperparams(folds, T([0.0]), bounds=(-8.0, 8.0),
                                     optimizer=make_optimizer("lbfgs", tol=1e-10), **common)
    driver = make_driver("heavy_ball", registry=MY_DRIVERS, lr=2.0, tol=1e-8, max_iter=500)
    result = OuterLoop(FoldEvaluator(_ridge_folds(5), **common), driver,
                       selection=BestEvaluated(), bounds=(-8.0, 8.0)).run(T([0.0]))
    assert result.converged
    assert_allclose(float(result.theta[0]), float(reference.theta[0]), atol=1e-4)
