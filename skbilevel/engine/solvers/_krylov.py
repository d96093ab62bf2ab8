"""Matrix-free solves of quadratic inner problems by Krylov methods."""

from __future__ import annotations

from .._results import InnerSolution
from ..linalg import CG, repair_recycle_space, tag_recycle_space


class KrylovSolver:
    """Solve a quadratic inner problem ``H(theta) w = c`` on Hessian-vector products.

    Never forms the Gram, so it is the path for large ``d`` and sparse ``X``. It is
    warm-started from the previous outer iteration's solution and, with a recycling linear
    solver, deflated by the previous recycle space. Its own recycle space comes back
    *paired* with ``H(theta)``: implicit differentiation solves its adjoint system with the
    same Hessian, so it reuses that space at no operator application.

    Parameters
    ----------
    linear_solver : callable or None
        A :mod:`skbilevel.engine.linalg` solver; None is :class:`~skbilevel.engine.linalg.CG`.
    """

    def __init__(self, linear_solver=None):
        self.linear_solver = linear_solver if linear_solver is not None else CG()

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Return the inner solution, warm-started from ``w0`` and deflated by ``recycle``.

        ``recycle`` comes from a solve with another ``theta``, hence another operator: it is
        re-paired with this one (see
        :func:`~skbilevel.engine.linalg.repair_recycle_space`).
        """
        w_zero = problem.init_params()
        shape = w_zero.shape
        # For a quadratic g, grad g(w) = H w - c, so c = -grad g(0).
        c = -problem.grad(w_zero, theta)

        def matvec(v):
            return problem.hvp(w_zero, theta, v.reshape(shape)).reshape(-1)

        x0 = None if w0 is None else w0.reshape(-1)
        space = None if recycle is None else repair_recycle_space(
            recycle, theta, shape, getattr(problem, "hessian_shift", None))
        x, info = self.linear_solver(matvec, c.reshape(-1), x0=x0, recycle=space)
        return InnerSolution(w=x.reshape(shape), n_iter=info.n_iter, n_matvec=info.n_matvec,
                             residual=info.residual, converged=info.converged,
                             recycle=tag_recycle_space(info.paired_recycle, theta))


class ConjugateGradientSolver(KrylovSolver):
    """:class:`KrylovSolver` with conjugate gradients.

    Parameters
    ----------
    rtol : float
        Relative residual tolerance ``||H w - c|| <= rtol ||c||``.
    max_iter : int or None
        Iteration cap (None: twice the number of unknowns).
    """

    def __init__(self, rtol: float = 1e-10, max_iter=None):
        super().__init__(CG(rtol=rtol, max_iter=max_iter))
