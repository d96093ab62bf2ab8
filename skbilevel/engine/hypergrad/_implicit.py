"""Hypergradients by implicit differentiation of the inner optimality condition."""

from __future__ import annotations

from .._results import HypergradResult, WarmStart
from ..linalg import CG, repair_recycle_space, tag_recycle_space
from ._method import HypergradientMethod


class ImplicitDifferentiation(HypergradientMethod):
    """``dF/dtheta = d_theta F - (d_theta grad_w g)^T v`` with ``H v = grad_w F``.

    ``H`` is the inner Hessian at ``w*(theta)``. The adjoint system is solved with the
    inner solver's factorisation when it has one and ``linear_solver`` is None, otherwise
    matrix-free with ``linear_solver`` (a :mod:`skbilevel.engine.linalg` solver) on
    Hessian-vector products, warm-started from the previous adjoint solution and, for
    recycling solvers, deflated by the previous recycle space.

    Parameters
    ----------
    linear_solver : callable or None
        ``(matvec, b, x0, recycle) -> (x, LinearSolveInfo)``; None reuses the inner
        factorisation (conjugate gradients if the solver has none, which stops with an
        error on an indefinite Hessian: pass :class:`~skbilevel.engine.linalg.MINRES`
        for a nonconvex inner problem).

    Attributes
    ----------
    requires : tuple of str
        ``hvp`` (the adjoint system's operator) and ``cross_vjp``.
    """

    requires = ("hvp", "cross_vjp")
    optional = ("hessian_shift",)  # re-pairs the last adjoint's recycle space for free

    def __init__(self, linear_solver=None):
        self.linear_solver = linear_solver

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Solve the inner problem and return the outer value and its hypergradient."""
        found = self._check(problem, solver)
        warm = warm_start or WarmStart()
        sol = solver.solve(problem, theta, w0=warm.w, recycle=warm.recycle)
        # The inner Krylov solve's space is paired with H(theta), which the adjoint shares.
        recycle = sol.recycle
        if recycle is None and warm.recycle is not None:  # from the last adjoint solve
            recycle = repair_recycle_space(warm.recycle, theta, sol.w.shape,
                                           problem.hessian_shift if "hessian_shift" in found
                                           else None)
        value = float(criterion.value(sol.w))
        if not with_grad:
            return HypergradResult(value, None, sol.w, WarmStart(sol.w, warm.adjoint, recycle),
                                   n_inner_iter=sol.n_iter, n_matvec=sol.n_matvec,
                                   inner_converged=sol.converged)
        g = criterion.grad_w(sol.w)
        n_iter, n_matvec = 0, sol.n_matvec
        converged = sol.converged
        adjoint = warm.adjoint
        if self.linear_solver is None and sol.hessian_solve is not None:
            v = sol.hessian_solve(g)
        else:
            v, info = self._krylov(problem, theta, sol.w, g, warm.adjoint, recycle)
            # Paired with H(theta) like the inner space: the next inner solve re-pairs it.
            adjoint = v.reshape(-1)
            recycle = tag_recycle_space(info.paired_recycle, theta) or info.recycle
            n_iter, n_matvec = info.n_iter, n_matvec + info.n_matvec
            converged = converged and info.converged
        grad = criterion.grad_theta(sol.w, theta) - problem.cross_vjp(sol.w, theta, v)
        return HypergradResult(value, grad, sol.w, WarmStart(sol.w, adjoint, recycle),
                               n_inner_iter=sol.n_iter, n_linsys_iter=n_iter,
                               n_matvec=n_matvec, inner_converged=converged)

    def _krylov(self, problem, theta, w, g, x0, recycle):
        linear_solver = self.linear_solver or CG()
        shape = g.shape

        def matvec(x):
            return problem.hvp(w, theta, x.reshape(shape)).reshape(-1)

        x, info = linear_solver(matvec, g.reshape(-1), x0=x0, recycle=recycle)
        return x.reshape(shape), info
