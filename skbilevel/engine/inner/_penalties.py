"""Proximable penalties whose strengths are (log-scale) hyperparameters.

Each penalty gives its ``value``, its ``prox`` (torch operations only, so autograd flows
through both ``z`` and ``theta``), the derivatives of the prox that forward-mode
differentiation propagates (``prox_jacobian``), and the ``support`` on which it is smooth.
All of them are separable, so ``d prox / d z`` is diagonal and comes back as a tensor of the
shape of ``z``; ``d prox / d theta`` comes back as a ``(z.numel(), n_hyper)`` matrix.
A ``smooth`` penalty (L2) also gives its ``grad``. Implicit differentiation on the support
uses the penalty's gradient there: its (diagonal) Hessian ``hessian_diag`` and
``cross_jacobian = d grad_w g / d theta``, ``(w.numel(), n_hyper)``, both valid where
``support(w)`` holds.

At a kink of the soft threshold (``|z_j| = tau``) the derivative takes the zero branch;
under strict complementarity the iterates never sit there once the support is identified.
"""

from __future__ import annotations

import torch

from .._capabilities import provides


def soft_threshold(z, tau):
    """``sign(z) max(|z| - tau, 0)``, written so that autograd sees both arguments."""
    return torch.sign(z) * torch.clamp(z.abs() - tau, min=0.0)


def _per_row(values, like):
    """One value per row of ``like`` (``(d,)`` -> ``(d, 1, ...)``), to broadcast over it."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


def _diagonal_columns(v, n_hyper):
    """``(d, k)`` per-feature derivatives -> ``(d k, d)``: row ``(j, c)`` only in column j."""
    eye = torch.eye(n_hyper, dtype=v.dtype, device=v.device)
    return (v.reshape(v.shape[0], -1)[:, :, None] * eye[:, None, :]).reshape(-1, n_hyper)


def penalty_cross_vjp(penalty, w, theta, v):
    """``(d grad_w g / d theta)^T v``, shape ``(n_hyper,)``: the penalty's own
    ``cross_vjp`` when it has one (per-feature penalties, whose Jacobian is diagonal),
    else through the dense ``cross_jacobian``."""
    if provides(penalty, "cross_vjp"):
        return penalty.cross_vjp(w, theta, v)
    return penalty.cross_jacobian(w, theta).t() @ v.reshape(-1)


class L1:
    """``alpha ||w||_1``, ``alpha = exp(theta[0])``: scikit-learn's ``Lasso(alpha)``."""

    n_hyper = 1
    smooth = False  # whether the penalty is differentiable (then L-BFGS may solve it)

    def value(self, w, theta):
        return torch.exp(theta[0]) * w.abs().sum()

    def prox(self, z, step, theta):
        return soft_threshold(z, step * torch.exp(theta[0]))

    def prox_jacobian(self, z, step, theta):
        tau = step * torch.exp(theta[0])
        active = (z.abs() > tau).to(z.dtype)
        # d tau / d theta = tau (log scale); the prox moves by -sign(z) d tau where active.
        return active, (-tau * torch.sign(z) * active).reshape(-1, 1)

    def hessian_diag(self, w, theta):
        return torch.zeros_like(w)

    def cross_jacobian(self, w, theta):
        return (torch.exp(theta[0]) * torch.sign(w)).reshape(-1, 1)

    def support(self, w):
        return w != 0

    def enet_form(self, theta):
        """``(alpha, l1_ratio, feature_scale)`` of scikit-learn's ``ElasticNet`` form."""
        return float(torch.exp(theta[0])), 1.0, None


class WeightedL1:
    """``sum_j exp(theta_j) |w_j|``: one Lasso penalty per feature.

    Parameters
    ----------
    n_features : int
        Number of penalised rows, one hyperparameter each.
    """

    smooth = False

    def __init__(self, n_features):
        self.n_hyper = n_features

    def value(self, w, theta):
        return (_per_row(torch.exp(theta), w) * w.abs()).sum()

    def prox(self, z, step, theta):
        return soft_threshold(z, step * _per_row(torch.exp(theta), z))

    def prox_jacobian(self, z, step, theta):
        tau = step * _per_row(torch.exp(theta), z)
        active = (z.abs() > tau).to(z.dtype)
        return active, _diagonal_columns(-tau * torch.sign(z) * active, self.n_hyper)

    def hessian_diag(self, w, theta):
        return torch.zeros_like(w)

    def cross_jacobian(self, w, theta):
        return _diagonal_columns(_per_row(torch.exp(theta), w) * torch.sign(w), self.n_hyper)

    def cross_vjp(self, w, theta, v):
        """``cross_jacobian(w, theta)^T v`` without the ``(d, d)`` matrix."""
        return (_per_row(torch.exp(theta), w) * torch.sign(w) * v).reshape(w.shape[0], -1).sum(1)

    def support(self, w):
        return w != 0

    def enet_form(self, theta):
        """``alpha_j = alpha c_j``: a Lasso at ``alpha`` on the columns ``X_j / c_j``."""
        weights = torch.exp(theta.detach())
        alpha = float(weights.mean())
        return alpha, 1.0, weights / alpha


