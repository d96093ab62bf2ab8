"""Pieces the first-order cleaning methods share: the inner fit, the outer Adam step on the
weights' logits, and the per-iteration history.

All state (Adam's moments, a carried step size, the clock) travels in the arguments and
return values, as everywhere in the engine.
"""

from __future__ import annotations

import math
import time

import torch

from ..linalg import CG, MINRES
from ..outer import adam_direction
from ._base import HISTORY_KEYS

# Logits are kept in [-LOGIT_BOUND, LOGIT_BOUND]: sigmoid(8) = 0.99966, so every weight
# stays strictly inside (0, 1) and sigmoid' (which scales the hypergradient) never
# underflows, so a weight driven to the bound can still come back.
LOGIT_BOUND = 8.0


def inner_fit(problem, x, y0, *, tol, max_iter, newton_from=1e-5, newton_steps=8):
    """``argmin_y g(x, y)`` from ``y0``: L-BFGS, then Newton steps to a tight tolerance.

    Parameters
    ----------
    problem : WeightedModuleProblem
    x : torch.Tensor
        The weights' logits (fixed).
    y0 : torch.Tensor
        Warm start.
    tol : float
        Stop once ``||grad_y g(x, y)|| <= tol``.
    max_iter : int
        Cap on L-BFGS iterations.
    newton_from : float, default=1e-5
        L-BFGS hands over to Newton once the gradient's norm is below it.
    newton_steps : int, default=8
        Cap on Newton steps.

    Returns
    -------
    y : torch.Tensor
    grad_norm : float
        ``||grad_y g(x, y)||`` at the returned point.
    n_iter : int
        L-BFGS iterations plus Newton steps.

    Notes
    -----
    L-BFGS with a strong-Wolfe line search is robust far from the solution on the strongly
    convex linear model and on the nonconvex MLP alike (every step a descent step). Near
    the solution its line search compares values of ``g`` that differ by less than the
    rounding of ``g`` itself, and it stalls at ``||grad|| ~ 1e-8``: the gradients a finite
    difference check or an exact hypergradient need are tighter. Newton's steps
    ``H s = -grad`` (conjugate gradients on Hessian-vector products; MINRES for a nonconvex
    model) use no values; a step is kept only if it lowers ``||grad||``, so they cannot
    wander off to a far stationary point.
    """
    x = x.detach()
    y = y0.detach().clone().requires_grad_(True)

    def closure():
        opt.zero_grad()
        value = problem.inner_value(x, y)
        value.backward()
        return value

    def grad_of(point):
        return problem.inner_grad(x, point)

    # torch's own stopping rule is on the infinity norm: switched off, ours is checked per
    # chunk. The optimizer is local to this call: nothing survives it but y.
    def fresh():
        return torch.optim.LBFGS([y], lr=1.0, max_iter=10, history_size=20,
                                 tolerance_grad=0.0, tolerance_change=0.0,
                                 line_search_fn="strong_wolfe")

    opt = fresh()
    grad = grad_of(y.detach())
    norm, n_iter, restarted = float(torch.linalg.vector_norm(grad)), 0, False
    switch = max(tol, newton_from)
    while norm > switch and n_iter < max_iter:
        opt.step(closure)
        n_iter += 10
        grad = grad_of(y.detach())
        new = float(torch.linalg.vector_norm(grad))
        stalled = not new < norm
        norm = new
        if not math.isfinite(norm) or stalled and restarted:
            break  # the line search's rounding floor: over to Newton
        if stalled:
            # On the nonconvex model a stale curvature memory can stall the line search
            # far from the solution: forget it once before handing over.
            opt, restarted = fresh(), True
        else:
            restarted = False
    y = y.detach()
    if norm > tol and math.isfinite(norm):
        solver = (MINRES if getattr(problem.model, "nonconvex", True) else CG)(
            rtol=1e-10, max_iter=min(4 * y.shape[0], 100))
        for _ in range(newton_steps):
            step, _ = solver(lambda v, y=y: problem.hvp(x, y, v), -grad)
            candidate = y + step
            new_grad = grad_of(candidate)
            new = float(torch.linalg.vector_norm(new_grad))
            n_iter += 1
            if not new < norm:
                break
            y, grad, norm = candidate, new_grad, new
            if norm <= tol:
                break
    return y, norm, n_iter


def adam_state(x):
    """Zero first and second moments and step count for :func:`adam_step`."""
    return torch.zeros_like(x), torch.zeros_like(x), 0


def adam_step(x, grad, state, *, step, betas=(0.9, 0.999), eps=1e-12):
    """One bias-corrected Adam step on the logits, then clipped to the logit bound.

    Adam normalises each coordinate by its own gradient scale: the per-sample
    hypergradients are ``O(1/n)`` and vary over orders of magnitude between samples, and
    ``step`` is then the most a logit moves per iteration whatever ``n`` is.

    Returns
    -------
    x, state
    """
    direction, state = adam_direction(grad, state, betas, eps)
    return (x - step * direction).clamp(-LOGIT_BOUND, LOGIT_BOUND), state


def new_history():
    """Empty history with the keys of :data:`HISTORY_KEYS`, and the start time."""
    return {key: [] for key in HISTORY_KEYS}, time.perf_counter()


def record(history, start, callback, *, outer_value, sqrt_h, stationarity, lam,
           extra=None):
    """Append one iteration to ``history`` and call ``callback(k, record)`` (``k`` from 1,
    the engine's outer-loop convention); ``extra`` (a dict) goes to the callback only."""
    entry = {"outer_value": float(outer_value), "sqrt_h": float(sqrt_h),
             "stationarity": float(stationarity), "lambda": float(lam),
             "time": time.perf_counter() - start}
    for key, value in entry.items():
        history[key].append(value)
    if callback is not None:
        callback(len(history["time"]), entry if extra is None else {**entry, **extra})
