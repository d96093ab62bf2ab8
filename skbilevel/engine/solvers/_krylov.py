"""Matrix-free solves of quadratic inner problems by Krylov methods."""

from __future__ import annotations

from dataclasses import replace

import torch

from .._capabilities import check
from .._results import InnerSolution
from ..linalg import CG, RecycleSpace
from ..linalg._recycle import orthonormal_pair
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
    residual_kind = "grad_norm"

    def __init__(self, linear_solver=None):
        self.linear_solver = linear_solver if linear_solver is not None else CG()

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Return the inner solution, warm-started from ``w0`` and deflated by ``recycle``.

        ``recycle`` comes from a solve with another ``theta``, hence another operator: it is
        re-paired with this one (see :func:`repair_recycle_space`).
        """
        check(self, problem)
        w_zero = problem.init_params()
        shape = w_zero.shape
        # For a quadratic g, grad g(w) = H w - c, so c = -grad g(0).
        c = -problem.grad(w_zero, theta)

        def matvec(v):
            return problem.hvp(w_zero, theta, v.reshape(shape)).reshape(-1)

        x0 = None if w0 is None else w0.reshape(-1)
        space = None if recycle is None else repair_recycle_space(problem, theta, recycle,
                                                                  shape)
        x, info = self.linear_solver(matvec, c.reshape(-1), x0=x0, recycle=space)
        return InnerSolution(w=x.reshape(shape), n_iter=info.n_iter, n_matvec=info.n_matvec,
                             residual=info.residual, residual_kind=self.residual_kind,
                             converged=info.converged,
                             recycle=tag_recycle_space(info.paired_recycle, theta))


def tag_recycle_space(space, theta):
    """``space`` (paired with ``H(theta)``) labelled with ``theta`` for a later re-pairing."""
    return None if space is None else replace(space, tag=theta.detach().clone())


def repair_recycle_space(problem, theta, space, shape):
    """Pair a recycle space from ``H(theta_old)`` with ``H(theta)``, free when possible.

    When the problem knows how its Hessian moved (``hessian_shift(theta_old, theta)``: a
    diagonal ``D`` with ``H(theta) = H(theta_old) + diag(D)``, as for every L2 penalty
    ``exp(theta)``), ``H(theta) U = C + D U`` costs no operator application (float64 only);
    otherwise the space goes unpaired and the linear solver pairs it (``k`` applications).
    """
    shift = getattr(problem, "hessian_shift", None)
    # Each update starts from the previous C, so rounding accumulates along the path: in
    # float32 the pairing drifts off H U within a few steps; pay the operator instead.
    if space.C is None or space.tag is None or shift is None \
            or space.U.dtype != torch.float64:
        return space.unpaired()
    diagonal = shift(space.tag, theta)
    if diagonal is None:
        return space.unpaired()
    D = diagonal.expand(shape).reshape(-1, 1).to(space.U)
    C = _shifted(space.C, D, space.U)
    HS = None if space.S is None else _shifted(space.HS, D, space.S)
    if C is None or (space.S is not None and HS is None):
        return space.unpaired()
    U = space.U
    if U.shape[1]:
        U, C = orthonormal_pair(U, C)
    if U is None:
        return None
    return RecycleSpace(U, C, tag=theta.detach().clone(), S=space.S, HS=HS)


# Largest loss of relative accuracy accepted in ``H U + D U``: a shift much larger than
# the new product (alpha jumping down from 1e10 to 1) cancels digits, and the error would
# be carried into every later pairing.
_MAX_CANCELLATION = 1e3


def _shifted(HU, D, U):
    """``HU + D U`` or None when cancellation would cost more than 3 digits."""
    DU = D * U
    out = HU + DU
    scale = torch.linalg.vector_norm(HU, dim=0) + torch.linalg.vector_norm(DU, dim=0)
    if bool((scale > _MAX_CANCELLATION * torch.linalg.vector_norm(out, dim=0)).any()):
        return None
    return out


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