class ElasticNet:
    """``alpha rho ||w||_1 + alpha (1 - rho) / 2 ||w||^2``: scikit-learn's ``ElasticNet``.

    ``theta = [log alpha, logit rho]`` by default: the logit keeps ``rho`` (``l1_ratio``) in
    (0, 1) for an unconstrained outer optimizer. ``scale="linear"`` makes it
    ``theta = [log alpha, rho]`` for a box-constrained one (``rho`` in [0, 1], ends
    included); a fixed ``l1_ratio`` leaves ``theta = [log alpha]``. The prox is the soft
    threshold at ``s alpha rho`` divided by ``1 + s alpha (1 - rho)``.

    Parameters
    ----------
    l1_ratio : float or None, default=None
        None: ``rho`` is the hyperparameter ``theta[1]``; a float in [0, 1]: ``rho`` fixed.
    scale : {"logit", "linear"}, default="logit"
        How ``theta[1]`` gives a tuned ``rho``.
    """

    smooth = False

    def __init__(self, l1_ratio=None, scale="logit"):
        if scale not in ("logit", "linear"):
            raise ValueError(f"scale must be 'logit' or 'linear', got {scale!r}")
        if l1_ratio is not None and not 0 <= l1_ratio <= 1:
            raise ValueError(f"l1_ratio must be in [0, 1] or None, got {l1_ratio!r}")
        self.l1_ratio, self.scale = l1_ratio, scale
        self.n_hyper = 2 if l1_ratio is None else 1

    def split(self, theta):
        """``(alpha, rho)`` at ``theta``."""
        alpha = torch.exp(theta[0])
        if self.l1_ratio is not None:
            return alpha, torch.as_tensor(float(self.l1_ratio), dtype=theta.dtype,
                                          device=theta.device)
        return alpha, (theta[1] if self.scale == "linear" else torch.sigmoid(theta[1]))

    def _times_drho(self, x, rho):
        """``x * d rho / d theta[1]`` (as ``x * rho * (1 - rho)`` under the logit)."""
        return x if self.scale == "linear" else x * rho * (1 - rho)

    def _columns(self, d0, d1):
        """The ``(numel, n_hyper)`` derivative matrix from its columns."""
        cols = [d0.reshape(-1)] if d1 is None else [d0.reshape(-1), d1.reshape(-1)]
        return torch.stack(cols, dim=1)

    def value(self, w, theta):
        alpha, rho = self.split(theta)
        return alpha * rho * w.abs().sum() + 0.5 * alpha * (1 - rho) * (w ** 2).sum()

    def prox(self, z, step, theta):
        alpha, rho = self.split(theta)
        return soft_threshold(z, step * alpha * rho) / (1 + step * alpha * (1 - rho))

    def prox_jacobian(self, z, step, theta):
        alpha, rho = self.split(theta)
        tau, c = step * alpha * rho, 1 + step * alpha * (1 - rho)
        active = (z.abs() > tau).to(z.dtype)
        st = soft_threshold(z, tau)
        # prox = st(z, tau) / c: d/dtau = -sign(z) active / c, d/dc = -st / c^2, with
        # dtau/dtheta = (tau, s alpha drho) and dc/dtheta = (c - 1, -s alpha drho).
        d_tau, d_c = -torch.sign(z) * active / c, -st / c ** 2
        d0 = d_tau * tau + d_c * (c - 1)
        d1 = None if self.l1_ratio is not None else (d_tau - d_c) * (step * alpha) \
            if self.scale == "linear" else (d_tau - d_c) * tau * (1 - rho)
        return active / c, self._columns(d0, d1)

    def hessian_diag(self, w, theta):
        alpha, rho = self.split(theta)
        return alpha * (1 - rho) * torch.ones_like(w)

    def cross_jacobian(self, w, theta):
        # grad = alpha rho sign(w) + alpha (1 - rho) w: d/dlog alpha is itself, and
        # d/dtheta[1] = alpha drho (sign(w) - w).
        alpha, rho = self.split(theta)
        grad = alpha * rho * torch.sign(w) + alpha * (1 - rho) * w
        d1 = self._times_drho(alpha, rho) * (torch.sign(w) - w) if self.l1_ratio is None \
            else None
        return self._columns(grad, d1)

    def support(self, w):
        return w != 0

    def enet_form(self, theta):
        alpha, rho = self.split(theta.detach())
        return float(alpha), float(rho), None


