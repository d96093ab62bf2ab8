"""A direct solver that forms the operator as a dense matrix, for tests and small problems."""

from __future__ import annotations

from typing import Optional

import torch

from ._info import LinearSolveInfo, Matvec, RecycleSpace, check_system
from ._solver import LinearSolver


def solve_symmetric(H: torch.Tensor, b: torch.Tensor):
    """``(x, factorised)``: ``H^{-1} b`` for a symmetric ``H``, or, when ``H`` is exactly
    singular (duplicated features on a Lasso support, say), the minimum-norm
    least-squares solution ``pinv(H) b``. ``b`` may be a vector or a matrix of columns."""
    x, status = torch.linalg.solve_ex(H, b)
    if int(status.max() if status.dim() else status) == 0 and bool(torch.isfinite(x).all()):
        return x, True
    # The pseudo-inverse also works on CUDA (torch.linalg.lstsq there only handles
    # full-rank matrices).
    return torch.linalg.pinv(H, hermitian=True) @ b, False


class DenseSolver(LinearSolver):
    """Solve ``H x = b`` by forming ``H`` column by column and factorising it.

    ``H`` is built by applying ``matvec`` to the ``n`` identity columns (``n`` operator
    applications), then solved with ``torch.linalg.solve``; if ``H`` is exactly singular,
    the minimum-norm least-squares solution (pseudo-inverse) is returned instead.

    Notes
    -----
    Meant for reference solutions in tests and for small problems: it costs ``n``
    operator applications and ``O(n^2)`` memory. ``x0`` and ``recycle`` are accepted for a
    uniform interface and ignored. ``converged`` is True when the factorisation succeeded,
    and otherwise when the least-squares residual is below ``sqrt(eps) * ||b||``.
    """

    def __init__(self):  # nothing to configure: no tolerance, no iterations
        pass

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None):
        """Solve ``H x = b`` (see :meth:`LinearSolver.__call__`; ``x0`` and ``recycle`` are
        ignored). ``info`` has ``n_iter=0``, ``n_matvec=n`` and the true residual norm."""
        check_system(b, x0)
        b_norm = float(torch.linalg.vector_norm(b))
        if b_norm == 0.0:
            return torch.zeros_like(b), LinearSolveInfo(0, 0, 0.0, True, None)
        n = b.shape[0]
        eye = torch.eye(n, dtype=b.dtype, device=b.device)
        H = torch.stack([matvec(eye[:, j]) for j in range(n)], dim=1)
        x, solved = solve_symmetric(H, b)
        res = float(torch.linalg.vector_norm(b - H @ x))
        converged = solved or res <= torch.finfo(b.dtype).eps ** 0.5 * b_norm
        return x, LinearSolveInfo(0, n, res, converged, None)
