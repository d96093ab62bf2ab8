"""The outer loop's parts composed in other shapes than ``minimize_hyperparams``'s.

Private tuning needs fixed steps, a gradient transform and a last-iterate answer with no
value ever computed; single-loop methods need a driver that steps the inner variables and
``theta`` together. Both are compositions of the same parts.
"""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skbilevel.engine import Fold, minimize_hyperparams
from skbilevel.engine.hypergrad import ImplicitDifferentiation
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.loop import (AverageIterates, BestEvaluated, ClipGradient,
                                   FixedStepGradientDescent, FoldEvaluator, GradientTransform,
                                   GridScreening, LastIterate, OuterLoop, Stall,
                                   StepwiseDriver)
from skbilevel.engine.outer import HeldOutMSE, make_optimizer
from skbilevel.engine.solvers import ClosedFormSolver

F64 = torch.float64


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


class CountingCriterion:
    """A held-out criterion that counts how often its value is computed."""

    def __init__(self, criterion):
        self.criterion, self.n_value = criterion, 0

    def value(self, w):
        self.n_value += 1
        return self.criterion.value(w)

    def grad_w(self, w):
        return self.criterion.grad_w(w)

    def grad_theta(self, w, theta):
        return self.criterion.grad_theta(w, theta)


def _folds(make_data, seed, n_folds=4, n_samples=80):
    X, y, _ = make_data(seed, n_samples=n_samples, noise=1.5, sample_weight=False)
    parts = np.array_split(np.random.default_rng(seed).permutation(n_samples), n_folds)
    folds = []
    for i in range(n_folds):
        train = np.concatenate([p for j, p in enumerate(parts) if j != i])
        problem = RidgeProblem(T(X[train]), T(y[train, None]))
        criterion = HeldOutMSE.for_problem(problem, T(X[parts[i]]), T(y[parts[i], None]))
        folds.append(Fold(problem, CountingCriterion(criterion)))
    return folds


def _double_loop_optimum(folds, theta0):
    result = minimize_hyperparams(folds, T([theta0]), solver=ClosedFormSolver(),
                                  method=ImplicitDifferentiation(),
                                  optimizer=make_optimizer("lbfgs", max_iter=100, tol=1e-10))
    return float(result.theta[0])


def test_fixed_steps_clip_and_last_iterate_read_no_value(make_data):
    folds = _folds(make_data, 0)
    theta0, step, max_norm = 0.0, 1.0, 0.05
    evaluator = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(),
                              transform=ClipGradient(max_norm), reveal_values=False)
    driver = FixedStepGradientDescent(step_size=step, max_iter=40)
    result = OuterLoop(evaluator, driver, selection=LastIterate(),
                       bounds=(-10.0, 10.0)).run(T([theta0]))
    assert sum(f.criterion.n_value for f in folds) == 0
    assert all(np.isnan(r["objective"]) for r in result.history)
    assert np.isnan(result.value) and result.n_iter == 40 and len(result.history) == 40
    thetas = np.array([theta0] + [r["theta"][0] for r in result.history] +
                      [float(result.theta[0])])
    # Every step is the clipped gradient times the step size: never longer than that.
    assert np.all(np.abs(np.diff(thetas)) <= step * max_norm * (1 + 1e-12))
    assert np.abs(np.diff(thetas)).max() == pytest.approx(step * max_norm)
    # The last iterate is a point one step past the last evaluated one.
    assert float(result.theta[0]) != result.history[-1]["theta"][0]
    # ... and heads for the CV optimum (the double loop's answer).
    target = _double_loop_optimum(_folds(make_data, 0), theta0)
    assert abs(thetas[-1] - target) < abs(theta0 - target)


def test_withheld_values_refuse_parts_that_read_them(make_data):
    folds = _folds(make_data, 0)
    evaluator = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(),
                              reveal_values=False)
    driver = FixedStepGradientDescent(step_size=0.1, max_iter=3)
    with pytest.raises(ValueError, match="BestEvaluated"):
        OuterLoop(evaluator, driver)
    with pytest.raises(ValueError, match="Stall"):
        OuterLoop(evaluator, driver, stopping=[Stall(3)], selection=LastIterate())
    with pytest.raises(ValueError, match="holdout"):
        FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(), holdout=folds[0],
                      reveal_values=False)
    with pytest.raises(ValueError, match="GridScreening"):
        OuterLoop(evaluator, driver, screening=GridScreening([T([1.0])]),
                  selection=AverageIterates())


