"""Matrix-free solves of quadratic inner problems by conjugate gradients."""

from __future__ import annotations

import torch

from .._results import InnerSolution
from ..linalg import CG


class ConjugateGradientSolver:
    """Solve a quadratic inner problem ``H(theta) w = c`` by CG on Hessian-vector products.

    Never forms the Gram, so it is the path for large ``d`` and sparse ``X``; it is
    warm-started from the previous outer iteration's solution, which is where most of its
    speed comes from along a tuning run.

    Parameters
    ----------
    rtol : float
        Relative residual tolerance ``||H w - c|| <= rtol ||c||``.
    max_iter : int or None
        Iteration cap (None: twice the number of unknowns).
    """

    def __init__(self, rtol: float = 1e-10, max_iter=None):
        self.cg = CG(rtol=rtol, max_iter=max_iter)

    def solve(self, problem, theta, w0=None) -> InnerSolution:
        """Return the inner solution, warm-started from ``w0``."""
        shape = problem.init_params().shape
        w_zero = problem.init_params()
        # For a quadratic g, grad g(w) = H w - c, so c = -grad g(0).
        c = -problem.grad(w_zero, theta)

        def matvec(v):
            return problem.hvp(w_zero, theta, v.reshape(shape)).reshape(-1)

        x0 = None if w0 is None else w0.reshape(-1)
        x, info = self.cg(matvec, c.reshape(-1), x0=x0)
        return InnerSolution(w=x.reshape(shape), n_iter=info.n_iter,
                             residual=info.residual, converged=info.converged)
