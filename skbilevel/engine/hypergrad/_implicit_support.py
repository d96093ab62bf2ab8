"""Implicit differentiation of a proximal problem's solution, restricted to its support."""

from __future__ import annotations

import torch
from torch.func import grad, jvp, vjp

from .._results import HypergradResult, WarmStart
from ..linalg import CG


class ImplicitSupport:
    """``dw*/dtheta`` from the optimality conditions on the support ``S = {j: w*_j != 0}``.

    Off the support ``w*`` stays 0 for small changes of ``theta``; on it the penalty is
    smooth (``|w_j| = sign(w*_j) w_j``) and ``grad f(w) + grad pen(w, theta) = 0`` holds, so

        ``(H_SS + P_SS) v = (grad_w F)_S``,  ``dF/dtheta = d_theta F - (d_theta grad_w pen)_S^T v``

    with ``H`` the smooth part's Hessian and ``P`` the penalty's (its L2 part). The
    penalty's derivatives come from autograd of its ``value`` (``d|w|/dw = sign(w)`` off
    zero); the system, of the size of the support, is solved matrix-free by ``linear_solver``
    (CG by default). Exact at the solution; needs a converged inner solve, unlike the
    unrolled methods, and its cost does not depend on the number of hyperparameters.

    Parameters
    ----------
    linear_solver : callable or None
        A :mod:`skbilevel.engine.linalg` solver; None is CG at relative tolerance 1e-10.
    """

    def __init__(self, linear_solver=None):
        self.linear_solver = linear_solver if linear_solver is not None else CG(rtol=1e-10)

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Solve the inner problem, then the linear system on its support."""
        warm = warm_start or WarmStart()
        sol = solver.solve(problem, theta, warm.w)
        w = sol.w.detach()
        value = float(criterion.value(w))
        if not with_grad:
            return HypergradResult(value, None, w, WarmStart(w, warm.adjoint),
                                   n_inner_iter=sol.n_iter, inner_converged=sol.converged)
        support = w != 0
        pen_grad = grad(problem.penalty.value, argnums=0)

        def embed(u_S):
            return torch.zeros_like(w).masked_scatter(support, u_S)

        def matvec(u_S):
            u = embed(u_S)
            pen_hvp = jvp(lambda ww: pen_grad(ww, theta), (w,), (u,))[1]
            return (problem.hessian_matvec(u) + pen_hvp)[support]

        g_S = criterion.grad_w(w)[support]
        x0 = None if warm.adjoint is None or warm.adjoint.shape != w.shape else \
            warm.adjoint[support]
        if g_S.numel():
            v_S, info = self.linear_solver(matvec, g_S, x0=x0)
            n_iter, converged = info.n_iter, sol.converged and info.converged
        else:  # empty support: w* = 0 does not move
            v_S, n_iter, converged = g_S, 0, sol.converged
        v = embed(v_S)
        _, pullback = vjp(lambda th: pen_grad(w, th), theta)
        (cross,) = pullback(v)
        hypergrad = criterion.grad_theta(w, theta) - cross
        return HypergradResult(value, hypergrad, w, WarmStart(w, v), n_inner_iter=sol.n_iter,
                               n_linsys_iter=n_iter, n_matvec=n_iter,
                               inner_converged=converged)
