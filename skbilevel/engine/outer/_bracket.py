"""One hyperparameter: a bracketing search on values and derivatives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SAFEGUARD = 0.05  # a bracketed trial keeps this fraction of the bracket from either end
_EXTRAPOLATE = 4.0  # an unbracketed step grows at most this factor over the last one


@dataclass
class OptimizeOutcome:
    """Where an outer optimizer stopped and why."""

    theta: np.ndarray
    n_iter: int
    converged: bool
    message: str


def hermite_minimizer(a, fa, ga, b, fb, gb):
    """Minimiser of the cubic with values ``fa, fb`` and slopes ``ga, gb`` at ``a, b``
    (Nocedal & Wright, eq. 3.59), or None when the cubic has no local minimum."""
    d1 = ga + gb - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - ga * gb
    if not np.isfinite(disc) or disc < 0:
        return None
    d2 = np.sign(b - a) * np.sqrt(disc)
    denom = gb - ga + 2.0 * d2
    if denom == 0:
        return None
    t = b - (b - a) * (gb + d2 - d1) / denom
    return float(t) if np.isfinite(t) else None


def hermite_value(a, fa, ga, b, fb, gb, t):
    """Value at ``t`` of the cubic with values ``fa, fb`` and slopes ``ga, gb`` at ``a, b``."""
    h = b - a
    s = (t - a) / h
    h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
    h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
    return h00 * fa + h10 * h * ga + h01 * fb + h11 * h * gb


class Bracket:
    """Minimise a smooth function of one variable from values and derivatives.

    The CV curve of one penalty is unimodal in ``log alpha`` in practice, and a hypergradient
    says on which side of a point its minimum lies. From the best point evaluated, the
    minimum lies between it and the nearest evaluated point in the downhill direction (or
    the bound): each trial is the minimiser of the cubic that matches the values and slopes
    at these two ends (kept a fraction inside them, so the bracket shrinks at least
    geometrically), or, before a bracket exists, a step downhill that grows by the cubic's
    extrapolation, at most fourfold. A quasi-Newton method in one dimension spends
    evaluations on line-search safeguards this search does not need: three to five
    evaluations from a grid point where L-BFGS-B needs six to eight.

    Parameters
    ----------
    max_iter : int
        Maximum number of evaluations.
    tol : float
        Stop when the decrease still to be had is below ``tol``: ``|g| * width`` bounds it
        for a convex curve (slope ``g`` at the best point, ``width`` of the bracket), the
        cubic model of the bracket predicts it. The orchestrator normalises the objective
        by its starting value, so this is relative.
    first_step : float or None
        Length of the first, unbracketed step; None: one unit of ``theta`` (a factor
        ``e`` in ``alpha``).
    """

    def __init__(self, max_iter=100, tol=1e-6, first_step=None):
        self.max_iter, self.tol, self.first_step = int(max_iter), float(tol), first_step

    def run(self, fun, theta0, bounds=None) -> OptimizeOutcome:
        theta0 = np.asarray(theta0, dtype=float)
        if theta0.size != 1:
            raise ValueError(f"Bracket optimises one hyperparameter, got {theta0.size}")
        low, high = (-np.inf, np.inf) if bounds is None else \
            (float(np.ravel(bounds[0])[0]), float(np.ravel(bounds[1])[0]))
        points = []  # (t, f, g) of every evaluation

        def evaluate(t):
            value, grad = fun(np.full(theta0.shape, t))
            points.append((t, float(value), float(np.ravel(grad)[0])))

        def outcome(converged, message):
            t = min(points, key=lambda p: p[1] if np.isfinite(p[1]) else np.inf)[0]
            return OptimizeOutcome(np.full(theta0.shape, t), len(points), converged, message)

        if self.max_iter < 1:
            return OptimizeOutcome(theta0.copy(), 0, False, "max_iter is 0")
        evaluate(float(np.clip(theta0.ravel()[0], low, high)))
        while len(points) < self.max_iter:
            t_best, f_best, g_best = min(points, key=lambda p: p[1] if np.isfinite(p[1])
                                         else np.inf)
            if not np.isfinite(f_best) or not np.isfinite(g_best):
                return outcome(False, "non-finite objective or gradient")
            if g_best == 0:
                return outcome(True, "zero gradient")
            downhill = -np.sign(g_best)
            ahead = [p for p in points if (p[0] - t_best) * downhill > 0]
            end = high if downhill > 0 else low
            far = min(ahead, key=lambda p: abs(p[0] - t_best)) if ahead else None
            width = abs((far[0] if far else end) - t_best)
            if width == 0:
                return outcome(True, "minimum at the bound")
            if abs(g_best) * width <= self.tol:
                return outcome(True, "the bracket leaves less than tol to gain")
            if far is not None:
                t = hermite_minimizer(t_best, f_best, g_best, *far)
                if t is not None and f_best - hermite_value(t_best, f_best, g_best, *far,
                                                            t) <= self.tol:
                    return outcome(True, "the cubic model predicts less than tol to gain")
                lo, hi = sorted((t_best + _SAFEGUARD * (far[0] - t_best),
                                 far[0] - _SAFEGUARD * (far[0] - t_best)))
                t = 0.5 * (t_best + far[0]) if t is None else float(np.clip(t, lo, hi))
            else:
                t = self._extrapolate(points, t_best, f_best, g_best, downhill)
                t = float(np.clip(t, min(t_best, end), max(t_best, end)))
            evaluate(t)
        return outcome(False, "maximum evaluations reached")

    def _extrapolate(self, points, t_best, f_best, g_best, downhill):
        """A downhill trial from the best point when nothing brackets the minimum."""
        behind = [p for p in points if (p[0] - t_best) * downhill < 0]
        if not behind:
            return t_best + downhill * (self.first_step or 1.0)
        prev = min(behind, key=lambda p: abs(p[0] - t_best))
        last = abs(t_best - prev[0])
        t = hermite_minimizer(prev[0], prev[1], prev[2], t_best, f_best, g_best)
        if t is None or (t - t_best) * downhill <= 0:
            return t_best + downhill * _EXTRAPOLATE * last
        return t_best + downhill * min(abs(t - t_best), _EXTRAPOLATE * last)
