"""Centred weighted moments of cross-validation folds, from one pass over the data.

A ridge fit depends on its training rows only through ``X_c^T S X_c``, ``X_c^T S y_c`` and
``y_c^T S y_c`` (plus the weighted means for the intercept). When every training fold is
the complement of its validation block (K-fold, repeated K-fold), its raw moments are the
totals minus the block's, so the K folds cost one ``n d^2`` pass together instead of
``(K - 1) n d^2``, and no training fold is ever copied. Centring is a rank-one correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass(frozen=True)
class RawMoments:
    """Uncentred weighted sums of a set of rows: ``s^T 1``, ``X^T s``, ``X^T S X``, ..."""

    weight: torch.Tensor  # sum_i s_i, 0-d
    x_sum: torch.Tensor  # X^T s, (d,)
    y_sum: torch.Tensor  # Y^T s, (k,)
    xx: torch.Tensor  # X^T S X, (d, d)
    xy: torch.Tensor  # X^T S Y, (d, k)
    yy: torch.Tensor  # sum_i s_i ||y_i||^2, 0-d

    @classmethod
    def of(cls, X, Y, sample_weight):
        """Moments of the rows of the (dense) tensors ``X``, ``Y`` weighted by ``s``."""
        sY = sample_weight[:, None] * Y
        return cls(sample_weight.sum(), X.t() @ sample_weight, sY.sum(0),
                   _weighted_syrk(X, sample_weight), X.t() @ sY, (sY * Y).sum())

    @classmethod
    def of_sparse(cls, X, Y, sample_weight, to_tensor):
        """Moments of the rows of a scipy sparse ``X`` (numpy ``Y``, ``s``), by sparse
        products: the same Gram as dense ``X`` holds, so the container of the data does
        not change the ridge path built on it."""
        sX = sp.csr_matrix(X.multiply(sample_weight[:, None]))
        sY = sample_weight[:, None] * Y
        xx = np.asarray((X.T @ sX).todense())
        return cls(*(to_tensor(np.asarray(a)) for a in (
            sample_weight.sum(), np.ravel(X.T @ sample_weight), sY.sum(0), xx, X.T @ sY,
            (sY * Y).sum())))

    def _combine(self, other, sign):
        return RawMoments(*(a + sign * b for a, b in zip(self._fields(), other._fields())))

    def _fields(self):
        return (self.weight, self.x_sum, self.y_sum, self.xx, self.xy, self.yy)

    def __add__(self, other):
        return self._combine(other, 1.0)

    def __sub__(self, other):
        return self._combine(other, -1.0)

    def centred(self, fit_intercept):
        """Keyword arguments of :meth:`RidgeProblem.from_moments` for these rows."""
        if not fit_intercept:
            return dict(gram=_symmetric(self.xx), xty=self.xy, yty=self.yy,
                        weight_sum=self.weight)
        x_mean, y_mean = self.x_sum / self.weight, self.y_sum / self.weight
        return dict(gram=_symmetric(self.xx - torch.outer(self.x_sum, x_mean)),
                    xty=self.xy - torch.outer(self.x_sum, y_mean),
                    yty=self.yy - (self.y_sum * y_mean).sum(), weight_sum=self.weight,
                    x_mean=x_mean, y_mean=y_mean)


def _symmetric(A):
    return 0.5 * (A + A.t())


def _weighted_syrk(X, sample_weight):
    """``X^T diag(s) X`` as a symmetric rank-k update.

    On the CPU numpy's ``A.T @ A`` dispatches to BLAS ``syrk``, which does half the flops of
    the general product torch calls; on a GPU the device's own product wins.
    """
    Xs = X * sample_weight.sqrt()[:, None]
    if Xs.device.type != "cpu":
        return Xs.t() @ Xs
    a = Xs.numpy()
    return torch.from_numpy(a.T @ a)


def fold_moments(X, Y, sample_weight, splits, to_tensor):
    """Raw moments of every training fold and of all the rows, or ``(None, None)``.

    Parameters
    ----------
    X, Y, sample_weight : ndarray
        Training data (``Y`` 2-D, ``X`` dense or scipy sparse); ``splits`` index their
        rows.
    splits : list of (train, validation) index arrays
    to_tensor : callable
        numpy -> tensor of the engine's dtype and device.

    Returns
    -------
    folds : list of RawMoments or None
        One per split, None unless every training fold complements its validation block.
    total : RawMoments or None
        Moments of all the rows (the refit's).
    """
    n = X.shape[0]
    if any(len(tr) + len(va) != n or len(np.union1d(tr, va)) != n for tr, va in splits):
        return None, None

    def moments(rows):
        if sp.issparse(X):
            return RawMoments.of_sparse(X[rows], Y[rows], sample_weight[rows], to_tensor)
        return RawMoments.of(to_tensor(X[rows]), to_tensor(Y[rows]),
                             to_tensor(sample_weight[rows]))

    blocks = [moments(va) for _, va in splits]
    validation_rows = np.concatenate([va for _, va in splits])
    if len(validation_rows) == n and np.unique(validation_rows).size == n:  # a partition
        total = blocks[0]
        for block in blocks[1:]:
            total = total + block
    else:
        total = moments(slice(None))
    return [total - block for block in blocks], total
