"""Exact solves of quadratic inner problems by one factorisation."""

from __future__ import annotations

import torch

from .._capabilities import check
from .._results import InnerSolution
from ._solver import InnerSolver


class ClosedFormSolver(InnerSolver):
    """Solve ``(X_c^T S X_c + diag(alpha)) W = X_c^T S y`` exactly.

    With one shared ``alpha`` the eigendecomposition of the Gram (computed once per problem,
    i.e. once per fold) makes every later solve and every adjoint solve ``O(d^2)``: that is
    what makes the coarse safety grid and the outer iterations almost free. With one
    ``alpha`` per feature or group the shifted Gram is Cholesky-factorised per call, and the
    factor is handed on so implicit differentiation reuses it.

    Parameters
    ----------
    factorization : {"auto", "cholesky"}
        "auto" uses the eigendecomposition for a shared ``alpha``; "cholesky" always
        factorises the shifted Gram, cheaper for a single solve (a refit).

    Attributes
    ----------
    requires : tuple of str
        What the problem must provide (a :class:`~skbilevel.engine.inner.RidgeProblem`
        does); ``gram`` and ``gram_eigh`` are looked up without being computed.
    residual_kind : str
        ``"exact"``: ``residual`` is 0.
    """

    requires = ("gram", "gram_eigh", "xty", "alpha", "shared_alpha")
    residual_kind = "exact"

    def __init__(self, factorization="auto"):
        if factorization not in ("auto", "cholesky"):
            raise ValueError(f"factorization must be 'auto' or 'cholesky', got "
                             f"{factorization!r}")
        self.factorization = factorization

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Return the exact inner solution and a solver for its Hessian.

        Parameters
        ----------
        problem : RidgeProblem
            Needs ``gram``, ``gram_eigh``, ``xty`` and ``alpha``.
        theta : torch.Tensor
            Unconstrained hyperparameters.
        w0, recycle : ignored
            Exact solves need no warm start and no recycle space.
        """
        check(self, problem)
        if problem.shared_alpha and self.factorization == "auto":
            solve = _eigen_inverse(problem.gram_eigh, torch.exp(theta[0]))
        else:
            solve = _cholesky_inverse(problem.gram, problem.alpha(theta))
        return InnerSolution(w=solve(problem.xty), hessian_solve=solve,
                             residual_kind=self.residual_kind)


def _eigen_inverse(eigh, alpha):
    """``b -> (Q diag(lam) Q^T + alpha I)^{-1} b``, also for a thin ``Q`` (n < d)."""
    evals, Q = eigh
    inv = 1.0 / (evals + alpha)
    thin = Q.shape[1] < Q.shape[0]

    def solve(b):
        coef = Q.t() @ b
        out = Q @ (coef * (inv[:, None] if b.dim() == 2 else inv))
        if thin:  # the orthogonal complement of range(Q) only sees alpha I
            out = out + (b - Q @ coef) / alpha
        return out

    return solve


def _cholesky_inverse(gram, alpha):
    """``b -> (gram + diag(alpha))^{-1} b`` through one Cholesky factor."""
    H = gram + torch.diag(alpha)
    L, info = torch.linalg.cholesky_ex(H)
    if int(info) != 0:  # numerically semi-definite: a relative jitter restores definiteness
        jitter = 1e-10 * float(H.diagonal().abs().max())
        L = torch.linalg.cholesky(H + jitter * torch.eye(H.shape[0], dtype=H.dtype,
                                                         device=H.device))

    def solve(b):
        col = b if b.dim() == 2 else b[:, None]
        out = torch.cholesky_solve(col, L)
        return out if b.dim() == 2 else out[:, 0]

    return solve
