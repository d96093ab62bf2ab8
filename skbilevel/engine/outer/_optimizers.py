"""Outer optimizers: how the hyperparameters move.

Each optimizer owns its loop and talks to the objective through one function,
``fun(theta) -> (value, grad)`` on float64 numpy arrays (``theta`` is small and lives on
the host; the heavy work inside ``fun`` stays on the device). The orchestrator normalises
the objective by its starting value, so tolerances here are relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize


@dataclass
class OptimizeOutcome:
    """Where an outer optimizer stopped and why."""

    theta: np.ndarray
    n_iter: int
    converged: bool
    message: str


def _project(theta, bounds):
    return theta if bounds is None else np.clip(theta, bounds[0], bounds[1])


def _projected_grad_norm(theta, grad, bounds):
    """Infinity norm of the projected gradient (zero where a bound blocks the step)."""
    return float(np.max(np.abs(_project(theta - grad, bounds) - theta), initial=0.0))


class LBFGSB:
    """Limited-memory BFGS with box bounds (scipy's L-BFGS-B).

    The default: the CV objective is smooth in ``log alpha`` and, for one or a few
    hyperparameters, a quasi-Newton method converges in a handful of iterations.

    Parameters
    ----------
    max_iter : int
        Maximum outer iterations.
    tol : float
        Projected-gradient and relative-decrease tolerance (relative to the objective).
    memory : int
        Number of correction pairs kept (``maxcor``).
    """

    def __init__(self, max_iter=100, tol=1e-6, memory=10):
        self.max_iter, self.tol, self.memory = max_iter, tol, memory

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        box = None if bounds is None else list(zip(np.broadcast_to(bounds[0], theta0.shape),
                                                   np.broadcast_to(bounds[1], theta0.shape)))
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=box,
                       options={"maxiter": self.max_iter, "gtol": self.tol,
                                "ftol": self.tol * 1e-4, "maxcor": self.memory,
                                "maxfun": 3 * self.max_iter})
        message = res.message if isinstance(res.message, str) else res.message.decode()
        return OptimizeOutcome(res.x, int(res.nit), bool(res.success), message)


class Adam:
    """Adam on the hyperparameters, with projection onto the bounds.

    Parameters
    ----------
    max_iter : int
        Number of steps.
    tol : float
        Stop when the projected gradient's infinity norm falls below it.
    learning_rate : float
        Step size in ``log alpha`` units.
    """

    def __init__(self, max_iter=100, tol=1e-6, learning_rate=0.1, betas=(0.9, 0.999)):
        self.max_iter, self.tol, self.learning_rate, self.betas = (max_iter, tol,
                                                                   learning_rate, betas)

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        theta = theta0.copy()
        m, v = np.zeros_like(theta), np.zeros_like(theta)
        b1, b2 = self.betas
        for k in range(1, self.max_iter + 1):
            _, grad = fun(theta)
            if _projected_grad_norm(theta, grad, bounds) <= self.tol:
                return OptimizeOutcome(theta, k - 1, True, "projected gradient below tol")
            m = b1 * m + (1 - b1) * grad
            v = b2 * v + (1 - b2) * grad ** 2
            step = self.learning_rate * (m / (1 - b1 ** k)) / (np.sqrt(v / (1 - b2 ** k)) + 1e-12)
            theta = _project(theta - step, bounds)
        return OptimizeOutcome(theta, self.max_iter, False, "maximum iterations reached")


class GradientDescent:
    """Projected gradient descent with Armijo backtracking.

    Parameters
    ----------
    max_iter : int
        Number of accepted steps.
    tol : float
        Stop when the projected gradient's infinity norm falls below it.
    step_size : float
        First trial step; each iteration starts from twice the last accepted step.
    """

    def __init__(self, max_iter=100, tol=1e-6, step_size=1.0, max_backtracks=30):
        self.max_iter, self.tol, self.step_size = max_iter, tol, step_size
        self.max_backtracks = max_backtracks

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        theta = theta0.copy()
        value, grad = fun(theta)
        step = self.step_size
        for k in range(self.max_iter):
            if _projected_grad_norm(theta, grad, bounds) <= self.tol:
                return OptimizeOutcome(theta, k, True, "projected gradient below tol")
            for _ in range(self.max_backtracks):
                trial = _project(theta - step * grad, bounds)
                trial_value, trial_grad = fun(trial)
                if trial_value <= value - 1e-4 * np.dot(grad, theta - trial):
                    break
                step *= 0.5
            else:
                return OptimizeOutcome(theta, k, False, "line search failed")
            theta, value, grad, step = trial, trial_value, trial_grad, 2.0 * step
        return OptimizeOutcome(theta, self.max_iter, False, "maximum iterations reached")


OPTIMIZERS = {"lbfgs": LBFGSB, "adam": Adam, "gd": GradientDescent}


def make_optimizer(name, **params):
    """Instantiate the outer optimizer called ``name`` (``lbfgs``, ``adam`` or ``gd``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**params)
