"""Matrix-free solves of quadratic inner problems by Krylov methods."""

from __future__ import annotations

from .._capabilities import check
from .._results import InnerSolution
from ..linalg import CG, repair_recycle_space, tag_recycle_space
from ._solver import InnerSolver


class KrylovSolver(InnerSolver):
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

    Attributes
    ----------
    requires : tuple of str
        ``init_params``, ``grad`` (at 0, for the right-hand side) and ``hvp``.
    residual_kind : str
        ``"grad_norm"``: the linear residual ``||H w - c||`` is the gradient's norm.
    """

    requires = ("init_params", "grad", "hvp")
    optional = ("hessian_shift",)  # re-pairs a recycle space with the new Hessian for free
    residual_kind = "grad_norm"

    def __init__(self, linear_solver=None):
        self.linear_solver = linear_solver if linear_solver is not None else CG()

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Return the inner solution, warm-started from ``w0`` and deflated by ``recycle``.

        ``recycle`` comes from a solve with another ``theta``, hence another operator: it is
        re-paired with this one (see
        :func:`~skbilevel.engine.linalg.repair_recycle_space`).
        """
        found = check(self, problem)
        w_zero = problem.init_params()
        shape = w_zero.shape
        # For a quadratic g, grad g(w) = H w - c, so c = -grad g(0).
        c = -problem.grad(w_zero, theta)

        def matvec(v):
            return problem.hvp(w_zero, theta, v.reshape(shape)).reshape(-1)

        x0 = None if w0 is None else w0.reshape(-1)
        space = None if recycle is None else repair_recycle_space(
            recycle, theta, shape, problem.hessian_shift if "hessian_shift" in found else None)
        x, info = self.linear_solver(matvec, c.reshape(-1), x0=x0, recycle=space)
        return InnerSolution(w=x.reshape(shape), n_iter=info.n_iter, n_matvec=info.n_matvec,
                             residual=info.residual, residual_kind=self.residual_kind,
                             converged=info.converged,
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
