"""Conjugate gradients for symmetric positive definite operators."""

from __future__ import annotations

import math
from typing import Optional

import torch

from ._info import LinearSolveInfo, Matvec, RecycleSpace, check_system, stopping_threshold
from ._solver import LinearSolver


class CG(LinearSolver):
    """Conjugate gradient method for ``H x = b`` with ``H`` symmetric positive definite.

    Its stopping rule (``rtol``, ``atol``, ``max_iter``) is :class:`LinearSolver`'s.

    Notes
    -----
    The residual is updated by the recurrence ``r <- r - a H p`` and never recomputed, so
    every iteration costs exactly one operator application. A warm start ``x0`` costs one
    more (the initial residual ``b - H x0``). The ``recycle`` argument is accepted for a
    uniform interface and ignored. A curvature ``p^T H p`` that is zero to rounding (a
    semi-definite ``H``) or not a number stops the iterations unconverged, as a cap does.
    """

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None, preconditioner=None):
        """Solve ``H x = b`` (see :meth:`LinearSolver.__call__`; ``recycle`` is ignored).

        ``preconditioner``: ``r -> M^{-1} r`` for a symmetric positive definite ``M`` close
        to ``H`` (preconditioned CG; the stopping rule stays on ``||b - H x||``), or None.

        Raises
        ------
        ValueError
            On clear negative curvature along a search direction (``p^T H p < 0`` beyond
            rounding): ``H`` is indefinite, e.g. the Hessian of a nonconvex inner problem,
            and CG's answer would be wrong. :class:`MINRES` solves such systems.
        """
        x = check_system(b, x0)
        b_norm = float(torch.linalg.vector_norm(b))
        if b_norm == 0.0:
            return torch.zeros_like(b), LinearSolveInfo(0, 0, 0.0, True, None)
        tol = stopping_threshold(b_norm, self.rtol, self.atol)
        max_iter = self.max_iter if self.max_iter is not None else 2 * b.shape[0]

        n_matvec = 0
        if torch.count_nonzero(x) > 0:
            r = b - matvec(x)
            n_matvec += 1
        else:
            # A zero start needs no operator application: r0 = b.
            r = b.clone()
        rr = float(torch.dot(r, r))
        res = rr ** 0.5
        if preconditioner is not None:
            return _pcg(matvec, preconditioner, x, r, res, tol, max_iter, n_matvec)
        p = r.clone()
        # ||p||^2 by the recurrence ||r + beta p||^2 = ||r||^2 + beta^2 ||p||^2 (r is
        # orthogonal to the previous p), and the largest curvature p^T H p / ||p||^2 seen:
        # together they tell negative curvature from rounding, at no operator application.
        pp, curvature = rr, 0.0
        n_iter = 0
        while res > tol and n_iter < max_iter:
            Hp = matvec(p)
            n_matvec += 1
            n_iter += 1
            pHp = float(torch.dot(p, Hp))
            if not pHp > 0.0:
                # Not positive definite along p: raise if that is certain, else (zero to
                # rounding, or NaN) stop unconverged, as CG cannot continue meaningfully.
                _check_curvature(pHp, p, Hp, curvature, n_iter)
                break
            curvature = max(curvature, pHp / pp)
            a = rr / pHp
            x = x + a * p
            r = r - a * Hp
            rr_new = float(torch.dot(r, r))
            res = rr_new ** 0.5
            beta = rr_new / rr
            p = r + beta * p
            pp = rr_new + beta * beta * pp
            rr = rr_new
        return x, LinearSolveInfo(n_iter, n_matvec, res, res <= tol, None)


def _pcg(matvec, preconditioner, x, r, res, tol, max_iter, n_matvec):
    """Preconditioned CG from ``x`` with residual ``r`` (``res = ||r||``): ``rz = r^T M^-1
    r`` replaces ``r^T r`` in the step and the update of the direction. A preconditioner
    that is not positive definite along ``z`` (or a singular ``H``) stops it unconverged."""
    z = preconditioner(r)
    rz = float(torch.dot(r, z))
    p = z.clone()
    n_iter = 0
    while res > tol and n_iter < max_iter and rz > 0:
        Hp = matvec(p)
        n_matvec += 1
        n_iter += 1
        pHp = float(torch.dot(p, Hp))
        if not pHp > 0.0:
            _check_curvature(pHp, p, Hp, 0.0, n_iter)
            break
        a = rz / pHp
        x = x + a * p
        r = r - a * Hp
        res = float(torch.linalg.vector_norm(r))
        z = preconditioner(r)
        rz_new = float(torch.dot(r, z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, LinearSolveInfo(n_iter, n_matvec, res, res <= tol, None)


# p^T H p of a positive semi-definite H computed in floating point is off by about
# sqrt(n) eps ||H|| ||p||^2 (the product and the dot product); ten times that is rounding.
_ROUNDING = 10.0


def _check_curvature(pHp, p, Hp, curvature, n_iter):
    """Raise when ``pHp <= 0`` is negative curvature rather than rounding or NaN."""
    if math.isnan(pHp):
        return
    pp = float(torch.dot(p, p))
    # ||H|| from below: the largest curvature seen, or this direction's ||H p|| / ||p||.
    scale = max(curvature, float(torch.linalg.vector_norm(Hp)) / max(pp, 1e-300) ** 0.5)
    eps = torch.finfo(p.dtype).eps
    if pHp < -_ROUNDING * math.sqrt(p.shape[0]) * eps * scale * pp:
        raise ValueError(
            f"CG needs a positive definite operator, but p^T H p = {pHp:.3g} < 0 along the "
            f"search direction of iteration {n_iter} (||p||^2 = {pp:.3g}): the system is "
            f"indefinite (e.g. the Hessian of a nonconvex inner problem), and CG's answer "
            f"would be wrong. Use MINRES (linear_solver='minres'), which solves symmetric "
            f"indefinite systems.")
