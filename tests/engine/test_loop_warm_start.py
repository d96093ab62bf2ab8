"""``FoldEvaluator(warm_start="nearest")``: each call starts from the nearest past call."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skbilevel._logistic_problem import logistic_criterion, logistic_problem
from skbilevel._proximal_parts import make_method, make_solver
from skbilevel.engine import Fold, HypergradResult, WarmStart
from skbilevel.engine.inner import L2
from skbilevel.engine.loop import FoldEvaluator

F64 = torch.float64


class RecordingMethod:
    """A hypergradient method whose solution is ``theta ** 2``; it records the warm
    starts it receives and hands back a recycle space naming the call."""

    def __init__(self):
        self.received, self.n_calls = [], 0

    def compute(self, problem, criterion, theta, *, solver, warm_start=None, with_grad=True):
        self.n_calls += 1
        self.received.append(warm_start)
        w = theta ** 2
        return HypergradResult(float(theta.sum()), torch.ones_like(theta) if with_grad
                               else None, w, WarmStart(w, w + 1, recycle=self.n_calls))


@pytest.mark.parametrize("mode", ["last", "nearest"])
def test_each_call_starts_from_the_nearest_past_call(mode):
    method = RecordingMethod()
    evaluator = FoldEvaluator([Fold(None, None)] * 2, None, method, warm_start=mode)
    for t in (3.0, 2.0, 1.0, 0.0):  # a screening path, strong to weak
        evaluator(torch.tensor([t], dtype=F64), with_grad=False, phase="grid")
    assert method.received[0] is None  # nothing yet to start from
    evaluator(torch.tensor([2.2], dtype=F64), with_grad=True, phase="optimize")
    starts = method.received[-2:]  # the two folds of the last call
    # "nearest": between the solutions at 2 (nearest; its adjoint) and 3, the secant.
    start, adjoint = (4.0 + 0.2 * (9.0 - 4.0), 5.0) if mode == "nearest" else (0.0, 1.0)
    for warm in starts:
        assert_allclose([float(warm.w), float(warm.adjoint)], [start, adjoint])
    # The rest of the state (a recycle space) is always the previous call's, per fold.
    assert [warm.recycle for warm in starts] == [7, 8]
    assert_allclose(evaluator.fold_solutions[0].numpy(), [2.2 ** 2])  # the last call's


def test_the_latest_of_equally_near_calls_and_a_bounded_memory():
    method = RecordingMethod()
    evaluator = FoldEvaluator([Fold(None, None)], None, method, warm_start="nearest",
                              max_warm_starts=2)
    def start_of(t):  # the adjoint's: the nearest call's solution plus one
        evaluator(torch.tensor([t], dtype=F64), with_grad=False, phase="grid")
        warm = method.received[-1]
        return None if warm is None else float(warm.adjoint) - 1

    for t in (0.0, 10.0, 4.0):
        start_of(t)
    assert start_of(9.0) == 100.0  # 10's, not the last call's (4)
    assert start_of(1.0) == 16.0  # 0 was dropped (two kept: 4 and 9), not the last's 9
    assert start_of(5.0) == 1.0  # 9 and 1 equally near: the latest
    assert float(method.received[-1].w) == 1.0 + 0.5 * (81.0 - 1.0)  # halfway: secant
    assert start_of(0.0) == 1.0  # not between 1 and 5 (kept): the nearest (1) as it is
    assert float(method.received[-1].w) == 1.0


def test_bad_warm_start_is_refused():
    with pytest.raises(ValueError, match="warm_start"):
        FoldEvaluator([], None, RecordingMethod(), warm_start="first")
    with pytest.raises(ValueError, match="max_warm_starts"):
        FoldEvaluator([], None, RecordingMethod(), warm_start="nearest", max_warm_starts=0)


def test_logistic_path_restarts_cheaper_from_the_nearest_solution():
    # L-BFGS fold fits of an L2 logistic regression: after a path from strong to weak
    # penalty, a point near the path's start converges in fewer iterations from there,
    # to the same value and hypergradient.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 20))
    y = (X @ rng.standard_normal(20) + rng.standard_normal(300) > 0).astype(np.int64)
    X = torch.as_tensor(X, dtype=F64)
    folds = []
    for va in np.array_split(np.arange(300), 3):
        tr = np.setdiff1d(np.arange(300), va)
        problem = logistic_problem(X[tr], torch.as_tensor(y[tr]), 2,
                                   torch.ones(len(tr), dtype=F64), L2(), True)
        folds.append(Fold(problem, logistic_criterion(problem, X[va], torch.as_tensor(y[va]))))
    out = {}
    for mode in ("last", "nearest"):
        evaluator = FoldEvaluator(folds, make_solver("lbfgs", 1.0, 1e-10, max_iter=1000),
                                  make_method("implicit"), warm_start=mode)
        for t in (4.0, 2.0, 0.0, -2.0, -4.0):  # theta = -log C
            evaluator(torch.tensor([t], dtype=F64), with_grad=False, phase="grid")
        value, grad = evaluator(torch.tensor([3.8], dtype=F64), with_grad=True,
                                phase="optimize")
        out[mode] = value, float(grad[0]), evaluator.history[-1]["n_inner_iter"]
    assert_allclose(out["nearest"][:2], out["last"][:2], rtol=1e-6)
    assert out["nearest"][2] < 0.75 * out["last"][2]
