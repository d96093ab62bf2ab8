"""The functional core of hypergradient descent (HDM) and its variants.

HDM (Chu, Gao, Ye, Udell, ICML 2025) learns the stepsize of gradient descent online: the
stepsize ``P`` (a scalar or one per coordinate) is itself moved by gradient steps on the
*hypergradient feedback* ``h(P) = [f(x - P g) - f(x)] / ||g||^2``, whose gradient costs
nothing beyond the trial point's gradient ``g~``: ``dh/dP = -g~ * g / ||g||^2``. HDM-Best
(the practical method) adds a heavy-ball momentum ``beta`` learned the same way, AdaGrad
scaling of both learning rates, null steps and a one-off curvature re-estimate.

Everything here is pure: :func:`hdm_init_state`, :func:`hdm_trial_point` and
:func:`hdm_update` take an immutable :class:`HDMState` and return a new one, so the engine
solver, the outer optimizer and :class:`skbilevel.optim.HDM` share this one implementation
and give the same iterates on the same problem. Tensors may have any shape, dtype and
device: every operation is elementwise or a full reduction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Union

import torch

# Variant -> (diagonal P, learned momentum, AdaGrad on P and beta, curvature re-estimate,
# OSGM-Best's settings). Null steps are on for all of them: they are what makes a bad trial
# point harmless.
# Plain HDM is online gradient descent on the scalar stepsize with learning rate 1/L (the
# hypergradient feedback is (1/L)-smooth in P for an L-smooth f, so the theory's step); with
# one stepsize per coordinate, coordinates carrying a small share of ||g||^2 would barely
# move without AdaGrad's per-coordinate normalisation, so the diagonal variants use it.
VARIANTS = {
    "hdm": (False, False, False, False, False),
    "hdm-diag": (True, False, True, False, False),
    "hdm-hb": (True, True, True, False, False),
    "hdm-best": (True, True, True, True, False),
    # OSGM-Best (Chu, Gao, Ye, Udell, "Gradient methods with online scaling II", 2025):
    # HDM-Best with lr = 1 / L, beta_lr = min(1, L), P clipped at 1e5 / L and, after the
    # curvature re-estimate, a lookahead line search (see _step.py).
    "osgm-best": (True, True, True, True, True),
}

_ADAGRAD_EPS = 1e-12  # added to sqrt(G), as in the reference implementation
_DENOM_EPS = 1e-12  # added to ||g||^2 before the re-estimate
_P_MAX = 1e10  # P is clipped to [0, _P_MAX / L_est]
_P_MAX_OSGM = 1e5  # OSGM-Best's tighter clip
_BETA_MAX = 0.9995
_DECAY_EVERY = 50
_MIN_CURVATURE_STEP = 1e-3  # curvature samples only from steps longer than this
_ROUNDING_ULPS = 4  # f values closer than this many roundings count as ties


@dataclass(frozen=True)
class HDMConfig:
    """The fixed settings of one HDM run (derived from ``variant`` by :func:`hdm_config`).

    Attributes
    ----------
    variant : str
        ``"hdm"``, ``"hdm-diag"``, ``"hdm-hb"``, ``"hdm-best"`` or ``"osgm-best"``.
    diagonal, momentum, adagrad, reestimate : bool
        One stepsize per coordinate; learned heavy-ball ``beta``; AdaGrad scaling of the
        learning rates (with the decay every 50 iterations); the once-only curvature
        re-estimate of HDM-Best.
    lookahead : bool
        OSGM-Best's settings: ``lr = 1 / L_est``, ``beta_lr = min(1, L_est)`` (both reset
        at the re-estimate), ``P`` clipped at ``1e5 / L_est`` and, after the re-estimate,
        the lookahead line search of :func:`~skbilevel.engine.hdm.hdm_step`.
    lr : float or "auto"
        Learning rate of ``P``. "auto" is ``10 / L_est`` with AdaGrad (``2 / L_est`` when
        not ``convex``), ``1 / L_est`` without and for OSGM-Best.
    beta_lr : float or "auto"
        Learning rate of ``beta``; "auto" is ``min(1, L_est)`` for OSGM-Best, 10 otherwise.
    beta_init : float
        Initial momentum (variants with momentum only).
    convex : bool
        Selects the automatic learning rate and the decay schedule of the reference HDM
        code (OSGM-Best's reference uses the convex ones for every ``f``).
    max_iter : int
        Iteration budget; sets when the curvature re-estimate may happen.
    """

    variant: str = "hdm-best"
    diagonal: bool = True
    momentum: bool = True
    adagrad: bool = True
    reestimate: bool = True
    lookahead: bool = False
    lr: Union[float, str] = "auto"
    beta_lr: Union[float, str] = "auto"
    beta_init: float = 0.95
    convex: bool = True
    max_iter: int = 1000


def hdm_config(variant="hdm-best", lr="auto", beta_lr="auto", beta_init=0.95, convex=True,
               max_iter=1000) -> HDMConfig:
    """Validate the user-facing parameters and return the :class:`HDMConfig` of a variant."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if not (lr == "auto" or (isinstance(lr, (int, float)) and lr > 0)):
        raise ValueError(f"lr must be 'auto' or a positive number, got {lr!r}")
    if not (beta_lr == "auto" or (isinstance(beta_lr, (int, float)) and beta_lr >= 0)):
        raise ValueError(f"beta_lr must be 'auto' or a non-negative number, got {beta_lr!r}")
    if not 0 <= beta_init <= _BETA_MAX:
        raise ValueError(f"beta_init must lie in [0, {_BETA_MAX}], got {beta_init!r}")
    return HDMConfig(variant, *VARIANTS[variant], lr if lr == "auto" else float(lr),
                     beta_lr if beta_lr == "auto" else float(beta_lr), float(beta_init),
                     bool(convex), int(max_iter))


@dataclass(frozen=True)
class HDMState:
    """Everything HDM carries from one iteration to the next; O(size of x) memory.

    Attributes
    ----------
    config : HDMConfig
    P, G : torch.Tensor
        Stepsize and its AdaGrad accumulator: shaped like ``x`` (diagonal variants) or 0-d.
    beta, G_beta : torch.Tensor
        Momentum and its AdaGrad accumulator (0-d; ``beta`` stays 0 without momentum).
    x_prev : torch.Tensor
        Previous iterate (equal to ``x`` after a null step, so the momentum then vanishes).
    lr, lr0 : float
        Current and initial learning rate of ``P``.
    L_est : float
        Smoothness estimate (replaced once by the curvature re-estimate).
    beta_lr : float
        Current learning rate of ``beta``.
    monotone : int
        +1 per accepted step, -2 per null step, floored at 0.
    curv_sum : float
        Sum of the curvature samples ``||g~ - g|| / ||x~ - x||`` of accepted steps.
    curv_count : int
        Number of curvature samples.
    reestimated : bool
        Whether the curvature re-estimate has happened.
    n_iter : int
        Iterations (trial points) so far.
    accepted : bool
        Whether the last trial point was accepted.
    """

    config: HDMConfig
    P: torch.Tensor
    G: torch.Tensor
    beta: torch.Tensor
    G_beta: torch.Tensor
    x_prev: torch.Tensor
    lr: float
    lr0: float
    L_est: float
    beta_lr: float = 10.0
    monotone: int = 0
    curv_sum: float = 0.0
    curv_count: int = 0
    reestimated: bool = False
    n_iter: int = 0
    accepted: bool = False

    def tensors(self):
        """The state's tensors (what it costs in memory)."""
        return [self.P, self.G, self.beta, self.G_beta, self.x_prev]


def hdm_init_state(x: torch.Tensor, L_est: float, config: HDMConfig) -> HDMState:
    """The state before the first iteration: ``P = 0``, ``beta = beta_init``, ``x_prev = x``.

    With ``P = 0`` the first trial point is ``x`` itself, a null step whose only effect is to
    set ``P`` (to ``lr`` per coordinate with AdaGrad): the reference algorithm does the same,
    but evaluates ``f`` and its gradient there; :func:`~skbilevel.engine.hdm.hdm_step` reuses
    the known ones.

    Parameters
    ----------
    x : torch.Tensor
        Starting point.
    L_est : float
        Estimate of the smoothness constant of ``f`` (it sets the learning rate of ``P``).
    config : HDMConfig
    """
    L_est = float(L_est)
    if not (math.isfinite(L_est) and L_est > 0):
        raise ValueError(f"the smoothness estimate must be positive and finite, got {L_est}")
    if config.lr != "auto":
        lr = config.lr
    elif config.adagrad and not config.lookahead:
        lr = (10.0 if config.convex else 2.0) / L_est
    else:
        lr = 1.0 / L_est
    zero = x.new_zeros(())
    p_shape = x.shape if config.diagonal else ()
    beta = zero + (config.beta_init if config.momentum else 0.0)
    return HDMState(config, x.new_zeros(p_shape), x.new_zeros(p_shape), beta, zero.clone(),
                    x.detach().clone(), lr, lr, L_est, _beta_lr(config, L_est))


def _beta_lr(config: HDMConfig, L_est: float) -> float:
    if config.beta_lr != "auto":
        return config.beta_lr
    return min(1.0, L_est) if config.lookahead else 10.0


def hdm_trial_point(x: torch.Tensor, g: torch.Tensor, state: HDMState) -> torch.Tensor:
    """The trial point ``x - P * g + beta * (x - x_prev)``."""
    trial = x - state.P * g
    if state.config.momentum:
        trial = trial + state.beta * (x - state.x_prev)
    return trial


def hdm_update(x, f, g, x_trial, f_trial, g_trial, state: HDMState, lookahead=None):
    """One HDM iteration after the trial point was evaluated.

    Updates ``P`` and ``beta`` by their hypergradients (whether or not the trial point is
    accepted), decays the learning rate, accepts the candidate (the trial point, or the
    lookahead point of OSGM-Best) only if it strictly decreases ``f``, or ties it with a
    smaller gradient (null step otherwise), and, for HDM-Best and OSGM-Best, re-estimates
    the curvature once.

    Parameters
    ----------
    x, f, g : torch.Tensor, float or 0-d tensor, torch.Tensor
        Current iterate, its value and gradient.
    x_trial, f_trial, g_trial
        Trial point from :func:`hdm_trial_point` (possibly projected), value and gradient.
    state : HDMState
    lookahead : tuple or None
        ``(x_look, f_look, g_look)``: the point OSGM-Best's line search found from the
        trial point (``g_look`` may be None when only ``f`` was evaluated there). The
        hypergradients and the curvature sample still come from the trial point.

    Returns
    -------
    x_next, f_next, g_next, state
        The accepted point (the candidate or ``x``) with its value and gradient (None if
        the candidate was accepted without its gradient), and the new state
        (``state.accepted`` says which).
    """
    cfg = state.config
    f_now, f_new = float(f), float(f_trial)
    P, G, beta, G_beta = state.P, state.G, state.beta, state.G_beta
    lr, lr0, L_est, beta_lr = state.lr, state.lr0, state.L_est, state.beta_lr
    n_iter = state.n_iter + 1
    step_back = x - state.x_prev
    usable = math.isfinite(f_new) and bool(torch.isfinite(g_trial).all())
    if not usable:
        # Not in the paper: an overflowing trial point carries no usable hypergradient, but
        # it says the step was far too long. It is rejected below.
        P = P * 0.5
    else:
        denom = torch.sum(g * g) + _DENOM_EPS
        if state.reestimated:  # the regulariser that HDM-Best switches on after step 8
            denom = denom + 0.25 * L_est ** 2 * torch.sum(step_back * step_back)
        r = -(g_trial * g) / denom if cfg.diagonal else -torch.sum(g_trial * g) / denom
        if cfg.adagrad:
            G = G + r * r
            P = P - lr * r / (torch.sqrt(G) + _ADAGRAD_EPS)
        else:
            P = P - lr * r
        # The reference clips only for convex f; a negative or unbounded stepsize is
        # never wanted, so every variant is clipped here.
        P = P.clamp(0.0, (_P_MAX_OSGM if cfg.lookahead else _P_MAX) / L_est)
        if cfg.momentum:
            r_beta = torch.sum(g_trial * step_back) / denom
            G_beta = G_beta + r_beta * r_beta
            beta = (beta - beta_lr * r_beta / (torch.sqrt(G_beta) + _ADAGRAD_EPS)
                    ).clamp(0.0, _BETA_MAX)
    if cfg.adagrad and not state.reestimated and n_iter % _DECAY_EVERY == _DECAY_EVERY - 1:
        # OSGM-Best's reference decays by 0.8 whether or not f is convex.
        lr = (max(0.8 * lr, 1e-3 * lr0) if cfg.convex or cfg.lookahead
              else max(0.05 * lr, 1e-2 * lr0))

    # Strict decrease, as in the reference. One addition: once the decrease ||g||^2 / L
    # falls below the rounding of f, comparing values says nothing, so a trial point whose
    # f is within a few roundings of f(x) is judged by its gradient norm instead. Without
    # it the iterates stall at ||g|| ~ sqrt(L eps |f|) (1e-6 on a ridge fit with f ~ 300);
    # f can only increase by rounding.
    x_cand, f_cand, g_cand = (x_trial, f_trial, g_trial) if lookahead is None else lookahead
    f_new = float(f_cand)
    rounding = _ROUNDING_ULPS * torch.finfo(g.dtype).eps * abs(f_now)
    accepted = usable and (f_new < f_now or (
        f_new <= f_now + rounding and g_cand is not None
        and float(torch.sum(g_cand * g_cand)) < float(torch.sum(g * g))))
    monotone, curv_sum, curv_count = state.monotone, state.curv_sum, state.curv_count
    if accepted:
        monotone += 1
        if cfg.reestimate and not state.reestimated:
            dist = float(torch.linalg.vector_norm(x_trial - x))
            if dist > _MIN_CURVATURE_STEP:
                curv_sum += float(torch.linalg.vector_norm(g_trial - g)) / dist
                curv_count += 1
        x_next, f_next, g_next = x_cand, f_cand, g_cand
    else:
        monotone = max(0, monotone - 2)
        x_next, f_next, g_next = x, f, g

    reestimated = state.reestimated
    threshold = max(min(cfg.max_iter / 4, 200), 20)
    if cfg.reestimate and not reestimated and monotone > threshold:
        reestimated = True
        # With no usable sample (every accepted step shorter than 1e-3) keep L_est.
        if curv_count > 0 and curv_sum > 0:
            L_est = curv_sum / curv_count
        lr = lr0 = 1.0 / L_est
        beta_lr = _beta_lr(cfg, L_est)
        G = torch.zeros_like(G)
    new = replace(state, P=P, G=G, beta=beta, G_beta=G_beta, x_prev=x, lr=lr, lr0=lr0,
                  L_est=L_est, beta_lr=beta_lr, monotone=monotone, curv_sum=curv_sum,
                  curv_count=curv_count, reestimated=reestimated, n_iter=n_iter,
                  accepted=accepted)
    return x_next, f_next, g_next, new


def hdm_stats(state: HDMState) -> dict:
    """Summary of the learned stepsizes: ``P_mean``, ``P_min``, ``P_max``, ``beta``, ``lr``."""
    P = state.P
    return {"P_mean": float(P.mean()), "P_min": float(P.min()), "P_max": float(P.max()),
            "beta": float(state.beta), "lr": state.lr}
