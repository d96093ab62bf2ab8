"""Result records passed between the engine's layers.

State travels in these records, never on the engine objects: a warm start produced by one
outer iteration is handed to the next one explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


@dataclass(frozen=True)
class InnerSolution:
    """Solution of an inner problem for one value of the hyperparameters.

    Attributes
    ----------
    w : torch.Tensor
        The inner parameters, shape ``(n_features, n_targets)``.
    n_iter : int
        Iterations the inner solver used (0 for closed forms).
    n_matvec : int
        Hessian-vector products it used, recycle-space pairing included.
    residual : float
        How far ``w`` is from optimal, in the measure ``residual_kind`` names.
    residual_kind : str
        What ``residual`` measures, set by the solver: ``"grad_norm"`` (2-norm of the
        gradient, e.g. the residual ``||H w - c||`` of a quadratic), ``"scaled_grad_inf_norm"``
        (infinity norm of the gradient divided by the variable's scale: L-BFGS),
        ``"gradient_mapping"`` (``||w - prox_{s g}(w - s grad f(w))|| / s``: proximal
        gradient), ``"duality_gap"`` (primal minus dual objective: coordinate descent) or
        ``"exact"`` (a direct solve; ``residual`` is 0).
    converged : bool
        Whether the solver reached its tolerance.
    hessian_solve : callable or None
        ``b -> H^{-1} b`` with the Hessian at ``w`` when the solver factorised it; lets
        implicit differentiation reuse the factorisation instead of a Krylov solve.
    recycle : object or None
        Recycle space of a Krylov solve, paired with the Hessian at ``w`` (the adjoint
        system of implicit differentiation has the same Hessian).
    preconditioner : callable or None
        ``b -> M^{-1} b`` with ``M`` an approximation of the objective's Hessian near
        ``w`` that the solver factorised (L-BFGS's sketched Hessian): preconditions the
        adjoint system of implicit differentiation.
    n_func_eval : int
        Objective evaluations of iterative solvers that count them (0 otherwise).
    n_grad_eval : int
        Gradient evaluations of iterative solvers that count them (0 otherwise).
    history : list of dict or None
        Per-iteration records when the solver was asked to keep them (e.g. HDM: objective,
        grad_inf_norm, accepted, P_mean / P_min / P_max, beta, lr).
    solver_state : object or None
        The solver's final state, to warm-start a later solve (e.g. HDM's learned stepsizes).
    """

    w: torch.Tensor
    n_iter: int = 0
    n_matvec: int = 0
    residual: float = 0.0
    residual_kind: str = "exact"
    converged: bool = True
    hessian_solve: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    recycle: Any = None
    preconditioner: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    n_func_eval: int = 0
    n_grad_eval: int = 0
    history: Optional[list] = None
    solver_state: Any = None


@dataclass(frozen=True)
class WarmStart:
    """What one hypergradient evaluation hands to the next one for the same fold.

    Attributes
    ----------
    w : torch.Tensor or None
        Previous inner solution.
    adjoint : torch.Tensor or None
        Previous solution of the adjoint system ``H v = grad_w(outer)`` (flattened).
    recycle : object or None
        Recycle space of a recycling Krylov solver.
    jacobian : torch.Tensor or None
        Previous derivative iterate ``dw / dtheta`` of forward-mode differentiation.
    """

    w: Optional[torch.Tensor] = None
    adjoint: Optional[torch.Tensor] = None
    recycle: Any = None
    jacobian: Optional[torch.Tensor] = None


@dataclass(frozen=True)
class HypergradResult:
    """Outer value and hypergradient of one fold.

    Attributes
    ----------
    value : float
        Outer criterion at the inner solution.
    grad : torch.Tensor or None
        Hypergradient with respect to ``theta``; None when only the value was asked for.
    w : torch.Tensor
        Inner solution used.
    warm_start : WarmStart
        State for the next call on the same fold.
    n_inner_iter : int
        Inner-solver iterations.
    n_linsys_iter : int
        Krylov iterations of the adjoint solve (0 with a factorisation).
    n_matvec : int
        Hessian-vector products of the inner and adjoint solves, recycle-space pairing
        included.
    inner_converged : bool
        Whether the inner solver and the adjoint solve reached their tolerances.
    jacobians : list of torch.Tensor or None
        Derivative iterates ``J_k = dw_k / dtheta`` (``(w.numel(), n_hyper)``), one per
        inner iteration, when a forward-mode method was asked to record them.
    """

    value: float
    grad: Optional[torch.Tensor]
    w: torch.Tensor
    warm_start: WarmStart
    n_inner_iter: int = 0
    n_linsys_iter: int = 0
    n_matvec: int = 0
    inner_converged: bool = True
    jacobians: Optional[list] = None


@dataclass
class OuterResult:
    """Outcome of the outer optimisation.

    Attributes
    ----------
    theta : torch.Tensor
        Best hyperparameters found (unconstrained scale).
    value : float
        Outer objective at ``theta``.
    n_iter : int
        Outer iterations of the optimizer (grid evaluations not included).
    converged : bool
        Whether the optimizer met its stopping rule.
    message : str
        The optimizer's own account of why it stopped.
    history : list of dict
        One record per objective evaluation (see :func:`minimize_hyperparams`).
    fold_solutions : list of torch.Tensor
        The folds' inner solutions at the last evaluated ``theta`` (usually ``theta`` or
        next to it): their mean warm-starts a refit on all the data.
    solution_path : list of list of torch.Tensor
        With ``minimize_hyperparams(keep_solution_path=True)``, the folds' inner solutions
        at every evaluation, in the order of ``history``; empty otherwise.
    """

    theta: torch.Tensor
    value: float
    n_iter: int
    converged: bool
    message: str = ""
    history: list = field(default_factory=list)
    fold_solutions: list = field(default_factory=list)
    solution_path: list = field(default_factory=list)
