"""One whole HDM iteration, OSGM-Best's lookahead included, for every driver.

:func:`hdm_update` is pure but needs the trial point already evaluated; OSGM-Best may also
evaluate ``f`` along a line from the trial point before deciding. :func:`hdm_step` does the
evaluations through callables, so the inner solver, the outer optimizer and the torch
optimizer run exactly the same sequence of evaluations and get the same iterates.
"""

from __future__ import annotations

import math

import torch

from ._core import HDMState, hdm_trial_point, hdm_update

# The reference's lookahead: Armijo backtracking from the trial point along -P g~, step
# factor 0.8 from eta = 1 while eta > 1e-6, sufficient decrease 0.5 eta <g~, P g~>.
_LOOKAHEAD_RATIO = 2.0  # triggered when ||g~|| > 2 ||g||
_SHRINK, _ETA_MIN, _ARMIJO = 0.8, 1e-6, 0.5


def hdm_wants_lookahead(g, g_trial, state: HDMState) -> bool:
    """Whether OSGM-Best runs its lookahead: after the curvature re-estimate, when the
    trial gradient is more than twice the current one (the step overshot a steep wall)."""
    if not (state.config.lookahead and state.reestimated):
        return False
    trial_norm = float(torch.linalg.vector_norm(g_trial))
    return math.isfinite(trial_norm) and trial_norm > _LOOKAHEAD_RATIO * float(
        torch.linalg.vector_norm(g))


def hdm_lookahead(x_trial, f_trial, g_trial, state: HDMState, value, project=None):
    """Armijo backtracking from the trial point along ``-P * g_trial``.

    Tries ``z = x_trial - eta P g~`` for ``eta = 1, 0.8, 0.64, ...`` (while ``eta > 1e-6``)
    until ``f(z) <= f(x_trial) - eta / 2 <g~, P g~>``; returns the trial point itself if no
    ``eta`` passes.

    Parameters
    ----------
    x_trial, f_trial, g_trial : torch.Tensor, float, torch.Tensor
        The evaluated trial point.
    state : HDMState
    value : callable
        ``z -> f(z)`` or ``z -> (f(z), grad f(z))`` (then the gradient of the point found
        comes back too).
    project : callable or None
        Maps a point into the feasible set.

    Returns
    -------
    (x_look, f_look, g_look), n_evals
        ``g_look`` is None when ``value`` returns only ``f``.
    """
    d = state.P * g_trial
    slope = float(torch.sum(g_trial * d))
    n_evals = 0
    if not (slope > 0 and math.isfinite(float(f_trial))):
        return (x_trial, f_trial, g_trial), n_evals
    eta = 1.0
    while eta > _ETA_MIN:
        z = x_trial - eta * d
        if project is not None:
            z = project(z)
        out = value(z)
        n_evals += 1
        f_z, g_z = out if isinstance(out, tuple) else (out, None)
        if float(f_z) <= float(f_trial) - _ARMIJO * eta * slope:
            return (z, f_z, g_z), n_evals
        eta *= _SHRINK
    return (x_trial, f_trial, g_trial), n_evals


def hdm_step(x, f, g, state: HDMState, evaluate, value=None, project=None):
    """One HDM iteration: trial point, its evaluation, OSGM-Best's lookahead when due, update.

    Parameters
    ----------
    x, f, g : torch.Tensor, float or 0-d tensor, torch.Tensor
        Current iterate, its value and gradient.
    state : HDMState
    evaluate : callable
        ``z -> (f(z), grad f(z))``.
    value : callable or None
        ``z -> f(z)``, used by the lookahead when cheaper than ``evaluate``; None uses
        ``evaluate`` (and keeps the gradient of the point found).
    project : callable or None
        Maps trial and lookahead points into the feasible set.

    Returns
    -------
    x, f, g, state, n_func, n_grad
        The next iterate with its value and gradient, the new state, and the objective
        and gradient evaluations this iteration made (none when the trial point is ``x``
        itself, as in the first iteration from ``P = 0``).
    """
    trial = hdm_trial_point(x, g, state)
    if project is not None:
        trial = project(trial)
    if torch.equal(trial, x):
        # P = 0 with no momentum (a fresh state's first iteration): the trial point is x
        # itself, whose value and gradient are known. The update is the same as after
        # evaluating it (a null step that sets P); the reference spends an evaluation here.
        f_trial, g_trial = f, g
        n_func = n_grad = 0
    else:
        f_trial, g_trial = evaluate(trial)
        n_func = n_grad = 1
    look = None
    if hdm_wants_lookahead(g, g_trial, state):
        look, n_look = hdm_lookahead(trial, f_trial, g_trial, state, value or evaluate,
                                     project)
        n_func += n_look
        n_grad += 0 if value is not None else n_look
    x, f, g, state = hdm_update(x, f, g, trial, f_trial, g_trial, state, lookahead=look)
    if g is None:  # a lookahead point accepted on its value alone: its gradient, once
        f, g = evaluate(x)
        n_func, n_grad = n_func + 1, n_grad + 1
    return x, f, g, state, n_func, n_grad
