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
