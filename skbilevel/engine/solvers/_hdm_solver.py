"""Inner solver by hypergradient descent (HDM and its variants)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from .._capabilities import check, value_and_grad
from .._results import InnerSolution
from ..hdm import HDMState, hdm_config, hdm_init_state, hdm_stats, hdm_step
from ..linalg import power_iteration, sample_smoothness
from ._solver import InnerSolver

# What each source of the smoothness estimate needs from the problem (a number: nothing).
_SMOOTHNESS_REQUIRES = {"lipschitz": ("lipschitz",), "power": ("hvp",), "sample": ()}


@dataclass(frozen=True)
class HDMSolverState:
    """What :meth:`HDMSolver.step` carries: the HDM state and ``f``, ``grad f`` at ``w``.

    Attributes
    ----------
    hdm : HDMState
        State of the functional core (stepsizes, momentum, accumulators, ...).
    f : torch.Tensor
        Objective at the current iterate.
    g : torch.Tensor
        Its gradient.
    n_func_eval, n_grad_eval : int
        Evaluations so far (the initial one included).
    n_matvec : int
        Hessian-vector products of the smoothness estimate (``smoothness="power"``).
    """

    hdm: HDMState
    f: torch.Tensor
    g: torch.Tensor
    n_func_eval: int = 1
    n_grad_eval: int = 1
    n_matvec: int = 0


class HDMSolver(InnerSolver):
    """Solve a smooth inner problem by hypergradient descent (HDM, HDM-Best, OSGM-Best).

    Each iteration evaluates the objective and its gradient once, at the trial point
    ``w - P * g + beta * (w - w_prev)`` (the first, from ``P = 0``, is ``w`` itself and costs
    nothing); the stepsize ``P`` and the momentum ``beta`` are
    learned online from the hypergradient of the achieved decrease, and a trial point that
    does not decrease the objective is rejected (null step). See
    :mod:`skbilevel.engine.hdm` for the update rules.

    Parameters
    ----------
    variant : {"hdm-best", "osgm-best", "hdm-hb", "hdm-diag", "hdm"}
        ``"hdm"``: one scalar stepsize, no momentum. ``"hdm-diag"``: one stepsize per
        coordinate. ``"hdm-hb"``: diagonal stepsizes plus a learned heavy-ball momentum.
        ``"hdm-best"``: HDM-HB with AdaGrad, null steps and a curvature re-estimate (the
        method benchmarked in the paper). ``"osgm-best"``: the follow-up's OSGM-Best
        (smaller learning rates, a lookahead line search after the re-estimate).
    lr : "auto" or float
        Learning rate of the stepsizes; "auto" is ``10 / L`` (``1 / L`` for ``"hdm"`` and
        ``"osgm-best"``).
    beta_lr : "auto" or float
        Learning rate of the momentum; "auto" is ``min(1, L)`` for ``"osgm-best"``, 10
        otherwise.
    beta_init : float
        Initial momentum.
    tol : float
        Stop when the gradient's infinity norm is at most ``tol``.
    max_iter : int
        Budget of gradient evaluations, the initial one included.
    smoothness : "lipschitz", "power", "sample" or float
        Where the smoothness estimate ``L`` comes from: ``problem.lipschitz(theta)``, 30
        deterministic power iterations on ``problem.hvp`` at the starting point, three
        finite differences of the gradient (:func:`~skbilevel.engine.linalg.sample_smoothness`:
        three gradient evaluations, counted in ``n_grad_eval``; seeded random directions
        for ``"osgm-best"``, as its reference code, the first along ``-g`` for the HDM
        variants, whose larger learning rates need the tighter estimate), or the given
        number.
    record_history : bool
        Record one dict per iteration in ``InnerSolution.history``.

    Attributes
    ----------
    requires : tuple of str
        ``init_params``, ``objective`` and ``grad`` (a declared ``value_and_grad`` is
        used when present), plus ``lipschitz`` or ``hvp`` as ``smoothness`` asks.
    residual_kind : str
        ``"grad_norm"``.
    """

    requires = ("init_params", "objective", "grad")
    residual_kind = "grad_norm"

    def __init__(self, variant="hdm-best", lr="auto", beta_lr="auto", beta_init=0.95, tol=1e-6,
                 max_iter=1000, smoothness="lipschitz", record_history=False):
        self.config = hdm_config(variant, lr, beta_lr, beta_init, max_iter=max_iter)
        if not (smoothness in _SMOOTHNESS_REQUIRES or
                (isinstance(smoothness, (int, float)) and smoothness > 0)):
            raise ValueError(f"smoothness must be 'lipschitz', 'power', 'sample' or a positive "
                             f"number, got {smoothness!r}")
        self.variant, self.tol, self.max_iter = variant, tol, max_iter
        self.smoothness, self.record_history = smoothness, record_history

    def init_state(self, problem, w, theta, state: Any = None) -> HDMSolverState:
        """Evaluate ``f`` and ``grad f`` at ``w`` and build the solver state.

        ``state`` (an :class:`HDMSolverState` or :class:`HDMState` from an earlier solve, e.g.
        for a nearby ``theta``) warm-starts the learned stepsizes and momentum; the momentum
        memory ``w_prev`` is reset to ``w``.
        """
        check(self, problem, *_SMOOTHNESS_REQUIRES.get(self.smoothness, ()))
        f, g = value_and_grad(problem)(w, theta)
        n_matvec = n_evals = 0
        if isinstance(state, HDMSolverState):
            state = state.hdm
        if isinstance(state, HDMState):
            core = replace(state, x_prev=w.detach().clone())
        else:
            if self.smoothness == "lipschitz":
                L = float(problem.lipschitz(theta))
            elif self.smoothness == "power":
                L = power_iteration(lambda v: problem.hvp(w, theta, v), w)
                n_matvec = 30
            elif self.smoothness == "sample":
                L = sample_smoothness(lambda z: problem.grad(z, theta), w, g,
                                      along_gradient=not self.config.lookahead)
                n_evals = 3
            else:
                L = float(self.smoothness)
            core = hdm_init_state(w, L, self.config)
        return HDMSolverState(core, f, g, 1 + n_evals, 1 + n_evals, n_matvec)

    def step(self, problem, w, theta, state: HDMSolverState):
        """One HDM iteration: returns ``(w, state)`` (``w`` unchanged after a null step).

        Evaluates ``f`` and its gradient once at the trial point (not at all when it is ``w``
        itself, as in the first step from ``P = 0``), plus, for OSGM-Best's lookahead,
        ``problem.objective`` along the line search.
        """
        w, f, g, core, n_func, n_grad = hdm_step(
            w, state.f, state.g, state.hdm, lambda z: value_and_grad(problem)(z, theta),
            value=lambda z: problem.objective(z, theta))
        return w, replace(state, hdm=core, f=f, g=g, n_func_eval=state.n_func_eval + n_func,
                          n_grad_eval=state.n_grad_eval + n_grad)

    def solve(self, problem, theta, w0=None, recycle=None, state=None,
              callback=None) -> InnerSolution:
        """Minimise the inner objective from ``w0`` (default ``problem.init_params()``).

        Parameters
        ----------
        problem : InnerProblem
            Needs ``objective``, ``grad`` (or ``value_and_grad``) and, per ``smoothness``,
            ``lipschitz`` or ``hvp``.
        theta : torch.Tensor
            Hyperparameters.
        w0 : torch.Tensor or None
            Warm start.
        recycle : ignored
            HDM keeps no Krylov space.
        state : HDMSolverState, HDMState or None
            Learned stepsizes of an earlier solve (``InnerSolution.solver_state``).
        callback : callable or None
            ``callback(w, state)`` after every evaluation (progress display).

        Returns
        -------
        InnerSolution
            ``n_iter`` counts trial points, ``residual`` is the gradient's 2-norm,
            ``solver_state`` the final :class:`HDMSolverState`.
        """
        w = problem.init_params() if w0 is None else w0.detach()
        st = self.init_state(problem, w, theta, state)
        history = [] if self.record_history else None
        converged, recorded = False, None
        while True:
            g_inf = float(st.g.abs().max()) if st.g.numel() else 0.0
            # One record (and one callback) per evaluated point: the first step from P = 0
            # evaluates nothing (its trial point is w itself).
            if st.n_grad_eval != recorded:
                recorded = st.n_grad_eval
                if history is not None:
                    history.append({"objective": float(st.f), "grad_inf_norm": g_inf,
                                    "accepted": st.hdm.accepted,
                                    "n_grad_eval": st.n_grad_eval, **hdm_stats(st.hdm)})
                if callback is not None:
                    callback(w, st)
            if g_inf <= self.tol:
                converged = True
                break
            if st.n_grad_eval >= self.max_iter:
                break
            w, st = self.step(problem, w, theta, st)
        return InnerSolution(w=w, n_iter=st.hdm.n_iter, n_matvec=st.n_matvec,
                             residual=float(torch.linalg.vector_norm(st.g)),
                             residual_kind=self.residual_kind, converged=converged,
                             n_func_eval=st.n_func_eval,
                             n_grad_eval=st.n_grad_eval, history=history, solver_state=st)
