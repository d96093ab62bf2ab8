"""The outer loop's grid and stopping rules, on objectives given in closed form.

A stand-in hypergradient method evaluates ``value(theta)`` and its gradient directly, so each
test controls exactly what the loop sees: a plateau, a kink, a loose grid solver.
"""

import numpy as np
import pytest
import torch

from skbilevel.engine import Fold, minimize_hyperparams
from skbilevel.engine._results import HypergradResult, WarmStart
from skbilevel.engine.outer import make_optimizer


class ClosedForm:
    """A hypergradient method whose fold objective is ``fold.problem(theta)``.

    With ``solver == "loose"`` the value is off by ``loose_bias`` (an inexact inner solve).
    """

    def __init__(self, loose_bias=0.0):
        self.loose_bias = loose_bias
        self.calls = []

    def compute(self, problem, criterion, theta, solver=None, warm_start=None,
                with_grad=True):
        t = theta.detach().clone().requires_grad_(True)
        value = problem(t)
        grad = torch.autograd.grad(value, t)[0] if with_grad else None
        self.calls.append((solver, t.detach().numpy().copy()))
        bias = self.loose_bias if solver == "loose" else 0.0
        return HypergradResult(value=float(value.detach()) + bias, grad=grad, w=t.detach(),
                               warm_start=WarmStart())


def _run(fun, theta0, method=None, **kwargs):
    method = method or ClosedForm()
    kwargs.setdefault("optimizer", make_optimizer("lbfgs", max_iter=50, tol=1e-8))
    result = minimize_hyperparams([Fold(fun, None)], torch.tensor(theta0, dtype=torch.float64),
                                  solver="exact", method=method, **kwargs)
    return result, method


def _grid(values):
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_grid_patience_applies_within_each_path():
    # Two paths of 5 candidates; each worsens after its second point. With patience 1
    # every path stops one point past its best, and the second path is still visited.
    def fun(t):
        return (t[0] - 1.5) ** 2 * torch.where(t[0] < 10, 1.0, 2.0)

    grid = _grid([0, 1, 2, 3, 4, 10, 11, 12, 13, 14])
    result, method = _run(fun, [0.0], start_grid=grid[1:], grid_patience=1,
                          grid_path_length=5, bounds=(-20.0, 20.0))
    visited = [float(th[0]) for solver, th in method.calls if solver == "exact"][:6]
    assert visited == [0.0, 1.0, 2.0, 3.0, 10.0, 11.0]
    assert abs(float(result.theta[0]) - 1.5) < 1e-4


def test_grid_plateau_is_a_tie_not_a_worse_point():
    # Strong penalties that zero every coefficient give the same CV value: the path must
    # cross that plateau instead of counting it against the patience.
    def fun(t):
        return torch.where(t[0] > 3, 5.0 + 0 * t[0], (t[0] - 1.0) ** 2)

    grid = _grid([6, 5, 4, 2, 1, 0, -1])
    result, method = _run(fun, [7.0], start_grid=grid, grid_patience=1,
                          bounds=(-5.0, 10.0))
    visited = [float(th[0]) for _, th in method.calls]
    assert visited[:7] == [7.0, 6.0, 5.0, 4.0, 2.0, 1.0, 0.0]  # stops one past the best
    assert abs(float(result.theta[0]) - 1.0) < 1e-4


def _table(values):
    """The piecewise-linear interpolation of ``values`` at ``theta = 0, 1, ...``."""
    table = torch.tensor(values, dtype=torch.float64)

    def fun(t):
        x = t[0].clamp(0, len(values) - 1)
        k = x.detach().floor().clamp(max=len(values) - 2).long()
        return table[k] + (x - k) * (table[k + 1] - table[k])
    return fun


