"""Choosing the recycle space for the next system from the data of the current solve.

After ``m`` steps of recycled MINRES with a paired space (``C = H U``, ``C^T C = I``) the
matrices ``Z = [U, V_m]`` and ``W = [C, V_{m+1}]`` satisfy ``H Z = W G`` with

    G = [[I_k, B], [0, T_m]]        (T_m: the (m+1) x m Lanczos tridiagonal).

Since ``W`` has orthonormal columns, every quantity the Ritz problems need is small:
``(HZ)^T HZ = G^T G``, ``Z^T H Z = G^T (W^T Z)`` and ``W^T Z = [[C^T U, 0], [V_{m+1}^T U, I~]]``.
So the next space costs no operator application, only the products ``C^T U``, ``V^T U`` and
``U^T U``. The small eigenproblems are solved on CPU float64 copies with scipy.

Between solves the operator changes with ``theta``: :func:`tag_recycle_space` labels a paired
space with the ``theta`` of its operator, and :func:`repair_recycle_space` pairs it with the
next operator, for free when the Hessian moved by a known diagonal.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Callable, Optional

import numpy as np
import scipy.linalg
import torch

from ._info import RecycleSpace

try:  # optional: only used to keep the small dense problems single-threaded
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None

# Relative cut-off below which directions of the small problems count as rank deficient.
_RANK_TOL = 1e-10
_CONTROLLER = []  # the ThreadpoolController, built on first use


def _single_threaded_blas():
    """Context limiting BLAS to one thread, if threadpoolctl is installed.

    The small problems are dominated by the level-2 BLAS of the tridiagonal reduction in
    ``eigh``; on a busy machine (``pytest -n 2`` on two cores, or the caller's own threads)
    threaded OpenBLAS spins and was measured 10 to 30 times slower than one thread. The
    controller is built once: discovering the loaded libraries reads ``/proc`` and costs
    milliseconds, more than the small problems themselves.
    """
    if ThreadpoolController is None:  # pragma: no cover
        return contextlib.nullcontext()
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def _small_matrices(U, C, lanczos):
    """Return ``G``, ``W^T Z``, ``Z^T Z`` (float64 arrays) and ``V`` (n x (m+1) tensor)."""
    V = torch.stack(lanczos["V"], dim=1)
    alpha, beta = np.asarray(lanczos["alpha"]), np.asarray(lanczos["beta"])
    m = alpha.shape[0]
    k = 0 if U is None else U.shape[1]
    G = np.zeros((k + m + 1, k + m))
    WZ = np.zeros((k + m + 1, k + m))
    ZZ = np.eye(k + m)
    idx = np.arange(m)
    G[k + idx, k + idx] = alpha
    G[k + idx + 1, k + idx] = beta
    G[k + idx[:-1], k + idx[:-1] + 1] = beta[:-1]
    WZ[k + idx, k + idx] = 1.0
    if k:
        G[:k, :k] = np.eye(k)
        G[:k, k:] = _np(torch.stack(lanczos["B"], dim=1))
        VtU = _np(V.T @ U)
        WZ[:k, :k] = _np(C.T @ U)
        WZ[k:, :k] = VtU
        ZZ[:k, :k] = _np(U.T @ U)
        ZZ[:k, k:] = VtU[:m].T
        ZZ[k:, :k] = VtU[:m]
    return G, WZ, ZZ, V


def _harmonic(G, WZ, k):
    """Harmonic Ritz pairs, smallest ``|theta|`` first: ``G^T G y = theta Z^T H Z y``.

    Written as ``Z^T H Z y = mu G^T G y`` with ``mu = 1 / theta``, the problem is symmetric
    definite. With a thin QR ``G = Q R`` and ``y = R^{-1} z`` it becomes the standard
    symmetric problem ``(Q^T W^T Z) R^{-1} z = mu z``, without squaring the conditioning.
    ``G = [[D, B], [0, T]]`` with ``T`` tridiagonal, so ``Q = diag(I, Q_T)`` comes from ``m``
    Givens rotations in ``O(m (k + m))`` instead of a dense ``O((k + m)^3)`` QR.
    """
    R, P = G.copy(), WZ.copy()
    for j in range(k, G.shape[1]):
        a, b = R[j, j], R[j + 1, j]
        r = np.hypot(a, b)
        if r == 0.0:
            continue
        rot = np.array([[a, b], [-b, a]]) / r
        R[j:j + 2, j:] = rot @ R[j:j + 2, j:]
        P[j:j + 2] = rot @ P[j:j + 2]
    R, P = R[:-1], P[:-1]
    diag = np.abs(np.diag(R))
    if not diag.min() > _RANK_TOL * diag.max():
        return _harmonic_svd(G, WZ)
    M = scipy.linalg.solve_triangular(R, P.T, trans="T").T
    mu, Y = scipy.linalg.eigh(0.5 * (M + M.T))
    order = np.argsort(-np.abs(mu), kind="stable")
    return scipy.linalg.solve_triangular(R, Y[:, order])


def _harmonic_svd(G, WZ):
    """:func:`_harmonic` through a truncated SVD ``G = P S Q^T``, for rank-deficient ``G``.

    With ``y = Q S^{-1} z`` the problem becomes ``P^T (W^T Z) Q S^{-1} z = mu z``; the
    directions of ``G`` below the rank cut-off (where ``H Z y ~ 0``) are left out.
    """
    P, s, Qt = scipy.linalg.svd(G, full_matrices=False)
    keep = s > _RANK_TOL * s[0]
    P, s, Qt = P[:, keep], s[keep], Qt[keep]
    M = (P.T @ WZ @ Qt.T) / s
    mu, Y = scipy.linalg.eigh(0.5 * (M + M.T))
    order = np.argsort(-np.abs(mu), kind="stable")
    return Qt.T @ (Y[:, order] / s[:, None])


def _plain(G, WZ, ZZ):
    """Ritz pairs, smallest ``|theta|`` first: ``Z^T H Z y = theta Z^T Z y``.

    ``Z^T Z`` may be singular (``U`` can lie close to the Krylov space), so the problem is
    restricted to the well-conditioned eigen-directions of ``Z^T Z``.
    """
    if np.array_equal(ZZ, np.eye(ZZ.shape[0])):
        basis = ZZ  # no recycled block: Z = V_m is orthonormal already
    else:
        lam, E = scipy.linalg.eigh(ZZ)
        keep = lam > _RANK_TOL * lam[-1]
        basis = E[:, keep] / np.sqrt(lam[keep])
    S = WZ.T @ G
    theta, Y = scipy.linalg.eigh(basis.T @ (0.5 * (S + S.T)) @ basis)
    order = np.argsort(np.abs(theta), kind="stable")
    return basis @ Y[:, order]


def orthonormal_pair(U: torch.Tensor, C: torch.Tensor):
    """Given ``C = H U``, return ``(U R^{-1}, Q)`` from the thin QR ``C = Q R``.

    Columns whose image is numerically dependent on earlier ones are dropped; both are None
    when no usable direction is left.
    """
    if C.shape[1] > C.shape[0]:  # more vectors than unknowns (tiny systems): keep a basis
        U, C = U[:, :C.shape[0]], C[:, :C.shape[0]]
    Q, R = torch.linalg.qr(C)
    # Without pivoting, a tiny R_jj means column j of H U is (nearly) in the span of the
    # earlier ones: drop it, or U R^{-1} would blow up along it.
    diag = R.diagonal().abs()
    rank_tol = max(1e-10, 100 * torch.finfo(C.dtype).eps) * float(diag.max())
    keep = (diag > rank_tol).cpu()
    if not bool(keep.any()):
        return None, None
    if not bool(keep.all()):
        U, C = U[:, keep.to(U.device)], C[:, keep.to(U.device)]
        Q, R = torch.linalg.qr(C)
    return torch.linalg.solve_triangular(R, U, upper=True, left=False), Q


def extend_pair(U, C, S, HS):
    """Append ``S`` (with ``HS = H S``) to a paired space ``(U, C)``, ``C^T C = I``.

    Block Gram-Schmidt: ``HS`` is made orthogonal to ``C`` (and ``S`` follows with ``U``),
    then only the new block is orthonormalised, so the cost grows with ``s``, not with
    ``k + s``. Returns ``(U_all, C_all)``, or ``(U, C)`` when ``S`` adds nothing.
    """
    if U is None or U.shape[1] == 0:
        return orthonormal_pair(S, HS)
    coef = C.T @ HS
    S_new, HS_new = orthonormal_pair(S - U @ coef, HS - C @ coef)
    if S_new is None:
        return U, C
    return torch.cat([U, S_new], 1), torch.cat([C, HS_new], 1)


def next_recycle_space(U: Optional[torch.Tensor], C: Optional[torch.Tensor], lanczos: dict,
                       recycle_dim: int, ritz: str = "harmonic") -> Optional[RecycleSpace]:
    """Build the recycle space for the next system (no operator application).

    Parameters
    ----------
    U, C : torch.Tensor or None
        The paired space of the finished solve (``C = H U``, ``C^T C = I``), shape
        ``(n, k)``; None when the solve had no recycle space.
    lanczos : dict
        Lanczos data of the solve: ``"V"`` (list of the ``m + 1`` Lanczos vectors),
        ``"alpha"`` and ``"beta"`` (the ``m`` diagonal and sub-diagonal entries of the
        tridiagonal) and ``"B"`` (list of the ``m`` vectors ``C^T H v_j``).
    recycle_dim : int
        Maximum number of vectors to keep.
    ritz : {"harmonic", "plain"}, default="harmonic"
        Harmonic or plain Ritz extraction; harmonic falls back to plain if it fails.

    Returns
    -------
    RecycleSpace or None
        Orthonormal basis of the (approximate) eigenvectors of ``H`` for its eigenvalues of
        smallest magnitude in ``span([U, V_m])``, at most ``recycle_dim`` of them; None if
        the small problems are not finite.
    """
    if not lanczos["alpha"]:
        return None
    G, WZ, ZZ, V = _small_matrices(U, C, lanczos)
    if not (np.isfinite(G).all() and np.isfinite(WZ).all() and np.isfinite(ZZ).all()):
        return None
    # Unit columns of Z: the paired U = U_old R^{-1} can have columns far longer than the
    # Lanczos vectors, which would skew the rank cut-offs. Rescaling Z's columns leaves
    # both Ritz problems unchanged.
    scale = 1.0 / np.sqrt(np.maximum(np.diag(ZZ), np.finfo(float).tiny))
    G_unscaled = G
    G, WZ, ZZ = G * scale, WZ * scale, ZZ * scale[:, None] * scale
    k = 0 if U is None else U.shape[1]
    Y = None
    with _single_threaded_blas():
        for method in (("harmonic", "plain") if ritz == "harmonic" else ("plain",)):
            try:
                Y = _harmonic(G, WZ, k) if method == "harmonic" else _plain(G, WZ, ZZ)
                break
            except (np.linalg.LinAlgError, ValueError):
                continue
    if Y is None or Y.shape[1] == 0:
        return None
    Y = Y[:, :recycle_dim] * scale[:, None]
    Yt = torch.from_numpy(Y).to(device=V.device, dtype=V.dtype)
    m = Y.shape[0] - k
    U_next = V[:, :m] @ Yt[k:]
    # H U_next = H Z Y = W (G Y) with W = [C, V_{m+1}]: the pairing with this operator is
    # free, so a following solve with the same operator skips its k operator applications.
    GY = torch.from_numpy(G_unscaled @ Y).to(device=V.device, dtype=V.dtype)
    HU = V @ GY[k:]
    if k:
        U_next = U_next + U @ Yt[:k]
        HU = HU + C @ GY[:k]
    U_paired, C_paired = orthonormal_pair(U_next, HU)
    if U_paired is None:
        return None
    return RecycleSpace(U_paired, C_paired)


def tag_recycle_space(space: Optional[RecycleSpace], theta: torch.Tensor):
    """``space`` (paired with ``H(theta)``) labelled with ``theta`` for a later re-pairing.

    Parameters
    ----------
    space : RecycleSpace or None
        A space paired with the operator at ``theta``.
    theta : torch.Tensor
        The hyperparameters the operator was built at.

    Returns
    -------
    RecycleSpace or None
        A copy of ``space`` whose ``tag`` is a detached copy of ``theta``; None for None.
    """
    return None if space is None else replace(space, tag=theta.detach().clone())


def repair_recycle_space(space: RecycleSpace, theta: torch.Tensor, shape,
                         hessian_shift: Optional[Callable] = None) -> Optional[RecycleSpace]:
    """Pair a recycle space from ``H(theta_old)`` with ``H(theta)``, free when possible.

    When the caller knows how the Hessian moved (``hessian_shift(theta_old, theta)``: a
    diagonal ``D`` with ``H(theta) = H(theta_old) + diag(D)``, as for every L2 penalty
    ``exp(theta)``), ``H(theta) U = C + D U`` costs no operator application (float64 only);
    otherwise the space goes unpaired and the linear solver pairs it (``k`` applications).

    Parameters
    ----------
    space : RecycleSpace
        Paired with ``H(space.tag)`` (see :func:`tag_recycle_space`).
    theta : torch.Tensor
        The hyperparameters of the new operator.
    shape : tuple
        Shape of the unknowns (``D`` is broadcast to it, then flattened).
    hessian_shift : callable or None
        ``(theta_old, theta) -> D or None``, typically the inner problem's
        ``hessian_shift``; None when the problem cannot say.

    Returns
    -------
    RecycleSpace or None
        The space paired with ``H(theta)``, or unpaired, or None if no direction is left.
    """
    # Each update starts from the previous C, so rounding accumulates along the path: in
    # float32 the pairing drifts off H U within a few steps; pay the operator instead.
    if space.C is None or space.tag is None or hessian_shift is None \
            or space.U.dtype != torch.float64:
        return space.unpaired()
    diagonal = hessian_shift(space.tag, theta)
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
