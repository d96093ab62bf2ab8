"""Classic hyper-cleaning by implicit differentiation (a double loop).

Every outer iteration fits the weighted model, ``y*(x) = argmin_y g(x, y)`` (warm-started
L-BFGS), solves the adjoint system ``grad_yy g q = grad_y f`` matrix-free (conjugate
gradients, or MINRES when the model is nonconvex and the Hessian may be indefinite), and
moves the weights' logits along the hypergradient

    d f(y*(x)) / dx = - grad_xy g(x, y*) q,

one entry per sample (``problem.cross``). It is the reference the single-loop methods are
compared with: exact up to the inner and adjoint tolerances, and the most expensive.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ..linalg import CG, MINRES
from ._base import CleaningMethod, CleaningResult
from ._shared import adam_state, adam_step, inner_fit, new_history, record

_SOLVERS = ("auto", "cg", "minres")


class ImplicitCleaning(CleaningMethod):
    """Hyper-cleaning by implicit differentiation of the weighted fit.

    Parameters
    ----------
    step : float, default=0.1
        Adam's step on the logits ``x`` (the most a logit moves per iteration, about);
        logits are clipped to ``[-8, 8]`` so that the weights stay in ``(0, 1)``.
    inner_tol : float, default=1e-8
        The inner fit stops once ``||grad_y g|| <= inner_tol``.
    inner_max_iter : int, default=500
        Cap on the inner L-BFGS iterations per outer iteration.
    linear_solver : {"auto", "cg", "minres"}, default="auto"
        Solver of the adjoint system; "auto" is CG for a convex model and MINRES for a
        nonconvex one (``problem.model.nonconvex``), whose Hessian may be indefinite (CG
        stops with an error there).
    adjoint_tol : float, default=1e-10
        Relative residual tolerance of the adjoint solve.
    tol : float, default=1e-7
        Stop once the hypergradient's norm is at most ``tol``.

    Notes
    -----
    ``history["stationarity"]`` is the hypergradient's norm at ``(x_k, y*(x_k))``,
    ``history["sqrt_h"]`` is ``||grad_y g||`` after the inner fit, ``history["lambda"]`` is
    NaN (no multiplier). The returned ``y`` is the inner fit at the returned ``x``.
    """

    name = "implicit"

    def __init__(self, step=0.1, inner_tol=1e-8, inner_max_iter=500, linear_solver="auto",
                 adjoint_tol=1e-10, tol=1e-7):
        if linear_solver not in _SOLVERS:
            raise ValueError(f"linear_solver must be one of {_SOLVERS}, got "
                             f"{linear_solver!r}")
        if not step > 0 or not inner_tol > 0 or not adjoint_tol > 0 or tol < 0:
            raise ValueError("step, inner_tol and adjoint_tol must be positive, tol >= 0")
        self.step, self.inner_tol, self.inner_max_iter = step, inner_tol, int(inner_max_iter)
        self.linear_solver, self.adjoint_tol, self.tol = linear_solver, adjoint_tol, tol

    def _solver(self, problem):
        name = self.linear_solver
        if name == "auto":
            name = "minres" if getattr(problem.model, "nonconvex", True) else "cg"
        return (CG if name == "cg" else MINRES)(rtol=self.adjoint_tol)

    def hypergradient(self, problem, x, y, q0=None):
        """The hypergradient at ``(x, y)`` with ``y`` the inner solution.

        Returns
        -------
        grad : torch.Tensor
            ``(n,)``, ``-grad_xy g(x, y) q``.
        q : torch.Tensor
            The adjoint, ``grad_yy g q = grad_y f`` (a warm start for the next solve).
        info : LinearSolveInfo
        """
        x, y = x.detach(), y.detach()
        q, info = self._solver(problem)(lambda v: problem.hvp(x, y, v),
                                        problem.outer_grad(y), x0=q0)
        return -problem.cross(x, y, q), q, info

    def run(self, problem, *, max_iter: int, x0: Optional[torch.Tensor] = None,
            y0: Optional[torch.Tensor] = None, generator=None,
            callback: Optional[Callable] = None) -> CleaningResult:
        """Learn the weights (see the class docstring)."""
        x, y = self.start(problem, x0, y0, generator)
        history, start = new_history()
        adam, q = adam_state(x), None
        converged, n_iter = False, 0
        for _ in range(int(max_iter)):
            y, sqrt_h, _ = inner_fit(problem, x, y, tol=self.inner_tol,
                                     max_iter=self.inner_max_iter)
            grad, q, _ = self.hypergradient(problem, x, y, q)
            norm = float(torch.linalg.vector_norm(grad))
            n_iter += 1
            record(history, start, callback, outer_value=problem.outer_value(y),
                   sqrt_h=sqrt_h, stationarity=norm, lam=math.nan)
            if norm <= self.tol:
                converged = True  # y is already the fit at x: return them as they are
                break
            x, adam = adam_step(x, grad, adam, step=self.step)
        else:
            # The last step moved x: refit so that the returned y answers the returned x.
            y, _, _ = inner_fit(problem, x, y, tol=self.inner_tol,
                                max_iter=self.inner_max_iter)
        return CleaningResult(x=x, y=y, history=history, n_iter=n_iter,
                              kkt_residual=history["stationarity"][-1] if n_iter else
                              math.nan, converged=converged)
