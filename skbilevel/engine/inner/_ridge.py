"""Weighted least squares with an L2 penalty whose strengths are hyperparameters."""

from __future__ import annotations

import copy
from functools import cached_property
from typing import Optional

import torch

from ._base import InnerProblem
from ._design import centred_design


class RidgeProblem(InnerProblem):
    """``min_W 1/2 sum_i s_i ||y_i - x_i^T W - b||^2 + 1/2 sum_j alpha_j ||W_j||^2``.

    The penalty strengths are ``alpha_j = exp(theta[groups[j]])``: one shared ``alpha``
    (``groups`` all zero), one per feature (``groups = arange(d)``), or one per group of
    features. With ``fit_intercept`` the unpenalised intercept is eliminated the way
    scikit-learn does it, by centring ``X`` and ``y`` with the weighted means (implicitly for
    sparse ``X``); :meth:`intercept` recovers it. Up to the factor 1/2 this is the objective of
    ``sklearn.linear_model.Ridge(alpha)``.

    Parameters
    ----------
    X : torch.Tensor
        ``(n, d)`` dense or sparse CSR training design.
    y : torch.Tensor
        ``(n, k)`` targets.
    sample_weight : torch.Tensor or None
        ``(n,)`` non-negative weights ``s_i``.
    groups : torch.Tensor or None
        ``(d,)`` long tensor mapping each feature to its entry of ``theta``; None for one
        shared ``alpha``.
    fit_intercept : bool
        Whether to fit an unpenalised intercept.
    gram : torch.Tensor or None
        Precomputed centred weighted Gram ``X_c^T S X_c`` (lets a caller share work across
        folds); computed on first use otherwise.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, sample_weight=None, groups=None,
                 fit_intercept: bool = True, gram: Optional[torch.Tensor] = None):
        n, d = X.shape
        self.sample_weight = sample_weight
        self.weight_sum = sample_weight.sum() if sample_weight is not None else \
            torch.tensor(float(n), dtype=X.dtype, device=X.device)
        self.groups = groups if groups is not None else torch.zeros(d, dtype=torch.long,
                                                                    device=X.device)
        self.n_hyper = int(self.groups.max()) + 1 if d else 1
        self.fit_intercept = fit_intercept
        self.design, self.y, self.x_mean, self.y_mean = centred_design(
            X, y, sample_weight, fit_intercept)
        self._gram = gram
        # X_c^T S y_c: the right-hand side of the normal equations, reused every solve.
        sy = self.y if sample_weight is None else sample_weight[:, None] * self.y
        self.xty = self.design.rmatvec(sy)
        self._yty = None

    @classmethod
    def from_moments(cls, gram, xty, yty, *, weight_sum, x_mean=None, y_mean=None,
                     groups=None):
        """The problem given only its centred weighted moments, without the data.

        ``gram = X_c^T S X_c``, ``xty = X_c^T S y_c`` and ``yty = sum_i s_i ||y_c,i||^2``
        determine the inner solution, its Hessian and the objective; ``weight_sum`` is
        ``sum_i s_i``; ``x_mean`` / ``y_mean`` (None without an intercept) give the
        intercept. Cross-validation builds every fold this way from block moments instead
        of copying the training rows.
        """
        self = cls.__new__(cls)
        d = gram.shape[0]
        self.sample_weight, self.design, self._gram, self._yty = None, None, gram, yty
        self.weight_sum = weight_sum
        self.groups = groups if groups is not None else torch.zeros(d, dtype=torch.long,
                                                                    device=gram.device)
        self.n_hyper = int(self.groups.max()) + 1 if d else 1
        self.fit_intercept = x_mean is not None
        self.x_mean = x_mean
        self.y_mean = y_mean if y_mean is not None else xty.new_zeros(xty.shape[1])
        self.xty = xty
        return self

    # -- hyperparameter map ------------------------------------------------------------
    def alpha(self, theta: torch.Tensor) -> torch.Tensor:
        """Per-feature penalty strengths ``exp(theta)[groups]``, shape ``(d,)``."""
        return torch.exp(theta)[self.groups]

    def regroup(self, groups: torch.Tensor) -> "RidgeProblem":
        """The same data with another map from features to hyperparameters.

        The copy shares the data and whatever Gram / eigendecomposition is already cached
        (neither depends on the grouping), so a one-alpha stage followed by a per-feature
        stage factorises each fold once.
        """
        new = copy.copy(self)
        new.groups = groups
        new.n_hyper = int(groups.max()) + 1 if groups.numel() else 1
        return new

    @property
    def shared_alpha(self) -> bool:
        return self.n_hyper == 1

    # -- data products -----------------------------------------------------------------
    @cached_property
    def gram(self) -> torch.Tensor:
        """Centred weighted Gram ``X_c^T S X_c`` (derived from the data, computed once)."""
        if self._gram is not None:
            return self._gram
        return self.design.weighted_gram(self.sample_weight)

    @cached_property
    def gram_eigh(self):
        """``(eigenvalues, eigenvectors)`` of the Gram, shared by every shared ``alpha``.

        With fewer samples than features the thin SVD of ``S^{1/2} X_c`` gives the same
        non-zero spectrum at ``O(n^2 d)`` instead of ``O(d^3)``.
        """
        n, d = self.design.shape if self.design is not None else (None, None)
        if self.design is not None and n < d and not self.design.is_sparse:
            X = self.design.X - (self.x_mean if self.x_mean is not None else 0.0)
            if self.sample_weight is not None:
                X = X * self.sample_weight.sqrt()[:, None]
            _, s, vt = torch.linalg.svd(X, full_matrices=False)
            return s ** 2, vt.t()
        evals, evecs = torch.linalg.eigh(self.gram)
        return evals.clamp_min(0.0), evecs

    def gram_matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``X_c^T S X_c v`` without forming the Gram (matrix-free path)."""
        if self.design is None:
            return self.gram @ v
        u = self.design.matvec(v)
        if self.sample_weight is not None:
            u = u * (self.sample_weight[:, None] if u.dim() == 2 else self.sample_weight)
        return self.design.rmatvec(u)

    # -- InnerProblem interface ----------------------------------------------------------
    def init_params(self) -> torch.Tensor:
        return self.xty.new_zeros(self.xty.shape)

    def objective(self, w, theta):
        return 0.5 * self.weighted_rss(w) + 0.5 * (self.alpha(theta)[:, None] * w ** 2).sum()

    def weighted_rss(self, w):
        """Weighted residual sum of squares ``sum_i s_i ||y_c,i - X_c,i^T w||^2``."""
        if self.design is None:  # expanded in the moments; rounding can dip below 0
            rss = self._yty - 2.0 * (w * self.xty).sum() + (w * (self.gram @ w)).sum()
            return rss.clamp_min(0.0)
        r = self.y - self.design.matvec(w)
        if self.sample_weight is not None:
            r = r * self.sample_weight.sqrt()[:, None]
        return (r ** 2).sum()

    def grad(self, w, theta):
        if not bool(w.any()):  # a Krylov solve's right-hand side: H 0 needs no products
            return -self.xty
        return self.hvp(w, theta, w) - self.xty

    def hvp(self, w, theta, v):
        alpha = self.alpha(theta)
        shift = alpha[:, None] * v if v.dim() == 2 else alpha * v
        return self.gram_matvec(v) + shift

    def hessian_shift(self, theta_old, theta_new):
        """``H(theta_new) - H(theta_old)``: the diagonal ``alpha_new - alpha_old``, ``(d, 1)``.

        Lets a Krylov solver re-pair a recycle space with the new Hessian for free.
        """
        return (self.alpha(theta_new) - self.alpha(theta_old))[:, None]

    def cross_vjp(self, w, theta, v):
        # d/dtheta_g of <alpha * w, v> = sum over features j in group g of alpha_j w_j v_j.
        per_feature = self.alpha(theta) * (w * v.reshape(w.shape)).sum(-1)
        return torch.zeros_like(theta).index_add_(0, self.groups, per_feature)

    def lipschitz(self, theta: torch.Tensor) -> float:
        """Largest eigenvalue of the Hessian (an upper bound for the step of GD solvers)."""
        return float(self.gram_eigh[0].max() + self.alpha(theta).max())

    def intercept(self, w: torch.Tensor) -> torch.Tensor:
        """Intercept that goes with ``w``: ``y_mean - x_mean^T w``."""
        if self.x_mean is None:
            return self.y_mean
        return self.y_mean - self.x_mean @ w
