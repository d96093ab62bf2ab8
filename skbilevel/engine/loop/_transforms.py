"""Gradient transforms: what happens to hypergradients between the folds and the driver."""

from __future__ import annotations

import torch


class GradientTransform:
    """Maps hypergradients to hypergradients, e.g. clipping or calibrated noise.

    Subclasses implement :meth:`__call__`. With ``per_fold = True`` the transform receives
    the ``(n_folds, n_hyper)`` stack of fold hypergradients before they are averaged
    (per-fold clipping bounds each fold's influence), otherwise the averaged
    ``(n_hyper,)`` gradient.
    """

    per_fold = False

    def __call__(self, grad: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _Callable(GradientTransform):
    """A plain ``(grad, theta) -> grad`` function, applied to the averaged gradient."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, grad, theta):
        return self.fn(grad, theta)


def as_transform(transform) -> GradientTransform:
    """``transform`` as a :class:`GradientTransform` (plain callables act on the mean)."""
    if isinstance(transform, GradientTransform):
        return transform
    if not callable(transform):
        raise TypeError(f"transform must be a GradientTransform or a callable "
                        f"(grad, theta) -> grad, got {type(transform).__name__}")
    return _Callable(transform)


class ClipGradient(GradientTransform):
    """Scale each gradient down to Euclidean norm at most ``max_norm`` (deterministic).

    Parameters
    ----------
    max_norm : float
        The bound on the norm.
    per_fold : bool
        Clip each fold's hypergradient before the mean (bounds every fold's influence on
        the step) instead of the mean.
    """

    def __init__(self, max_norm: float, per_fold: bool = False):
        if not max_norm > 0:
            raise ValueError(f"max_norm must be > 0, got {max_norm!r}")
        self.max_norm, self.per_fold = float(max_norm), per_fold

    def __call__(self, grad, theta):
        norm = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
        return grad * torch.clamp(self.max_norm / norm.clamp_min(1e-300), max=1.0)
