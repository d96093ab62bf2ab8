"""The held-out mean squared error of held-out rows known only by their moments."""

from __future__ import annotations

import torch


class MomentMSE:
    """Weighted mean squared error of a linear model on rows given by their raw moments.

    The same value and gradient as :class:`HeldOutMSE` on those rows, without the rows:
    with the training fold's means ``m_x``, ``m_y`` as offsets, ``sum_i s_i ||(y_i - m_y)
    - (x_i - m_x)^T W||^2`` expands into the rows' weighted sums ``S = sum s_i``, ``X^T s``,
    ``Y^T s``, ``X^T S X``, ``X^T S Y`` and ``sum s_i ||y_i||^2``, which one pass over data
    too large for one machine computes block by block. The expansion loses the digits of
    the error's share of ``||y||^2`` (about ``eps / (1 - R^2)`` relative): negligible unless
    the fit is nearly exact.

    Parameters
    ----------
    weight : torch.Tensor
        ``S``, 0-d.
    x_sum, y_sum : torch.Tensor
        ``X^T s`` ``(d,)`` and ``Y^T s`` ``(k,)``.
    xx, xy : torch.Tensor
        ``X^T S X`` ``(d, d)`` and ``X^T S Y`` ``(d, k)``.
    yy : torch.Tensor
        ``sum_i s_i ||y_i||^2``, 0-d.
    x_offset, y_offset : torch.Tensor or None
        Training means of the fold (None when no intercept is fitted).
    """

    def __init__(self, weight, x_sum, y_sum, xx, xy, yy, x_offset=None, y_offset=None):
        mx = torch.zeros_like(x_sum) if x_offset is None else x_offset
        my = torch.zeros_like(y_sum) if y_offset is None else y_offset
        # Centred on the training means: sum_i s_i (x_i - mx)(x_i - mx)^T, and so on.
        outer = torch.outer
        self.xx = xx - outer(x_sum, mx) - outer(mx, x_sum) + weight * outer(mx, mx)
        self.xy = xy - outer(x_sum, my) - outer(mx, y_sum) + weight * outer(mx, my)
        self.yy = yy - 2.0 * (y_sum * my).sum() + weight * (my * my).sum()
        self.scale = 1.0 / (weight * y_sum.shape[0])  # mean over samples and targets

    @classmethod
    def for_problem(cls, problem, weight, x_sum, y_sum, xx, xy, yy):
        """Build the criterion that scores ``problem``'s solutions on the given rows."""
        return cls(weight, x_sum, y_sum, xx, xy, yy, x_offset=problem.x_mean,
                   y_offset=problem.y_mean)

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """The held-out MSE at ``w`` (clipped at 0: rounding can dip below)."""
        sse = self.yy - 2.0 * (w * self.xy).sum() + (w * (self.xx @ w)).sum()
        return self.scale * sse.clamp_min(0.0)

    def grad_w(self, w: torch.Tensor) -> torch.Tensor:
        """Gradient of :meth:`value` with respect to ``w``."""
        return -2.0 * self.scale * (self.xy - self.xx @ w)

    def grad_theta(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Explicit dependence on ``theta``: none for a held-out error."""
        return torch.zeros_like(theta)
