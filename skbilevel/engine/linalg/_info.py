"""Records returned by the linear solvers, and the argument checks they share.

The solvers keep no state between calls: whatever one solve wants to hand to the next (the
recycle space of recycled MINRES) travels in these records and comes back as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RecycleSpace:
    """A subspace carried from one linear solve to the next.

    Attributes
    ----------
    U : torch.Tensor
        Basis of shape ``(n, k)``, chosen at the end of the previous solve (approximate
        eigenvectors of the previous operator for its eigenvalues of smallest magnitude).
    C : torch.Tensor or None
        ``H U`` for the operator ``H`` of the solve that produced the space, with
        orthonormal columns (a *paired* space). A following solve with the **same**
        operator (e.g. the adjoint system after the inner fit, which share the Hessian)
        then deflates it without any operator application. Call :meth:`unpaired` before
        handing the space to a solve with a different operator; with ``C=None`` the solve
        pairs ``U`` itself at the cost of ``k`` operator applications.
    tag : object or None
        Identifies the operator ``C`` is paired with, for a caller that knows how its
        operators differ (the engine stores the hyperparameters: a ridge Hessian changes by
        a known diagonal, so ``H_new U = C + D U`` re-pairs the space for free). The linear
        solvers never read it.
    S : torch.Tensor or None
        Solution snapshots ``(n, s)``: the last solutions of the sequence, newest first.
        They are deflated alongside ``U``, so a solve starts from the best combination of
        its predecessors' solutions (on a path of slowly moving systems, an extrapolation).
    HS : torch.Tensor or None
        ``H S`` for the operator ``C`` is paired with (None when unpaired).
    """

    U: torch.Tensor
    C: Optional[torch.Tensor] = None
    tag: Any = None
    S: Optional[torch.Tensor] = None
    HS: Optional[torch.Tensor] = None

    def __post_init__(self):
        if not isinstance(self.U, torch.Tensor) or self.U.dim() != 2:
            raise ValueError("RecycleSpace.U must be a 2-D tensor of shape (n, k)")
        if self.C is not None and self.C.shape != self.U.shape:
            raise ValueError(f"RecycleSpace.C must have the shape of U {tuple(self.U.shape)}, "
                             f"got {tuple(self.C.shape)}")

    @property
    def dim(self) -> int:
        """Number of basis vectors ``k``."""
        return int(self.U.shape[1])

    def unpaired(self) -> "RecycleSpace":
        """The same subspace without its pairing (for a solve with another operator).

        Only the columns are normalised (``U R^{-1}`` can have long ones): the solve that
        pairs the space orthonormalises ``H U`` by a QR anyway, so a QR here would be paid
        twice, and it is computed after every recycled solve.
        """
        if self.C is None and self.HS is None:
            return self
        norms = torch.linalg.vector_norm(self.U, dim=0)
        return RecycleSpace(self.U / torch.where(norms > 0, norms, 1.0), S=self.S)



@dataclass(frozen=True)
class LinearSolveInfo:
    """What a linear solve did.

    Attributes
    ----------
    n_iter : int
        Krylov iterations, one operator application each (0 for the dense solver).
    n_matvec : int
        All operator applications, including the ``k`` spent pairing a recycle space with
        the new operator and the one spent on the initial residual of a warm start.
    residual : float
        Final residual norm ``||b - H x||`` (the recurrence estimate for Krylov solvers).
    converged : bool
        Whether ``residual <= max(rtol * ||b||, atol)`` was reached within ``max_iter``.
    recycle : RecycleSpace or None
        What to pass as ``recycle=`` to the next solve (unpaired, so valid whatever the
        next operator); None for solvers without recycling.
    paired_recycle : RecycleSpace or None
        The same space paired with this solve's operator (``C = H U``): pass it instead of
        ``recycle`` when the next system has the **same** operator, to save the ``k``
        operator applications of pairing.
    """

    n_iter: int
    n_matvec: int
    residual: float
    converged: bool
    recycle: Optional[RecycleSpace] = None
    paired_recycle: Optional[RecycleSpace] = None


def check_tolerances(rtol, atol, max_iter):
    """Validate the stopping parameters shared by the Krylov solvers.

    Parameters
    ----------
    rtol, atol : float
        Relative and absolute tolerances, both non-negative.
    max_iter : int or None
        Positive iteration cap, or None for ``2 * n``.

    Returns
    -------
    tuple
        ``(float(rtol), float(atol), max_iter)``.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if max_iter is not None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer or None, got {max_iter!r}")
    return float(rtol), float(atol), max_iter


def check_system(b: torch.Tensor, x0: Optional[torch.Tensor]) -> torch.Tensor:
    """Check that ``b`` is a 1-D float tensor and return the starting point.

    Parameters
    ----------
    b : torch.Tensor
        Right-hand side, shape ``(n,)``.
    x0 : torch.Tensor or None
        Starting point of shape ``(n,)``; None means zeros.

    Returns
    -------
    torch.Tensor
        ``x0`` on the device and in the dtype of ``b`` (a fresh tensor, never ``x0`` itself).
    """
    if not isinstance(b, torch.Tensor) or b.dim() != 1:
        raise ValueError("b must be a 1-D tensor")
    if not b.is_floating_point():
        raise ValueError(f"b must be a floating-point tensor, got {b.dtype}")
    if x0 is None:
        return torch.zeros_like(b)
    if x0.shape != b.shape:
        raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(b.shape)}")
    # A copy, so that in-place updates never touch the caller's tensor.
    return x0.to(device=b.device, dtype=b.dtype).clone()


def stopping_threshold(b_norm: float, rtol: float, atol: float) -> float:
    """Return the residual norm ``max(rtol * ||b||, atol)`` below which a solve stops."""
    return max(rtol * b_norm, atol)
