"""What every linear solver of the engine is: a callable on ``(matvec, b, x0, recycle)``."""

from __future__ import annotations

from typing import Optional

import torch

from ._info import Matvec, RecycleSpace, check_tolerances


class LinearSolver:
    """Base class of the solvers of ``H x = b`` given only ``v -> H v``.

    A solver is configured once and called for each system; it keeps no state between
    calls (a recycle space comes back in ``info.recycle`` for the caller to pass on).

    Parameters
    ----------
    rtol : float, default=1e-10
        Relative tolerance: stop when ``||r|| <= max(rtol * ||b||, atol)``.
    atol : float, default=0.0
        Absolute tolerance.
    max_iter : int or None, default=None
        Iteration cap; None means ``2 * n``.
    """

    def __init__(self, rtol: float = 1e-10, atol: float = 0.0, max_iter: Optional[int] = None):
        self.rtol, self.atol, self.max_iter = check_tolerances(rtol, atol, max_iter)

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None):
        """Solve ``H x = b``.

        Parameters
        ----------
        matvec : callable
            ``v -> H v`` on 1-D tensors, ``H`` symmetric.
        b : torch.Tensor
            Right-hand side, shape ``(n,)``.
        x0 : torch.Tensor or None, default=None
            Starting point; None means zeros.
        recycle : RecycleSpace or None, default=None
            Space from the previous solve (``info.recycle``), for the solvers that recycle
            one; the others ignore it.

        Returns
        -------
        x : torch.Tensor
            Approximate solution, same shape, dtype and device as ``b``.
        info : LinearSolveInfo
            Iteration and operator-application counts, final residual norm, convergence
            flag and, for recycling solvers, the space for the next system.
        """
        raise NotImplementedError
