"""Drivers: what moves the hyperparameters between evaluations.

Every driver has one method, ``drive(ctx, start) -> OptimizeOutcome``. Two shapes:

* :class:`OptimizerDriver` hands a black-box objective ``theta -> (value, grad)`` to an
  outer optimizer that owns its loop (L-BFGS-B, the bracketing search, Adam, ...);
* :class:`StepwiseDriver` owns the loop as ``init / step / terminate``, the shape of the
  inner solvers' ``update``: fixed-step methods, and single-loop methods that move the
  inner variables, ``theta`` and multipliers together and so cannot be a black box.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._capabilities import build, provides
from ..outer import OptimizeOutcome
from ._stopping import StopSearch


def _n_optimize(history):
    return sum(r["phase"] == "optimize" for r in history)


class OptimizerDriver:
    """Drive an outer optimizer with ``run(fun, theta0, bounds) -> OptimizeOutcome``.

    The objective it sees is normalised by the best screening value (its tolerances are
    relative), non-finite evaluations read as ``+inf`` (a line search backs off), and a
    ``penalty`` is added to it.

    Parameters
    ----------
    optimizer : outer optimizer
        See :mod:`skbilevel.engine.outer`. One whose ``accepts_values`` is true also
        receives the screening grid's values (``known=``) to start and close brackets.
    penalty : callable or None
        ``theta -> (value, grad)`` added to the objective (a prior on the
        hyperparameters, e.g. shrinkage of many ``log alpha`` toward their mean).
    local_radius : float, array or None
        Confine the optimizer to ``start +- local_radius`` (within the loop's bounds): on
        a unimodal curve the minimum lies within one grid step of the best grid point,
        and the box stops a quasi-Newton method's early secant steps from overshooting to
        the far bound of a flat CV curve.
    """

    def __init__(self, optimizer, penalty=None, local_radius=None):
        self.optimizer, self.penalty, self.local_radius = optimizer, penalty, local_radius

    def _box(self, start, bounds):
        if self.local_radius is None:
            return bounds
        low, high = start - self.local_radius, start + self.local_radius
        if bounds is not None:
            low, high = np.maximum(low, bounds[0]), np.minimum(high, bounds[1])
        return low, high

    def drive(self, ctx, start) -> OptimizeOutcome:
        scale = abs(min((r["objective"] for r in ctx.history), default=0.0)) or 1.0

        def fun(theta_np):
            theta = ctx.tensor(theta_np)
            value, grad = ctx.evaluate(theta)
            if not np.isfinite(value) or not bool(grad.isfinite().all()):
                return np.inf, np.zeros_like(theta_np)
            if self.penalty is not None:
                p_value, p_grad = self.penalty(theta)
                value, grad = value + float(p_value), grad + p_grad
            return value / scale, grad.detach().cpu().double().numpy() / scale

        options = {}
        # A user's optimizer need not declare it: none is taken as False.
        accepts_values = provides(self.optimizer, "accepts_values") and \
            self.optimizer.accepts_values
        if accepts_values and ctx.evaluator.holdout is None and self.penalty is None:
            options["known"] = [(r["theta"], r["objective"] / scale)
                                for r in ctx.history if r["phase"] == "grid"]
        try:
            return self.optimizer.run(fun, start, self._box(start, ctx.bounds), **options)
        except StopSearch as stop:
            return OptimizeOutcome(start, _n_optimize(ctx.history), True, str(stop))


class StepwiseDriver:
    """Base class of drivers that own the loop as ``init / step / terminate``.

    Subclasses implement :meth:`init`, :meth:`step` and :meth:`theta`, and may override
    :meth:`terminate`. State travels in the returned objects, never on ``self``.

    Parameters
    ----------
    max_iter : int
        Maximum number of steps.
    """

    def __init__(self, max_iter: int = 100):
        self.max_iter = max_iter

    def init(self, ctx, theta):
        """Return the state at the start ``theta`` (numpy)."""
        raise NotImplementedError

    def step(self, ctx, state):
        """Return the state after one step."""
        raise NotImplementedError

    def theta(self, state) -> np.ndarray:
        """The hyperparameters of ``state`` (numpy)."""
        raise NotImplementedError

    def terminate(self, ctx, state) -> Optional[str]:
        """A reason to stop (converged) at ``state``, or None to go on."""
        return None

    def drive(self, ctx, start) -> OptimizeOutcome:
        state, k = self.init(ctx, start), 0
        try:
            while k < self.max_iter:
                state, k = self.step(ctx, state), k + 1
                reason = self.terminate(ctx, state)
                if reason is not None:
                    return OptimizeOutcome(self.theta(state), k, True, reason)
        except StopSearch as stop:
            return OptimizeOutcome(self.theta(state), k, True, str(stop))
        return OptimizeOutcome(self.theta(state), k, False, "maximum iterations reached")


class FixedStepGradientDescent(StepwiseDriver):
    """``theta <- project(theta - step_size * grad)``: reads hypergradients only.

    The driver of noisy first-order methods (private tuning): no line search, no value.

    Parameters
    ----------
    step_size : float
        Step in ``theta`` units per unit of hypergradient.
    max_iter : int
        Number of steps (each one hypergradient evaluation).
    """

    def __init__(self, step_size: float, max_iter: int = 100):
        super().__init__(max_iter)
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0, got {step_size!r}")
        self.step_size = float(step_size)

    def init(self, ctx, theta):
        return np.asarray(theta, dtype=float).copy()

    def step(self, ctx, state):
        _, grad = ctx.evaluate(ctx.tensor(state))
        step = self.step_size * grad.detach().cpu().double().numpy()
        return ctx.project(state - step)

    def theta(self, state):
        return state


DRIVERS = {"optimizer": OptimizerDriver, "fixed_step": FixedStepGradientDescent}


def make_driver(name: str, registry=None, **params):
    """``registry[name](**params)``: an outer driver by name. ``registry`` None is
    :data:`DRIVERS` (``"optimizer"`` needs ``optimizer=``); offer one of your own as
    ``{**DRIVERS, "name": DriverClass}``. Raises ValueError naming the valid names."""
    return build(DRIVERS if registry is None else registry, name, "outer driver", **params)