@pytest.mark.parametrize("below_first", [False, True])
def test_grid_patience_below_first_waits_for_a_point_below_the_first(below_first):
    # The first value (the null model of an L1 path) is followed by two rises above it,
    # then the basin at theta = 5, then two rises. Counted from the first point, the
    # patience stops at the first two rises; counted below the first value, it stops two
    # points past the basin.
    fun = _table([1.0, 1.0, 1.2, 1.3, 0.5, 0.4, 0.6, 0.7, 0.8, 0.9])
    grid = _grid(range(1, 10))
    result, method = _run(fun, [0.0], start_grid=grid, grid_patience=2,
                          grid_patience_below_first=below_first, bounds=(0.0, 9.0))
    visited = [float(th[0]) for _, th in method.calls][:8]
    if below_first:
        assert visited == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        assert result.value <= 0.4 + 1e-12
    else:
        assert visited[:4] == [0.0, 1.0, 2.0, 3.0] and visited[4] < 1.0  # the optimizer's
        assert result.value >= 0.9


def test_grid_solver_ranks_the_grid_but_never_decides_the_answer():
    # The loose solver reports values 1.0 too low: it still ranks the grid (same bias
    # everywhere), but the answer and its value come from exact evaluations only.
    def fun(t):
        return (t[0] - 0.3) ** 2

    grid = _grid([-2.0, 0.0, 2.0])
    method = ClosedForm(loose_bias=-1.0)
    result, _ = _run(fun, [4.0], method=method, start_grid=grid, grid_solver="loose",
                     bounds=(-5.0, 5.0))
    grid_calls = [th for solver, th in method.calls if solver == "loose"]
    assert len(grid_calls) == 4
    assert method.calls[4] == ("exact", pytest.approx(np.array([0.0])))  # best grid point
    assert abs(float(result.theta[0]) - 0.3) < 1e-4
    assert result.value == pytest.approx(float(fun(result.theta)), abs=1e-12)
    phases = [rec["phase"] for rec in result.history]
    assert phases[:4] == ["grid"] * 4 and set(phases[4:]) == {"optimize"}


def _kink(t):
    return torch.abs(t[0] - 0.3) + 0.1 * (t[0] - 0.3) ** 2


def test_stall_patience_stops_the_zigzag_at_a_kink():
    free, _ = _run(_kink, [2.0], bounds=(-5.0, 5.0))
    stalled, _ = _run(_kink, [2.0], bounds=(-5.0, 5.0), stall_patience=3, stall_tol=1e-6)
    n_free = sum(rec["phase"] == "optimize" for rec in free.history)
    n_stalled = sum(rec["phase"] == "optimize" for rec in stalled.history)
    assert n_stalled < n_free
    assert stalled.converged and "no decrease" in stalled.message
    assert abs(float(stalled.theta[0]) - 0.3) < 1e-3
    # Every evaluation after the last progress fails to improve by the relative tolerance.
    values = [rec["objective"] for rec in stalled.history]
    best_before = min(values[:-3])
    assert all(v >= best_before * (1 - 1e-6) for v in values[-3:])


@pytest.mark.parametrize("first_step", [None, 0.5])
def test_lbfgsb_first_step_sets_the_length_of_the_first_move(first_step):
    # A flat quadratic: curvature 1e-3, minimum at 5. L-BFGS-B's boxed first step is the
    # raw gradient (length 5e-3); with first_step it is first_step long. Both converge.
    calls = []

    def fun(theta):
        calls.append(theta.copy())
        return 5e-4 * (theta[0] - 5.0) ** 2, np.array([1e-3 * (theta[0] - 5.0)])

    outcome = make_optimizer("lbfgs", max_iter=50, tol=1e-9, first_step=first_step).run(
        fun, np.array([0.0]), (np.array([-10.0]), np.array([10.0])))
    expected = 5e-3 if first_step is None else first_step
    assert abs(calls[1][0] - calls[0][0]) == pytest.approx(expected, rel=1e-9)
    assert outcome.theta[0] == pytest.approx(5.0, abs=1e-5)
    assert np.array_equal(calls[0], [0.0]) and not np.array_equal(calls[1], [0.0])
    if first_step is not None:  # the start point is evaluated once, not twice
        assert sum(np.array_equal(c, [0.0]) for c in calls) == 1
