"""Deterministic estimates of the smoothness constant ``L`` (no randomness, no ARPACK).

HDM needs ``L`` only to set the scale of its learning rates, so an estimate of the right
order is enough; determinism matters more (the reference code's randomised ``svds`` made
its iteration counts vary by about 10% between identical runs).
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def power_iteration(matvec, like: torch.Tensor, n_iter: int = 30) -> float:
    """Deterministic estimate of the largest eigenvalue of a symmetric PSD operator.

    Runs ``n_iter`` power iterations from a fixed vector and returns ``||A v||`` for the
    last unit vector ``v``. For PSD ``A`` this never exceeds ``lambda_max`` and converges to
    it; a few tens of iterations give the right order of magnitude, which is all HDM needs
    (AdaGrad corrects the rest). The start is positive but not constant (``1 + frac(i phi)``)
    so that it is not orthogonal to the top eigenvector of structured operators (e.g. a graph
    Laplacian, whose top eigenvector is orthogonal to the constant vector).

    Parameters
    ----------
    matvec : callable
        ``v -> A v`` on tensors shaped like ``like``.
    like : torch.Tensor
        Gives the shape, dtype and device of the vectors.
    n_iter : int
        Number of products with ``A``.
    """
    idx = torch.arange(like.numel(), dtype=like.dtype, device=like.device)
    v = (1.0 + torch.remainder(idx * 0.6180339887498949, 1.0)).reshape(like.shape)
    v = v / torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(n_iter):
        u = matvec(v)
        norm = float(torch.linalg.vector_norm(u))
        if not (norm > 0 and math.isfinite(norm)):
            return lam if math.isfinite(lam) else 0.0
        lam, v = norm, u / norm
    return lam


def probe_smoothness(grad_fn, x: torch.Tensor, g: torch.Tensor,
                     rel_step: Optional[float] = None, project=None) -> float:
    """Smoothness estimate from one finite difference of the gradient along ``-g``.

    ``L ~ ||grad(x') - g|| / ||x' - x||`` with ``x' = x - h g / ||g||`` and
    ``h = rel_step * max(1, ||x||)``; ``rel_step`` defaults to the square root of the dtype's
    epsilon. The gradient is dominated by the high-curvature directions, so this is a fair
    (lower) estimate of ``L``; it costs one gradient evaluation and is deterministic.
    Returns 1.0 when ``g`` vanishes or the probe fails.

    Parameters
    ----------
    grad_fn : callable
        ``x -> gradient`` at ``x`` (anything else it returns is the caller's business).
    x, g : torch.Tensor
        Point and gradient there.
    rel_step : float or None
        Relative probe step.
    project : callable or None
        Maps the probe point into the feasible set.
    """
    g_norm = float(torch.linalg.vector_norm(g))
    if not (g_norm > 0 and math.isfinite(g_norm)):
        return 1.0
    if rel_step is None:
        rel_step = math.sqrt(torch.finfo(x.dtype).eps)
    h = rel_step * max(1.0, float(torch.linalg.vector_norm(x)))
    x_probe = x - (h / g_norm) * g
    if project is not None:
        x_probe = project(x_probe)
    dist = float(torch.linalg.vector_norm(x_probe - x))
    if dist == 0:
        return 1.0
    L = float(torch.linalg.vector_norm(grad_fn(x_probe) - g)) / dist
    return L if (L > 0 and math.isfinite(L)) else 1.0


def sample_smoothness(grad_fn, x: torch.Tensor, g: torch.Tensor, n_samples: int = 3,
                      radius: float = 1e-4, seed: int = 0, along_gradient: bool = False
                      ) -> float:
    """Smoothness estimate from a few finite differences of the gradient in random directions.

    ``L ~ max_k ||grad(x + h u_k) - g|| / h`` over ``n_samples`` random unit directions
    ``u_k`` (Gaussian, normalised; drawn from a generator seeded with ``seed``, so the
    estimate is deterministic) with ``h = max(radius, sqrt(eps)) * max(1, ||x||)``. This is
    OSGM-Best's start (three samples, radius ``1e-4``): it costs ``n_samples`` gradient
    evaluations instead of the products of a power iteration.

    On a quadratic with Hessian ``H`` each sample is exactly ``||H u||``, so the estimate
    never exceeds ``L = lambda_max(H)``; its square is in expectation at least
    ``||H||_F^2 / d >= L^2 / d`` per sample, and the maximum of three is rarely much below
    ``L / sqrt(d)`` (it is within a factor 2-3 of ``L`` when a few eigenvalues dominate
    or the spectrum is flat). HDM's learning rates only need its order of magnitude.
    Returns 1.0 when every sample fails (a non-finite or zero difference).

    Parameters
    ----------
    grad_fn : callable
        ``x -> gradient`` at ``x`` (anything else it returns is the caller's business).
    x, g : torch.Tensor
        Point and gradient there.
    n_samples : int
        Number of random directions (gradient evaluations).
    radius : float
        Relative length of the differences.
    seed : int
        Seed of the directions.
    along_gradient : bool
        Make the first direction ``-g / ||g||`` instead of a random one. The gradient is
        dominated by the stiff directions, so this sample is usually the largest (on an
        ill-conditioned quadratic, 0.7-0.9 ``L`` where random ones give 0.3-0.4 ``L``).
    """
    h = max(radius, math.sqrt(torch.finfo(x.dtype).eps)) * max(
        1.0, float(torch.linalg.vector_norm(x)))
    gen = torch.Generator().manual_seed(seed)
    L = 0.0
    for k in range(n_samples):
        if k == 0 and along_gradient and float(torch.linalg.vector_norm(g)) > 0:
            u = -g / torch.linalg.vector_norm(g)
        else:
            u = torch.randn(x.shape, generator=gen, dtype=torch.float64)
            u = (u / torch.linalg.vector_norm(u)).to(dtype=x.dtype, device=x.device)
        sample = float(torch.linalg.vector_norm(grad_fn(x + h * u) - g)) / h
        if math.isfinite(sample):
            L = max(L, sample)
    return L if L > 0 else 1.0
