"""Conjugate gradients for symmetric positive definite operators."""

from __future__ import annotations

from typing import Optional

import torch

from ._info import (LinearSolveInfo, Matvec, RecycleSpace, check_system, check_tolerances,
                    stopping_threshold)


class CG:
    """Conjugate gradient method for ``H x = b`` with ``H`` symmetric positive definite.

    Parameters
    ----------
    rtol : float, default=1e-10
        Relative tolerance: stop when ``||r|| <= max(rtol * ||b||, atol)``.
    atol : float, default=0.0
        Absolute tolerance.
    max_iter : int or None, default=None
        Iteration cap; None means ``2 * n``.

    Notes
    -----
    The residual is updated by the recurrence ``r <- r - a H p`` and never recomputed, so
    every iteration costs exactly one operator application. A warm start ``x0`` costs one
    more (the initial residual ``b - H x0``). The ``recycle`` argument is accepted for a
    uniform interface and ignored.
    """

    def __init__(self, rtol: float = 1e-10, atol: float = 0.0, max_iter: Optional[int] = None):
        self.rtol, self.atol, self.max_iter = check_tolerances(rtol, atol, max_iter)

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None):
        """Solve ``H x = b``.

        Parameters
        ----------
        matvec : callable
            ``v -> H v`` on 1-D tensors.
        b : torch.Tensor
            Right-hand side, shape ``(n,)``.
        x0 : torch.Tensor or None, default=None
            Starting point; None means zeros.
        recycle : RecycleSpace or None, default=None
            Ignored.

        Returns
        -------
        x : torch.Tensor
            Approximate solution, same shape, dtype and device as ``b``.
        info : LinearSolveInfo
            Iteration counts, final residual and convergence flag (``recycle`` is None).
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
        p = r.clone()
        n_iter = 0
        while res > tol and n_iter < max_iter:
            Hp = matvec(p)
            n_matvec += 1
            n_iter += 1
            pHp = float(torch.dot(p, Hp))
            if not pHp > 0.0:
                # Not positive definite along p (or NaN): CG cannot continue meaningfully.
                break
            a = rr / pHp
            x = x + a * p
            r = r - a * Hp
            rr_new = float(torch.dot(r, r))
            res = rr_new ** 0.5
            p = r + (rr_new / rr) * p
            rr = rr_new
        return x, LinearSolveInfo(n_iter, n_matvec, res, res <= tol, None)