class L2:
    """``lambda / 2 ||w||^2`` with ``lambda = exp(theta[0])``, or one ``lambda_j`` per feature.

    The prox ``z / (1 + s lambda)`` is smooth, so the support is every coordinate. For
    ``LogisticRegression(C)`` with the mean weighted loss, ``lambda = 1 / (C S)``.

    Parameters
    ----------
    n_features : int or None
        None for one shared ``lambda``; otherwise one ``exp(theta_j)`` per penalised row.
    """

    smooth = True

    def __init__(self, n_features=None):
        self.per_feature = n_features is not None
        self.n_hyper = n_features if self.per_feature else 1

    def _strength(self, theta, like):
        return _per_row(torch.exp(theta), like) if self.per_feature else torch.exp(theta[0])

    def value(self, w, theta):
        return 0.5 * (self._strength(theta, w) * w ** 2).sum()

    def prox(self, z, step, theta):
        return z / (1 + step * self._strength(theta, z))

    def prox_jacobian(self, z, step, theta):
        shrink = step * self._strength(theta, z)
        d_theta = -z * shrink / (1 + shrink) ** 2  # d lambda / d theta = lambda
        scale = torch.ones_like(z) / (1 + shrink)
        if self.per_feature:
            return scale, _diagonal_columns(d_theta, self.n_hyper)
        return scale, d_theta.reshape(-1, 1)

    def grad(self, w, theta):
        """``lambda w``: the penalty is differentiable (``smooth``)."""
        return self._strength(theta, w) * w

    def hessian_diag(self, w, theta):
        return self._strength(theta, w) * torch.ones_like(w)

    def cross_jacobian(self, w, theta):
        grad = self._strength(theta, w) * w  # d lambda / d theta = lambda
        return _diagonal_columns(grad, self.n_hyper) if self.per_feature else grad.reshape(-1, 1)

    def cross_vjp(self, w, theta, v):
        """``cross_jacobian(w, theta)^T v`` without the ``(d, d)`` matrix."""
        prod = self._strength(theta, w) * w * v
        return prod.reshape(w.shape[0], -1).sum(1) if self.per_feature else prod.sum()[None]

    def support(self, w):
        return torch.ones_like(w, dtype=torch.bool)


class Shifted:
    """``penalty`` at ``theta + shift``: a constant factor ``exp(shift)`` on its strength.

    scikit-learn's logistic regression penalises ``||w|| / C`` against the *sum* of the
    losses, so a fold with ``S`` training weight has the mean-loss penalty strength
    ``1 / (C S)``: with ``theta = -log C`` every fold uses ``Shifted(L2(), -log S)``, one
    ``C`` for all. Derivatives in ``theta`` are the penalty's (the shift is constant).

    Parameters
    ----------
    penalty : L1, WeightedL1 or L2
        A penalty whose strengths are ``exp(theta)``.
    shift : float
        Added to every entry of ``theta``.
    """

    def __init__(self, penalty, shift):
        self.penalty, self.shift = penalty, float(shift)
        self.n_hyper, self.smooth = penalty.n_hyper, penalty.smooth

    def value(self, w, theta):
        return self.penalty.value(w, theta + self.shift)

    def prox(self, z, step, theta):
        return self.penalty.prox(z, step, theta + self.shift)

    def grad(self, w, theta):
        return self.penalty.grad(w, theta + self.shift)

    def prox_jacobian(self, z, step, theta):
        return self.penalty.prox_jacobian(z, step, theta + self.shift)

    def hessian_diag(self, w, theta):
        return self.penalty.hessian_diag(w, theta + self.shift)

    def cross_jacobian(self, w, theta):
        return self.penalty.cross_jacobian(w, theta + self.shift)

    def cross_vjp(self, w, theta, v):
        return penalty_cross_vjp(self.penalty, w, theta + self.shift, v)

    def support(self, w):
        return self.penalty.support(w)
