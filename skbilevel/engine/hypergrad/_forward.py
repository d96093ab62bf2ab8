"""Hypergradients by forward-mode differentiation of the inner solver's iterations."""

from __future__ import annotations

import torch

from .._results import HypergradResult, WarmStart


class ForwardMode:
    """``dF/dtheta = d_theta F + J^T grad_w F`` with ``J = dw_K / dtheta`` propagated.

    The inner solver (:class:`~skbilevel.engine.solvers.ProximalGradient` or
    :class:`~skbilevel.engine.solvers.FISTA`) carries the Jacobian of its iterates alongside
    them, through the same update code, so the hypergradient is that of the *algorithm*;
    it converges to the true one at the rate of the iterates (Mehmood & Ochs, 2025). The
    cost per iteration is one directional derivative per hyperparameter, so this suits a
    few hyperparameters; memory is one ``(d, p)`` Jacobian (two with momentum). The
    Jacobian is warm-started from the previous outer iteration like the iterates.
    """

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Run the solver (with the Jacobian when asked) and return value and gradient."""
        warm = warm_start or WarmStart()
        if not with_grad:
            sol, _ = solver.run(problem, theta, warm.w)
            return HypergradResult(float(criterion.value(sol.w)), None, sol.w,
                                   WarmStart(sol.w, jacobian=warm.jacobian),
                                   n_inner_iter=sol.n_iter, inner_converged=sol.converged)
        w0 = problem.init_params()
        J0 = warm.jacobian
        if J0 is None:
            J0 = torch.zeros(w0.numel(), theta.numel(), dtype=w0.dtype, device=w0.device)
        sol, J = solver.run(problem, theta, warm.w, J0)
        grad = criterion.grad_theta(sol.w, theta) + J.t() @ criterion.grad_w(sol.w).reshape(-1)
        return HypergradResult(float(criterion.value(sol.w)), grad, sol.w,
                               WarmStart(sol.w, jacobian=J), n_inner_iter=sol.n_iter,
                               inner_converged=sol.converged)