def test_per_fold_transform_sees_every_fold(make_data):
    seen = []

    class Record(GradientTransform):
        per_fold = True

        def __call__(self, grads, theta):
            seen.append(grads.clone())
            return torch.zeros_like(grads)

    folds = _folds(make_data, 1, n_folds=3)
    evaluator = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(),
                              transform=Record())
    value, grad = evaluator(T([0.5]), with_grad=True, phase="optimize")
    assert seen[0].shape == (3, 1) and torch.count_nonzero(seen[0]) == 3
    assert torch.equal(grad, torch.zeros(1, dtype=F64)) and np.isfinite(value)
    # The average is the fold average the identity transform would have given.
    plain = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation())
    assert_allclose(plain(T([0.5]), with_grad=True, phase="optimize")[1].numpy(),
                    seen[0].mean(0).numpy(), rtol=1e-14)


def test_average_iterates_is_the_mean_of_the_evaluated_points(make_data):
    folds = _folds(make_data, 2)
    evaluator = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(),
                              reveal_values=False)
    result = OuterLoop(evaluator, FixedStepGradientDescent(0.3, max_iter=10),
                       selection=AverageIterates(burn_in=0.5)).run(T([1.0]))
    thetas = np.array([r["theta"] for r in result.history])
    assert_allclose(result.theta.numpy(), thetas[5:].mean(0), rtol=1e-14)


class SingleLoopRidge(StepwiseDriver):
    """A toy single-loop method: one gradient step on every fold's ``w`` and on its
    adjoint ``v`` (``H v = grad_w F``), then one hypergradient step on ``theta`` from the
    current ``(w, v)``, with no inner solve at all (SOBA-like)."""

    def __init__(self, lr_theta, max_iter):
        super().__init__(max_iter)
        self.lr_theta = lr_theta

    def init(self, ctx, theta):
        t = ctx.tensor(theta)
        ws = [f.problem.init_params() for f in ctx.folds]
        return {"theta": t, "w": ws, "v": [torch.zeros_like(w) for w in ws]}

    def step(self, ctx, state):
        theta, grads, ws, vs = state["theta"], [], [], []
        for fold, w, v in zip(ctx.folds, state["w"], state["v"]):
            p, c = fold.problem, fold.criterion
            lr = 1.0 / p.lipschitz(theta)
            w = w - lr * p.grad(w, theta)
            v = v - lr * (p.hvp(w, theta, v) - c.grad_w(w))
            grads.append(c.grad_theta(w, theta) - p.cross_vjp(w, theta, v))
            ws.append(w)
            vs.append(v)
        theta = ctx.tensor(ctx.project((theta - self.lr_theta * torch.stack(grads).mean(0))
                                       .numpy()))
        ctx.record(theta.numpy())
        return {"theta": theta, "w": ws, "v": vs}

    def theta(self, state):
        return state["theta"].numpy()


def test_single_loop_driver_reaches_the_double_loop_optimum(make_data):
    target = _double_loop_optimum(_folds(make_data, 3), 0.0)
    folds = _folds(make_data, 3)
    evaluator = FoldEvaluator(folds, ClosedFormSolver(), ImplicitDifferentiation(),
                              reveal_values=False)
    result = OuterLoop(evaluator, SingleLoopRidge(lr_theta=2.0, max_iter=4000),
                       selection=LastIterate(), bounds=(-10.0, 10.0)).run(T([0.0]))
    assert sum(f.criterion.n_value for f in folds) == 0
    assert len(result.history) == 4000 and not result.converged
    assert abs(float(result.theta[0]) - target) < 1e-4


def test_the_facade_is_the_composition_of_its_parts(make_data):
    folds = _folds(make_data, 4)
    grid = T(np.linspace(-4, 4, 5))[:, None]
    common = dict(solver=ClosedFormSolver(), method=ImplicitDifferentiation())
    opt = make_optimizer("lbfgs", max_iter=50, tol=1e-9)
    facade = minimize_hyperparams(folds, grid[0], start_grid=grid[1:], optimizer=opt,
                                  bounds=(-8.0, 8.0), stall_patience=3, **common)
    from skbilevel.engine.loop import OptimizerDriver
    evaluator = FoldEvaluator(folds, **common)
    composed = OuterLoop(evaluator, OptimizerDriver(opt), screening=GridScreening(list(grid)),
                         stopping=[Stall(3, 1e-7)], selection=BestEvaluated(),
                         bounds=(-8.0, 8.0)).run(grid[0])
    assert torch.equal(facade.theta, composed.theta) and facade.value == composed.value
    assert [r["theta"][0] for r in facade.history] == \
        [r["theta"][0] for r in composed.history]
