"""Outer optimizers: how the hyperparameters move.

Each optimizer owns its loop and talks to the objective through one function,
``fun(theta) -> (value, grad)`` on float64 numpy arrays (``theta`` is small and lives on
the host; the heavy work inside ``fun`` stays on the device). The orchestrator normalises
the objective by its starting value, so tolerances here are relative.
"""

from __future__ import annotations


import numpy as np
import torch
from scipy.optimize import minimize

from ..hdm import hdm_config, hdm_init_state, hdm_step
from ..linalg import probe_smoothness
from ._bracket import Bracket, OptimizeOutcome


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
    first_step : float or None
        Length (Euclidean, in ``theta``) of the first step. With bounds on every variable,
        L-BFGS-B's first trial step is the raw gradient, whose length says nothing about
        the distance to the minimum: on a flat CV curve it is orders of magnitude too
        short and the line search spends an evaluation per factor of 4 of extrapolation.
        When given, the problem is solved in the rescaled variable ``theta / s`` with ``s``
        chosen so that this first step has the given length (e.g. half the spacing of the
        grid the start came from); the tolerances keep their meaning in ``theta``.
        None leaves L-BFGS-B's own first step.
    """

    accepts_values = False  # run() takes no value-only points (see Bracket)

    def __init__(self, max_iter=100, tol=1e-6, memory=10, first_step=None):
        self.max_iter, self.tol, self.memory = max_iter, tol, memory
        self.first_step = first_step

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        s, objective = 1.0, fun
        if self.first_step is not None and self.max_iter > 0:
            first = fun(theta0)  # reused as scipy's first evaluation, at the same point
            norm = float(np.linalg.norm(first[1]))
            if np.isfinite(norm) and norm > 0:
                s = float(np.sqrt(self.first_step / norm))
            u0, calls = theta0 / s, []

            def rescaled(u):
                reuse = not calls and np.array_equal(u, u0)
                calls.append(1)
                value, grad = first if reuse else fun(u * s)
                return value, grad * s

            objective = rescaled

        box = None if bounds is None else list(zip(
            np.broadcast_to(bounds[0], theta0.shape) / s,
            np.broadcast_to(bounds[1], theta0.shape) / s))
        res = minimize(objective, theta0 / s, jac=True, method="L-BFGS-B", bounds=box,
                       options={"maxiter": self.max_iter, "gtol": self.tol * s,
                                "ftol": self.tol * 1e-4, "maxcor": self.memory,
                                "maxfun": 3 * self.max_iter})
        message = res.message if isinstance(res.message, str) else res.message.decode()
        return OptimizeOutcome(res.x * s, int(res.nit), bool(res.success), message)


def adam_direction(grad, state, betas=(0.9, 0.999), eps=1e-12):
    """One Adam update of the moments ``state = (m, v, k)`` by ``grad``.

    Returns the bias-corrected direction ``m_hat / (sqrt(v_hat) + eps)`` (a step subtracts
    ``learning_rate`` times it) and the new state. The same arithmetic on numpy arrays
    (:class:`Adam`, the outer loop's black-box optimizer) and on torch tensors (the
    step-wise cleaning methods), so the two are one Adam.
    """
    m, v, k = state
    k += 1
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    return (m / (1 - b1 ** k)) / ((v / (1 - b2 ** k)) ** 0.5 + eps), (m, v, k)


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

    accepts_values = False  # run() takes no value-only points (see Bracket)

    def __init__(self, max_iter=100, tol=1e-6, learning_rate=0.1, betas=(0.9, 0.999)):
        self.max_iter, self.tol, self.learning_rate, self.betas = (max_iter, tol,
                                                                   learning_rate, betas)

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        theta = theta0.copy()
        state = (np.zeros_like(theta), np.zeros_like(theta), 0)
        for k in range(1, self.max_iter + 1):
            _, grad = fun(theta)
            if _projected_grad_norm(theta, grad, bounds) <= self.tol:
                return OptimizeOutcome(theta, k - 1, True, "projected gradient below tol")
            direction, state = adam_direction(grad, state, self.betas)
            theta = _project(theta - self.learning_rate * direction, bounds)
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

    accepts_values = False  # run() takes no value-only points (see Bracket)

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


class OuterHDM:
    """Hypergradient descent (HDM-Best by default) on the hyperparameters.

    The stepsizes (one per hyperparameter) and a heavy-ball momentum are learned online
    from the decrease each trial point achieves, and a trial point that does not decrease
    the objective is rejected (null step): one objective evaluation per iteration, no line
    search. The rules are those of :mod:`skbilevel.engine.hdm`, run on float64
    torch tensors. Bounds: the trial point is projected onto the box, and gradient entries
    that push against an active bound are zeroed before they reach HDM (they would only
    inflate the stepsizes of pinned coordinates and the normalisation ``||g||^2``).
    ``make_optimizer("hdm")`` builds it; :class:`skbilevel.optim.HDM` is the same method as a
    ``torch.optim.Optimizer`` for model parameters.

    Parameters
    ----------
    max_iter : int
        Number of iterations (objective evaluations after the first one and the probe).
    tol : float
        Stop when the projected gradient's infinity norm falls below it.
    variant : {"hdm-best", "osgm-best", "hdm-hb", "hdm-diag", "hdm"}
        Which HDM (see :class:`~skbilevel.engine.solvers.HDMSolver`).
    lr : "auto" or float
        Learning rate of the stepsizes. "auto" is ``1 / L``, so that the first step is a
        gradient step ``g / L`` (the inner solver's ``10 / L`` suits many coordinates with a
        loose ``L``; on a few hyperparameters with a probed ``L`` it overshoots).
    beta_lr : "auto" or float
        Learning rate of the momentum ("auto": ``min(1, L)`` for OSGM-Best, 10 otherwise).
    smoothness : float or None
        Curvature estimate ``L`` in ``theta``; None probes it with one finite difference of
        the gradient along ``-grad`` (relative step ``probe_step``), one extra evaluation.
    probe_step : float
        Relative step of that probe; larger than for exact gradients because hypergradients
        from iterative solves carry errors of about their tolerance.
    max_step : float
        ``L`` is raised to at least ``||grad|| / max_step``, which bounds the first step's
        length (in ``theta`` units, i.e. e-folds of ``alpha``).
    """

    accepts_values = False  # run() takes no value-only points (see Bracket)

    def __init__(self, max_iter=100, tol=1e-6, variant="hdm-best", lr="auto", beta_lr="auto",
                 smoothness=None, probe_step=1e-3, max_step=1.0):
        self.max_iter, self.tol, self.variant = max_iter, tol, variant
        self.lr, self.beta_lr, self.smoothness, self.probe_step = lr, beta_lr, smoothness, \
            probe_step
        self.max_step = max_step

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        lo, hi = (None, None) if bounds is None else \
            tuple(torch.tensor(np.broadcast_to(b, np.shape(theta0)), dtype=torch.float64)
                  for b in bounds)

        def project(x):
            return x if lo is None else torch.minimum(torch.maximum(x, lo), hi)

        def evaluate(x):
            value, grad = fun(x.numpy().copy())
            g = torch.as_tensor(np.asarray(grad, dtype=np.float64))
            if lo is not None:  # drop the components a bound blocks
                g = torch.where(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)), 0.0, g)
            return float(value), g

        x = project(torch.as_tensor(np.asarray(theta0, dtype=np.float64)))
        f, g = evaluate(x)
        if _inf_norm(g) <= self.tol:
            return OptimizeOutcome(x.numpy(), 0, True, "projected gradient below tol")
        L = self.smoothness or probe_smoothness(lambda z: evaluate(z)[1], x, g,
                                                rel_step=self.probe_step, project=project)
        # The CV curve in log(alpha) is sigmoid-like: on its slopes the curvature is tiny and
        # the gradient large, so a step of g / L can jump onto a far plateau that happens to
        # be lower, where additive stepsize updates then crawl. Capping the curvature
        # estimate from below caps the first step's length at max_step.
        L = max(L, float(torch.linalg.vector_norm(g)) / self.max_step)
        lr = self.lr if self.lr != "auto" else 1.0 / L
        config = hdm_config(self.variant, lr, self.beta_lr, max_iter=self.max_iter)
        state = hdm_init_state(x, L, config)
        for k in range(1, self.max_iter + 1):
            x, f, g, state, _, _ = hdm_step(x, f, g, state, evaluate, project=project)
            if _inf_norm(g) <= self.tol:
                return OptimizeOutcome(x.numpy(), k, True, "projected gradient below tol")
        return OptimizeOutcome(x.numpy(), self.max_iter, False, "maximum iterations reached")


def _inf_norm(g):
    return float(g.abs().max()) if g.numel() else 0.0


OPTIMIZERS = {"lbfgs": LBFGSB, "adam": Adam, "gd": GradientDescent, "hdm": OuterHDM,
              "bracket": Bracket}


def make_optimizer(name, **params):
    """Instantiate the outer optimizer called ``name`` (``lbfgs``, ``adam``, ``gd``, ``hdm``,
    ``bracket``)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**params)
