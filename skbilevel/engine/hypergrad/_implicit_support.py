"""Implicit differentiation of a proximal problem's solution, restricted to its support."""

from __future__ import annotations

import torch

from .._results import HypergradResult, WarmStart
from ..linalg import CG, DenseSolver, make_linear_solver
from ..linalg._dense import solve_symmetric
from ._method import HypergradientMethod


class ImplicitSupport(HypergradientMethod):
    """``dw*/dtheta`` from the optimality conditions on the support ``S`` of ``w*``.

    Off the support ``w*`` stays 0 for small changes of ``theta`` (strict complementarity);
    on it the penalty is smooth (``|w_j| = sign(w*_j) w_j``) and
    ``grad_S f(w) + grad_S g(w, theta) = 0`` holds, so with ``v`` solving

        ``(H_SS + P_SS) v = (grad_w F)_S``,   ``dF/dtheta = d_theta F - (d_theta grad_S g)^T v``

    where ``H`` is the Hessian of the smooth part at ``w*`` and ``P`` the penalty's (its
    L2 part: diagonal, since the penalties are separable). Unpenalised rows (an intercept)
    are always in ``S``. Exact at the solution, so it needs a converged inner solve (unlike
    the unrolled methods); its cost does not depend on the number of hyperparameters.

    Parameters
    ----------
    linear_solver : str, linear solver or None, default=None
        A :mod:`skbilevel.engine.linalg` solver or its name (``"cg"``, ``"minres"``,
        ``"dense"``). None: a dense factorisation of ``H_SS + P_SS`` (``|S|`` Hessian
        products) when ``|S| <= dense_max``, CG at relative tolerance ``rtol`` otherwise.
    dense_max : int, default=100
        Largest support solved densely when ``linear_solver`` is None.
    block_max : int, default=3000
        With ``linear_solver`` None and a problem that forms the Hessian block on the
        support directly (``support_hessian``: a dense design), supports up
        to this size are solved by a dense factorisation of that block, when it is cheaper
        than CG (``|S|^2 <= 100 rows``).
    rtol : float, default=1e-10
        Relative residual of the default CG. The hypergradient's relative error is of
        this order (times the conditioning of the system); an outer optimizer at a
        tolerance of 1e-5 needs no better than 1e-6, and each factor of 10 costs CG about
        ``sqrt(cond) / 2 * 2.3`` iterations. CG stops with an error if the system is
        indefinite (a nonconvex inner problem): pass ``linear_solver="minres"`` there.

    Attributes
    ----------
    requires : tuple of str
        What the problem must provide (a :class:`~skbilevel.engine.inner.ProximalProblem`
        does): ``support``, ``smooth_hvp``, ``penalty_hessian_diag`` and
        ``penalty_cross_vjp``.
    optional : tuple of str
        ``support_hessian``: the Hessian block on the support, formed directly.
    """

    requires = ("support", "smooth_hvp", "penalty_hessian_diag", "penalty_cross_vjp")
    optional = ("support_hessian",)

    def __init__(self, linear_solver=None, dense_max=100, block_max=3000, rtol=1e-10):
        self.rtol = float(rtol)
        if isinstance(linear_solver, str):
            linear_solver = make_linear_solver(linear_solver)
        self.linear_solver, self.dense_max, self.block_max = linear_solver, dense_max, \
            int(block_max)

    def _solver_for(self, size):
        if self.linear_solver is not None:
            return self.linear_solver
        return DenseSolver() if size <= self.dense_max else CG(rtol=self.rtol)

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Solve the inner problem, then the linear system on its support."""
        found = self._check(problem, solver)
        warm = warm_start or WarmStart()
        sol = solver.solve(problem, theta, warm.w)
        w = sol.w.detach()
        value = float(criterion.value(w))
        if not with_grad:
            return HypergradResult(value, None, w, WarmStart(w, warm.adjoint),
                                   n_inner_iter=sol.n_iter, inner_converged=sol.converged)
        theta = theta.detach()
        support = problem.support(w)
        pen_diag = problem.penalty_hessian_diag(w, theta)[support]

        def embed(u_S):
            return torch.zeros_like(w).masked_scatter(support, u_S)

        def matvec(u_S):
            return problem.smooth_hvp(w, theta, embed(u_S))[support] + pen_diag * u_S

        g_S = criterion.grad_w(w).reshape(w.shape)[support]
        x0 = None if warm.adjoint is None or warm.adjoint.shape != w.shape else \
            warm.adjoint[support]
        n_iter = n_matvec = 0
        converged = sol.converged
        block = None
        size = g_S.numel()
        # Forming the block costs n |S|^2, CG about 100 passes of n d: the block wins when
        # |S|^2 <= 100 d (the support of a sparse solution; not a dense L2 fit).
        if self.linear_solver is None and 0 < size <= self.block_max and \
                size ** 2 <= 100 * w.numel() and "support_hessian" in found:
            block = problem.support_hessian(w, support)
        if block is not None:  # formed directly: one product of |S| columns, not |S| passes
            block = block + torch.diag(pen_diag)
            # Exactly singular when features repeat on the support (the Lasso's solution is
            # then not unique, its fitted values are): the minimum-norm solution.
            v_S = solve_symmetric(block, g_S.reshape(-1, 1))[0].reshape(g_S.shape)
        elif g_S.numel():
            linear = self._solver_for(g_S.numel())
            # The inner solver's factorised approximation of the Hessian (L-BFGS's sketch)
            # preconditions CG: 3-5 products instead of 25-30 at 80,000 x 200. It is of the
            # whole variable, so only for a support that is all of it (L2).
            extra = {"preconditioner": sol.preconditioner} if \
                sol.preconditioner is not None and isinstance(linear, CG) and \
                bool(support.all()) else {}
            v_S, info = linear(matvec, g_S, x0=x0, **extra)
            n_iter, n_matvec = info.n_iter, info.n_matvec
            converged = converged and info.converged
        else:  # empty support: w* = 0 does not move
            v_S = g_S
        v = embed(v_S)
        hypergrad = criterion.grad_theta(w, theta) - problem.penalty_cross_vjp(w, theta, v)
        return HypergradResult(value, hypergrad, w, WarmStart(w, v), n_inner_iter=sol.n_iter,
                               n_linsys_iter=n_iter, n_matvec=sol.n_matvec + n_matvec,
                               inner_converged=converged)
