"""A data matrix as a linear operator, with optional implicit centring.

Centring a sparse matrix would densify it, so the centred design ``X - 1 mu^T`` is applied
as ``X v - 1 (mu . v)`` instead of being formed. Dense and ``torch.sparse_csr`` matrices go
through the same two products. The helpers below are the one place where missing sample
weights default to ones and where an intercept is eliminated by weighted centring.
"""

from __future__ import annotations

from typing import Optional

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
        self.is_sparse = X.layout != torch.strided
        # X^T as its own CSR matrix: transposed CSR products are slow or unsupported.
        if self.is_sparse:
            with quiet_sparse_beta():
                self._XT = X.t().to_sparse_csr()
        else:
            self._XT = X.t()

    @property
    def shape(self):
        return tuple(self.X.shape)

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def device(self):
        return self.X.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Return ``X_c @ v`` for ``v`` of shape ``(d,)`` or ``(d, k)``."""
        out = _spmm(self.X, v) if self.is_sparse else self.X @ v
        if self.offset is not None:
            out = out - self.offset @ v
        return out

    def rmatvec(self, u: torch.Tensor) -> torch.Tensor:
        """Return ``X_c^T @ u`` for ``u`` of shape ``(n,)`` or ``(n, k)``."""
        out = _spmm(self._XT, u) if self.is_sparse else self._XT @ u
        if self.offset is not None:
            out = out - torch.outer(self.offset, u.sum(0)) if u.dim() == 2 \
                else out - self.offset * u.sum()
        return out

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
    if fit_intercept:
        sw = weights_or_ones(sample_weight, X)
        total = sw.sum()
        x_mean = LinearDesign(X).rmatvec(sw) / total
        y_mean = (sw[:, None] * y).sum(0) / total
    else:
        x_mean, y_mean = None, y.new_zeros(y.shape[1])
    return LinearDesign(X, offset=x_mean), y - y_mean, x_mean, y_mean


def _spmm(A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Sparse CSR times a vector or matrix.

    torch's CSR kernel for a 1-D right-hand side is ~30x slower than for an ``(n, 1)``
    matrix on CPU, so vectors go through the matrix kernel.
    """
    return (A @ v[:, None])[:, 0] if v.dim() == 1 else A @ v
