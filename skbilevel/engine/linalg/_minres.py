"""MINRES and recycled MINRES (RMINRES) for symmetric, possibly indefinite, operators.

One implementation serves both: plain MINRES is RMINRES with an empty recycle space. With
a space ``U`` paired to the operator (``C = H U``, ``C^T C = I``), Lanczos runs on the
projected operator ``(I - C C^T) H`` restricted to ``C``-perp, which is symmetric there, and
the MINRES iterate is corrected by ``-U B y`` so that it stays in
``x0 + span(U) + Krylov`` with a residual orthogonal to ``C`` (Wang, de Sturler & Paulino,
2007). The eigenvalues of ``H`` that ``U`` captures are then deflated from the Krylov
iteration, which is where the savings on a sequence of slowly changing systems come from.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import torch

from ._info import LinearSolveInfo, Matvec, RecycleSpace, check_system, stopping_threshold
from ._recycle import extend_pair, next_recycle_space, orthonormal_pair
from ._solver import LinearSolver

_RITZ = ("harmonic", "plain")


def pair_with_operator(matvec: Matvec, U: torch.Tensor, b: torch.Tensor):
    """Pair a recycle basis with the current operator.

    Parameters
    ----------
    matvec : callable
        ``v -> H v``.
    U : torch.Tensor
        Basis of shape ``(n, k)`` from the previous solve.
    b : torch.Tensor
        Right-hand side; fixes the device and dtype.

    Returns
    -------
    U, C : torch.Tensor or None
        ``U R^{-1}`` and ``Q`` from the thin QR ``H U = Q R``, so that ``C = H U`` and
        ``C^T C = I``; both None when no usable direction is left.
    n_matvec : int
        Operator applications spent (``k``).
    """
    U = U.to(device=b.device, dtype=b.dtype)
    if U.shape[0] != b.shape[0]:
        raise ValueError(f"recycle space has {U.shape[0]} rows, expected {b.shape[0]}")
    k = U.shape[1]
    if k == 0:
        return None, None, 0
    C = torch.stack([matvec(U[:, j]) for j in range(k)], dim=1)
    U, Q = orthonormal_pair(U, C)
    return U, Q, k


def _minres(matvec, b, x, U, C, tol, max_iter, keep_basis, augment=None):
    """Run (deflated) MINRES from ``x``; return the iterate, counts and Lanczos data.

    ``augment = (U_a, C_a)``, a wider paired space, only improves the start: the residual is
    made orthogonal to ``C_a`` once, while the iterations deflate ``C`` alone.
    """
    n_matvec = 0
    if torch.count_nonzero(x) > 0:
        r = b - matvec(x)
        n_matvec += 1
    else:
        r = b.clone()  # a zero start costs no operator application
    if augment is not None:
        c = augment[1].T @ r
        x = x + augment[0] @ c
        r = r - augment[1] @ c
    if C is not None:
        # Solve exactly on span(U) first: afterwards the residual is orthogonal to C.
        c = C.T @ r
        x = x + U @ c
        r = r - C @ c
    beta1 = float(torch.linalg.vector_norm(r))
    lanczos = {"V": [], "alpha": [], "beta": [], "B": []}
    if beta1 <= tol or beta1 == 0.0:
        return x, 0, n_matvec, beta1, True, lanczos

    eps = torch.finfo(b.dtype).eps
    v_prev, v = torch.zeros_like(b), r / beta1
    d_prev2, d_prev = torch.zeros_like(b), torch.zeros_like(b)
    beta = 0.0                          # beta_k, couples v_{k-1} and v_k
    c_old2, s_old2, c_old, s_old = 1.0, 0.0, 1.0, 0.0  # rotations G_{k-2} and G_{k-1}
    phibar, h_norm = beta1, 0.0
    n_iter, converged = 0, False
    if keep_basis:
        lanczos["V"].append(v)
    while n_iter < max_iter:
        w = matvec(v)
        n_matvec += 1
        n_iter += 1
        if C is not None:
            bk = C.T @ w
            w = w - C @ bk
        w = w - beta * v_prev
        alpha = float(torch.dot(v, w))
        w = w - alpha * v
        if C is not None:
            # Second projection: rounding lets w drift back towards span(C). The removed
            # component belongs to H v_k = C b_k + ..., so it is added to b_k.
            corr = C.T @ w
            w = w - C @ corr
            bk = bk + corr
        beta_next = float(torch.linalg.vector_norm(w))
        if not math.isfinite(alpha + beta_next):
            break  # the operator returned inf/NaN: stop, not converged
        h_norm = max(h_norm, abs(alpha), beta, beta_next)
        breakdown = beta_next <= 10 * eps * h_norm

        # Apply G_{k-2} and G_{k-1} to column k of T, then build G_k to zero beta_{k+1}.
        epsilon, dbar = s_old2 * beta, c_old2 * beta
        delta = c_old * dbar + s_old * alpha
        gbar = -s_old * dbar + c_old * alpha
        gamma = (gbar * gbar + beta_next * beta_next) ** 0.5
        if keep_basis:
            lanczos["alpha"].append(alpha)
            lanczos["beta"].append(0.0 if breakdown else beta_next)
            if C is not None:
                lanczos["B"].append(bk)
        if gamma == 0.0:
            break  # T_k singular with an invariant Krylov space: no further progress
        cs, sn = gbar / gamma, beta_next / gamma
        tau, phibar = cs * phibar, -sn * phibar
        # The direction uses v_k - U b_k instead of v_k: H (v_k - U b_k) has no C component.
        z = v if C is None else v - U @ bk
        d = (z - delta * d_prev - epsilon * d_prev2) / gamma
        x = x + tau * d
        d_prev2, d_prev = d_prev, d
        c_old2, s_old2, c_old, s_old = c_old, s_old, cs, sn

        if abs(phibar) <= tol or breakdown:
            converged = abs(phibar) <= tol
            v_next = torch.zeros_like(b) if breakdown else w / beta_next
            if keep_basis:
                lanczos["V"].append(v_next)
            break
        v_prev, v, beta = v, w / beta_next, beta_next
        if keep_basis:
            lanczos["V"].append(v)
    if keep_basis and len(lanczos["V"]) == len(lanczos["alpha"]):
        lanczos["V"].append(torch.zeros_like(b))  # stopped without a next Lanczos vector
    return x, n_iter, n_matvec, abs(phibar), converged, lanczos


class MINRES(LinearSolver):
    """MINRES for ``H x = b`` with ``H`` symmetric, possibly indefinite (parameters
    ``rtol``, ``atol``, ``max_iter``: see :class:`LinearSolver`).

    Notes
    -----
    The residual norm is the recurrence estimate ``|phi|`` from the Givens rotations; the
    true residual is never recomputed, so an iteration costs one operator application. The
    ``recycle`` argument is accepted for a uniform interface and ignored.
    """

    n_snapshots = 0

    def _solve(self, matvec, b, x0, recycle, keep_basis):
        x = check_system(b, x0)
        b_norm = float(torch.linalg.vector_norm(b))
        if b_norm == 0.0:
            unpaired = None if recycle is None else recycle.unpaired()
            return torch.zeros_like(b), LinearSolveInfo(0, 0, 0.0, True, unpaired, recycle)
        tol = stopping_threshold(b_norm, self.rtol, self.atol)
        max_iter = self.max_iter if self.max_iter is not None else 2 * b.shape[0]
        U = C = S = HS = None
        n_pair = 0
        if recycle is not None:
            U, C, S, HS, n_pair = self._pair(matvec, recycle, b)
        # The snapshots only improve the start (the best combination of the last
        # solutions); the iterations deflate the Ritz space alone, whose projections are
        # what an iteration pays for on top of its operator application.
        augment = None
        if S is not None:
            augment = extend_pair(U, C, S, HS)
            augment = None if augment[0] is None else augment
        x, n_iter, n_matvec, res, converged, lanczos = _minres(
            matvec, b, x, U, C, tol, max_iter, keep_basis, augment)
        paired = None
        if keep_basis:
            if n_iter == 0:  # nothing new learned: keep the deflated space
                paired = None if U is None else RecycleSpace(U, C)
            else:
                paired = next_recycle_space(U, C, lanczos, self.recycle_dim, self.ritz)
            if self.n_snapshots:
                # H x for the snapshot's pairing: one operator application per solve. It also
                # gives the true residual: a space paired by a caller's update that drifted
                # off H U shows here, and the solve is finished without it.
                Hx = matvec(x)
                n_matvec += 1
                deflated = C is not None or augment is not None
                if deflated and float(torch.linalg.vector_norm(b - Hx)) > 100 * tol:
                    x, extra, extra_mv, res, converged, _ = _minres(
                        matvec, b, x, None, None, tol, max_iter, False)
                    n_iter, n_matvec = n_iter + extra, n_matvec + extra_mv
                    Hx = matvec(x)
                    n_matvec += 1
                    paired, S, HS = None, None, None  # nothing of the old space is trusted
                S = x[:, None] if S is None else torch.cat([x[:, None], S], 1)
                HS = Hx[:, None] if HS is None else torch.cat([Hx[:, None], HS], 1)
                S, HS = S[:, :self.n_snapshots], HS[:, :self.n_snapshots]
                empty = x.new_zeros(x.shape[0], 0)
                paired = RecycleSpace(empty, empty) if paired is None else paired
                paired = replace(paired, S=S, HS=HS)
        unpaired = None if paired is None else paired.unpaired()
        return x, LinearSolveInfo(n_iter, n_matvec + n_pair, res, converged, unpaired, paired)

    def _pair(self, matvec, recycle, b):
        """``(U, C, S, HS, n_matvec)``: the recycle space paired with this operator."""
        S = None if recycle.S is None else recycle.S.to(b)
        if recycle.C is not None:  # paired with this operator already
            HS = None if S is None else recycle.HS.to(b)
            return recycle.U.to(b), recycle.C.to(b), S, HS, 0
        U, C, n_pair = pair_with_operator(matvec, recycle.U, b)
        HS = None
        if S is not None:
            HS = torch.stack([matvec(S[:, j]) for j in range(S.shape[1])], dim=1)
            n_pair += S.shape[1]
        return U, C, S, HS, n_pair

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None):
        """Solve ``H x = b`` (see :meth:`LinearSolver.__call__`; ``recycle`` is ignored)."""
        return self._solve(matvec, b, x0, None, keep_basis=False)


class RecycledMINRES(MINRES):
    """MINRES with a recycled subspace, for sequences of slowly changing systems (RMINRES).

    Parameters
    ----------
    recycle_dim : int, default=20
        Number of vectors ``k`` kept for the next system.
    ritz : {"harmonic", "plain"}, default="harmonic"
        How the next space is extracted from ``[U, V]``: harmonic Ritz vectors (better for
        eigenvalues near zero) or plain Ritz vectors; both keep the ``k`` of smallest
        magnitude and cost no operator application.
    n_snapshots : int, default=0
        Number of the latest solutions also carried in the space (``RecycleSpace.S``) and
        deflated with it. Along a path of slowly moving systems the solutions span a
        low-dimensional family, so the projection onto them already solves most of the
        next system. Each solve spends one operator application on ``H x`` for its
        snapshot; pairing the snapshots with a *new* operator costs one more each, unless
        the caller re-pairs them for free (a ridge Hessian moves by a known diagonal).
    rtol : float, default=1e-10
        Relative tolerance: stop when ``||r|| <= max(rtol * ||b||, atol)``.
    atol : float, default=0.0
        Absolute tolerance.
    max_iter : int or None, default=None
        Cap on Krylov iterations; None means ``2 * n``.

    Notes
    -----
    Each call pairs the incoming space with the current operator (``k`` operator
    applications, counted in ``n_matvec``), deflates it from the Krylov iteration, and
    returns the next space in ``info.recycle``; pass it as ``recycle=`` to the next call. The
    solver itself keeps no state. All Lanczos vectors of the solve are kept in memory to
    build the next space.

    References
    ----------
    S. Wang, E. de Sturler and G. H. Paulino, "Large-scale topology optimization using
    preconditioned Krylov subspace methods with recycling", IJNME 69 (2007).
    M. J. Ehrhardt, S. Gazzola and S. J. Scott, "Recycling Krylov subspaces for
    hypergradients", arXiv:2412.08264 (2024).
    """

    def __init__(self, recycle_dim: int = 20, ritz: str = "harmonic", n_snapshots: int = 0,
                 rtol: float = 1e-10, atol: float = 0.0, max_iter: Optional[int] = None):
        super().__init__(rtol=rtol, atol=atol, max_iter=max_iter)
        if isinstance(n_snapshots, bool) or not isinstance(n_snapshots, int) or n_snapshots < 0:
            raise ValueError(f"n_snapshots must be a non-negative integer, got {n_snapshots!r}")
        self.n_snapshots = n_snapshots
        if isinstance(recycle_dim, bool) or not isinstance(recycle_dim, int) or recycle_dim < 1:
            raise ValueError(f"recycle_dim must be a positive integer, got {recycle_dim!r}")
        if ritz not in _RITZ:
            raise ValueError(f"ritz must be one of {_RITZ}, got {ritz!r}")
        self.recycle_dim = recycle_dim
        self.ritz = ritz

    def __call__(self, matvec: Matvec, b: torch.Tensor, x0: Optional[torch.Tensor] = None,
                 recycle: Optional[RecycleSpace] = None):
        """Solve ``H x = b``, deflating ``recycle`` (None runs plain MINRES), and return
        the space for the next system in ``info.recycle`` (the incoming one unchanged if no
        Krylov iteration was needed); see :meth:`LinearSolver.__call__`."""
        return self._solve(matvec, b, x0, recycle, keep_basis=True)
