"""A data matrix as a linear operator, with optional implicit centring.

Centring a sparse matrix would densify it, so the centred design ``X - 1 mu^T`` is applied
as ``X v - 1 (mu . v)`` instead of being formed. Dense and ``torch.sparse_csr`` matrices go
through the same two products; on the CPU a sparse matrix's products run on a scipy view of
its arrays and a scipy-built transpose (see :class:`LinearDesign`). The helpers below are
the one place where missing sample weights default to ones and where an intercept is
eliminated by weighted centring.

"""

from __future__ import annotations

import contextlib
from typing import Optional

import numpy as np
import scipy.sparse as sp
import torch

from .._torch import quiet_sparse_beta


class LinearDesign:
    """The operator ``X_c = X - 1 mu^T`` for a dense or sparse CSR ``X``.

    Parameters
    ----------
    X : torch.Tensor
        Dense ``(n, d)`` tensor or ``torch.sparse_csr`` tensor.
    offset : torch.Tensor or None
        Row offset ``mu`` of shape ``(d,)`` subtracted from every row; None for no centring.
    """

    def __init__(self, X: torch.Tensor, offset: Optional[torch.Tensor] = None):
        if X.dim() != 2:
            raise ValueError(f"X must be 2-D, got shape {tuple(X.shape)}")
        self.X = X
        self.offset = offset
        self.in_low_precision = False
        self._X32 = None  # the float32 copy of low_precision(), made on first use
        self.is_sparse = X.layout != torch.strided
        # On the CPU, products of a sparse X go through scipy: a view of the CSR arrays and
        # its transpose built once by scipy (torch's CSR transpose took 0.2 s where scipy's
        # takes 0.01 s at 40,000 x 20,000 with 800,000 entries, and torch's CSR product
        # with a vector 1.5-2x scipy's). Autograd through them stays on torch's kernels.
        self._scipy = scipy_csr_pair(X) if self.is_sparse else None
        self._XT_torch = None if self.is_sparse else X.t()

    @property
    def shape(self):
        return tuple(self.X.shape)

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def device(self):
        return self.X.device

    @contextlib.contextmanager
    def low_precision(self):
        """Within the block, products of a dense float64 ``X`` run in float32 (on a copy of
        ``X`` made at the first use and kept) and return float64.

        For products whose consumer tolerates relative errors of about ``1e-6``: solves to
        a loose tolerance, Krylov solves to ``1e-3``. A few-column product then costs half
        (50,000 x 1,000 by 5 columns: 35 ms and 30 ms for ``X V`` and ``X^T U`` against 60
        and 57; ``benchmarks/results/measurements.md``). Sparse or float32 designs run as
        they are."""
        previous, self.in_low_precision = self.in_low_precision, True
        try:
            yield self
        finally:
            self.in_low_precision = previous

    def _operands(self, v):
        """``(X, v)`` in the precision the products currently run in."""
        if not self.in_low_precision or self.X.dtype != torch.float64:
            return self.X, v
        if self._X32 is None:
            self._X32 = self.X.to(torch.float32)
        return self._X32, v.to(torch.float32)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Return ``X_c @ v`` for ``v`` of shape ``(d,)`` or ``(d, k)``."""
        if self.is_sparse:
            out = self._sparse(v, transpose=False)
        else:
            X, v_ = self._operands(v)
            if v.dim() == 2 and v.shape[1] > 1 and X.numel() >= _SKINNY_MIN:
                # A few columns at once (classes, folds, Krylov blocks): with v column-major
                # the BLAS streams X once (40,000 x 1,000 by 5 columns: 48 ms, 69 ms
                # row-major).
                out = X @ v_.t().contiguous().t()
            else:
                out = X @ v_
            out = out.to(v.dtype)
        if self.offset is not None:
            out = out - self.offset @ v
        return out

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """Return ``X_c^T @ u`` for ``u`` of shape ``(n,)`` or ``(n, k)``."""
        if self.is_sparse:
            out = self._sparse(u, transpose=True)
        else:
            X, u_ = self._operands(u)
            if u.dim() == 2 and u.shape[1] > 1 and X.numel() >= _SKINNY_MIN:
                out = _skinny_rmatmul(X, u_)
            else:
                out = (self._XT_torch if X is self.X else X.t()) @ u_
            out = out.to(u.dtype)
        if self.offset is not None:
            out = out - torch.outer(self.offset, u.sum(0)) if u.dim() == 2 \
                else out - self.offset * u.sum()
        return out

    @property
    def _XT(self) -> torch.Tensor:
        """``X^T`` as a torch tensor (CSR for sparse ``X``), built on first use."""
        if self._XT_torch is None:
            with quiet_sparse_beta():
                self._XT_torch = self.X.t().to_sparse_csr()
        return self._XT_torch

    def _sparse(self, v: torch.Tensor, transpose: bool) -> torch.Tensor:
        """``X @ v`` (``X^T @ v`` when ``transpose``) for sparse ``X``: scipy's kernel on
        the CPU when no gradient flows through ``v``, torch's otherwise."""
        if self._scipy is not None and v.device.type == "cpu" and v.dtype == self.X.dtype \
                and not (v.requires_grad and torch.is_grad_enabled()):
            A = self._scipy[1 if transpose else 0]
            return torch.from_numpy(np.asarray(A @ v.detach().numpy()))
        return _spmm(self._XT if transpose else self.X, v)

    def column_rms(self, weights: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """``sqrt(sum_i w_i x_ij^2 / sum_i w_i)`` of every column of ``X`` (uncentred), in
        blocks of ``chunk`` rows: no copy of ``X``, and each block's squares stay in cache
        (blocks of 4096 rows were measured twice as slow; benchmarks/results/measurements.md)."""
        if self.is_sparse:
            X = self.X.to_sparse_coo().coalesce()
            rows, cols = X.indices()
            sq = weights[rows] * X.values() ** 2
            total = torch.zeros(X.shape[1], dtype=sq.dtype, device=sq.device) \
                .index_add_(0, cols, sq)
        else:
            total = sum(weights[i:i + chunk] @ self.X[i:i + chunk] ** 2
                        for i in range(0, self.X.shape[0], chunk))
        return torch.sqrt(total / weights.sum())

    def weighted_gram(self, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Return the dense ``X_c^T diag(weights) X_c`` of shape ``(d, d)``."""
        X = self.X.to_dense() if self.is_sparse else self.X
        Xw = X if weights is None else X * weights[:, None]
        gram = X.t() @ Xw
        if self.offset is not None:
            # (X - 1 mu^T)^T S (X - 1 mu^T) expanded, so X is never centred in place.
            sw = X.new_tensor(X.shape[0]) if weights is None else weights.sum()
            xs = Xw.sum(0)
            gram = gram - torch.outer(self.offset, xs) - torch.outer(xs, self.offset) \
                + sw * torch.outer(self.offset, self.offset)
        return 0.5 * (gram + gram.t())


# Designs from this many entries take the few-column products above (below it the
# layouts cost the same and the copies of v add microseconds).
_SKINNY_MIN = 100_000


def _skinny_rmatmul(X, u):
    """``X^T u`` for a row-major ``X`` and a few columns ``u``, as ``(u^T X)^T``.

    MKL's transposed product with a few columns is 5-7x slower than its row-major
    one here (40,000 x 1,000 by 5 columns: 359 ms against 76 ms), and numpy's BLAS is
    faster still (49 ms); torch's own product when autograd or a device needs it.
    """
    if X.device.type == "cpu" and u.dtype == X.dtype and \
            not (torch.is_grad_enabled() and (u.requires_grad or X.requires_grad)):
        return torch.from_numpy(u.detach().t().numpy() @ X.detach().numpy()).t()
    return (u.t() @ X).t()


def weights_or_ones(sample_weight: Optional[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """``sample_weight``, or ones (one per row of ``X``, its dtype and device) when None."""
    if sample_weight is not None:
        return sample_weight
    return torch.ones(X.shape[0], dtype=X.dtype, device=X.device)


def centred_design(X, y, sample_weight=None, fit_intercept=True):
    """Eliminate an unpenalised intercept by centring with the weighted means.

    The way scikit-learn fits ``Ridge`` / ``Lasso`` intercepts: ``X`` and ``y`` are centred
    with ``x_mean = X^T s / S`` and ``y_mean = y^T s / S`` (``S = sum_i s_i``), ``X``
    implicitly (a :class:`LinearDesign` offset, so a sparse ``X`` stays sparse), and the
    intercept is recovered afterwards as ``y_mean - x_mean^T w``.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR design.
    y : torch.Tensor
        ``(n, k)`` targets.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights; None for ones.
    fit_intercept : bool
        Whether to centre; otherwise ``x_mean`` is None and ``y_mean`` zeros.

    Returns
    -------
    design : LinearDesign
        ``X - 1 x_mean^T`` (``X`` itself without intercept).
    y_centred : torch.Tensor
        ``y - y_mean``, shape ``(n, k)``.
    x_mean : torch.Tensor or None
        ``(d,)`` weighted column means.
    y_mean : torch.Tensor
        ``(k,)`` weighted target means.
    """
    design = LinearDesign(X)  # one design (one transpose of a sparse X), centred below
    if fit_intercept:
        sw = weights_or_ones(sample_weight, X)
        total = sw.sum()
        x_mean = design.rmatvec(sw) / total
        y_mean = (sw[:, None] * y).sum(0) / total
    else:
        x_mean, y_mean = None, y.new_zeros(y.shape[1])
    design.offset = x_mean
    return design, y - y_mean, x_mean, y_mean


def scipy_csr_pair(X: torch.Tensor):
    """``(X, X^T)`` as scipy CSR matrices for a CPU ``torch.sparse_csr`` ``X`` (``X``
    sharing its values), or None off the CPU or for dtypes scipy does not multiply.

    ``X^T``'s transpose (``.T``) is ``X`` in CSC format, for column slices, without a copy.
    """
    if X.device.type != "cpu" or X.layout != torch.sparse_csr or \
            X.dtype not in (torch.float64, torch.float32):
        return None
    A = sp.csr_matrix((X.values().numpy(), X.col_indices().numpy(),
                       X.crow_indices().numpy()), shape=tuple(X.shape), copy=False)
    return A, A.T.tocsr()


def _spmm(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Sparse CSR times a vector or matrix.

    torch's CSR kernel for a 1-D right-hand side is ~30x slower than for an ``(n, 1)``
    matrix on CPU, so vectors go through the matrix kernel.
    """
    return (A @ v[:, None])[:, 0] if v.dim() == 1 else A @ v
