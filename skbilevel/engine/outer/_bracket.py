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


def _value_model_trial(best, ahead, behind):
    """``(trial, predicted gain)`` from the best point's value and slope and a known value
    ``ahead`` of it: the cubic that also passes through the point ``behind`` (a curve
    flat on one side of its minimum and steep on the other, as CV curves in ``log alpha``
    are, needs the third order), else the quadratic."""
    t_best, f_best, g_best = best
    h2, d2 = ahead[0] - t_best, ahead[1] - f_best - g_best * (ahead[0] - t_best)
    if behind is not None:
        h0, d0 = behind[0] - t_best, behind[1] - f_best - g_best * (behind[0] - t_best)
        # f_best + g_best u + c u^2 + d u^3 through both points (u = t - t_best)
        det = h0 ** 2 * h2 ** 3 - h2 ** 2 * h0 ** 3
        c = (d0 * h2 ** 3 - d2 * h0 ** 3) / det
        d = (h0 ** 2 * d2 - h2 ** 2 * d0) / det
        for u in np.roots([3 * d, 2 * c, g_best]):
            if np.isreal(u) and 0 < u.real / h2 < 1 and 2 * c + 6 * d * u.real > 0:
                u = u.real
                return t_best + u, -(g_best * u + c * u ** 2 + d * u ** 3)
    curvature = d2 / h2 ** 2  # > 0: the value ahead is higher
    return t_best - g_best / (2 * curvature), g_best ** 2 / (4 * curvature)


def parabola_start(values, t0):
    """The vertex of the parabola through the known point nearest ``t0`` and its two
    neighbours (kept within them), or ``t0`` without a neighbour on each side or without
    positive curvature."""
    if len(values) < 3:
        return t0
    i = int(np.argmin([abs(t - t0) for t, _ in values]))
    if i == 0 or i == len(values) - 1:
        return t0
    (x0, f0), (x1, f1), (x2, f2) = values[i - 1:i + 2]
    # Divided differences: slope on each side, curvature from their difference.
    s01, s12 = (f1 - f0) / (x1 - x0), (f2 - f1) / (x2 - x1)
    curvature = (s12 - s01) / (x2 - x0)
    if not curvature > 0:
        return t0
    vertex = 0.5 * (x0 + x1) - s01 / (2 * curvature)
    return float(np.clip(vertex, x1 + (1 - _SAFEGUARD) * (x0 - x1),
                         x1 + (1 - _SAFEGUARD) * (x2 - x1)))


def cubic_start(values, t0):
    """The minimum of the cubic through the known point nearest ``t0``, its two
    neighbours and the next point beyond the nearer of them (kept within the two
    neighbours, as :func:`parabola_start`), or :func:`parabola_start` with fewer than four
    points or without such a minimum. A curve steep on one side of its minimum and flat on
    the other (a CV curve in ``log C``) has its minimum on the steep side of where a
    parabola through three coarse grid values puts it; the third order sees the skew."""
    i = int(np.argmin([abs(t - t0) for t, _ in values])) if values else 0
    if len(values) < 4 or i == 0 or i == len(values) - 1:
        return parabola_start(values, t0)
    x1 = values[i][0]
    beyond = [j for j in (i - 2, i + 2) if 0 <= j < len(values)]
    j = min(beyond, key=lambda j: abs(values[j][0] - x1))
    pts = values[i - 1:i + 2] + [values[j]]
    u = np.array([t - x1 for t, _ in pts])
    coef = np.polyfit(u, [f for _, f in pts], 3)
    lo, hi = sorted(((1 - _SAFEGUARD) * (values[i - 1][0] - x1),
                     (1 - _SAFEGUARD) * (values[i + 1][0] - x1)))
    mins = [r.real for r in np.roots(np.polyder(coef)) if abs(r.imag) < 1e-12 and
            np.polyval(np.polyder(coef, 2), r.real) > 0 and lo <= r.real <= hi]
    return float(x1 + mins[0]) if mins else parabola_start(values, t0)


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
    start : {"parabola", "cubic", "theta0"}, default="parabola"
        The first evaluation when ``known`` values surround ``theta0`` (see :meth:`run`):
        the vertex of the parabola through ``theta0`` and its two neighbours, the minimum
        of the cubic through them and one more (:func:`cubic_start`), or ``theta0``
        itself. A parabola through three grid values misplaces the minimum of a curve
        that is steep on one side and flat on the other (the L2 logistic CV log-loss in
        ``log C``: on a 15,000-row problem it stepped to the flat side, away from the
        minimum, and the search came back through ``theta0``).
    """

    accepts_values = True  # run() takes value-only points, e.g. a grid's (see known)

    def __init__(self, max_iter=100, tol=1e-6, first_step=None, start="parabola"):
        if start not in _STARTS:
            raise ValueError(f"start must be one of {sorted(_STARTS)}, got {start!r}")
        self.max_iter, self.tol, self.first_step = int(max_iter), float(tol), first_step
        self.start = start

    def run(self, fun, theta0, bounds=None, known=()) -> OptimizeOutcome:
        """Minimise ``fun`` from ``theta0`` within ``bounds``.

        ``known`` are ``(theta, value)`` pairs already evaluated without slopes (a coarse
        grid): they close brackets (a quadratic through the best point's value and slope
        and the known value stands in for the cubic), and when ``theta0`` is one of them
        with a known neighbour on each side, the search starts at the vertex of the
        parabola through the three instead of at ``theta0``. ``known`` may also hold
        ``(theta, value, slope)`` triples, points a previous search evaluated with their
        slopes: the search resumes from them (it evaluates next what that search would
        have with its tolerance), e.g. to go on to a smaller ``tol``; ``max_iter`` counts
        the new evaluations only.
        """
        theta0 = np.asarray(theta0, dtype=float)
        if theta0.size != 1:
            raise ValueError(f"Bracket optimises one hyperparameter, got {theta0.size}")
        low, high = (-np.inf, np.inf) if bounds is None else \
            (float(np.ravel(bounds[0])[0]), float(np.ravel(bounds[1])[0]))
        # Known points on the bounds (a grid's neighbours of the start) count as inside.
        slack = 1e-9 * (1.0 + max([abs(b) for b in (low, high) if np.isfinite(b)],
                                  default=0.0))
        known = [(float(np.ravel(k[0])[0]), float(k[1]), *map(float, np.ravel(k[2:])))
                 for k in known]
        # The cubic start may read one grid value beyond the box (see cubic_start).
        beyond = _distinct(k for k in known if len(k) == 2 and np.isfinite(k[1]))
        known = [k for k in known if np.isfinite(k[1]) and low - slack <= k[0] <= high + slack]
        values = _distinct(k for k in known if len(k) == 2)
        points = [k for k in known if len(k) == 3]  # (t, f, g) of every evaluation
        n_known = len(points)

        def evaluate(t):
            value, grad = fun(np.full(theta0.shape, t))
            points.append((t, float(value), float(np.ravel(grad)[0])))

        def outcome(converged, message):
            t = min(points, key=lambda p: p[1] if np.isfinite(p[1]) else np.inf)[0]
            return OptimizeOutcome(np.full(theta0.shape, t), len(points) - n_known,
                                   converged, message)

        if self.max_iter < 1:
            return OptimizeOutcome(theta0.copy(), 0, False, "max_iter is 0")
        if not points:
            start = _STARTS[self.start](beyond if self.start == "cubic" else values,
                                        float(theta0.ravel()[0]))
            evaluate(float(np.clip(start, low, high)))
        while len(points) - n_known < self.max_iter:
            t_best, f_best, g_best = min(points, key=lambda p: p[1] if np.isfinite(p[1])
                                         else np.inf)
            if not np.isfinite(f_best) or not np.isfinite(g_best):
                return outcome(False, "non-finite objective or gradient")
            if g_best == 0:
                return outcome(True, "zero gradient")
            downhill = -np.sign(g_best)
            t, message = self._trial(points, values, (t_best, f_best, g_best), downhill,
                                     high if downhill > 0 else low)
            if message is not None:
                return outcome(True, message)
            evaluate(t)
        return outcome(False, "maximum evaluations reached")

    def _trial(self, points, values, best, downhill, end):
        """``(next theta, None)``, or ``(None, why)`` when the search has converged."""
        t_best, f_best, g_best = best

        def nearest_ahead(pts):
            ahead = [p for p in pts if (p[0] - t_best) * downhill > 0]
            return min(ahead, key=lambda p: abs(p[0] - t_best)) if ahead else None

        def nearest_behind(pts):
            behind = [p for p in pts if (p[0] - t_best) * downhill < 0]
            return min(behind, key=lambda p: abs(p[0] - t_best)) if behind else None

        far, far_value = nearest_ahead(points), nearest_ahead(values)
        if far_value is not None and (far is None or
                                      abs(far_value[0] - t_best) < abs(far[0] - t_best)):
            if far_value[1] <= f_best:  # known to be lower: evaluate it properly
                return far_value[0], None
            far = far_value
        width = abs((far[0] if far else end) - t_best)
        if width == 0:
            return None, "minimum at the bound"
        if abs(g_best) * width <= self.tol:
            return None, "the bracket leaves less than tol to gain"
        if far is None:
            t = self._extrapolate(points, t_best, f_best, g_best, downhill)
            return float(np.clip(t, min(t_best, end), max(t_best, end))), None
        if len(far) == 3:  # slopes at both ends: the cubic
            t = hermite_minimizer(t_best, f_best, g_best, *far)
            gain = None if t is None else \
                f_best - hermite_value(t_best, f_best, g_best, *far, t)
        else:  # a known value ahead: a model through it and the best point's slope
            t, gain = _value_model_trial(best, far, nearest_behind(points + values))
            # A far value on the steep side of the curve (a coarse grid's next point)
            # can pull that model's minimum onto the best point, and the search would
            # creep by the safeguard's 5 % of the bracket per evaluation (8 evaluations on
            # a sparse ridge problem). When the model's trial hugs the best point, the
            # slopes evaluated behind it extrapolate on the flat side: follow them when
            # they go further, within the bracket, and stop only when neither model
            # predicts tol to gain (the cubic of the slopes, at the trial it proposes).
            hugs = t is None or abs(t - t_best) <= 2 * _SAFEGUARD * abs(far[0] - t_best)
            prev = nearest_behind(points)
            if hugs and prev is not None:
                ahead = self._extrapolate(points, t_best, f_best, g_best, downhill)
                if t is None or (ahead - t) * downhill > 0:
                    lo, hi = sorted((t_best + _SAFEGUARD * (far[0] - t_best),
                                     far[0] - _SAFEGUARD * (far[0] - t_best)))
                    slope_gain = f_best - hermite_value(*prev, t_best, f_best, g_best,
                                                        float(np.clip(ahead, lo, hi)))
                    t, gain = ahead, max(slope_gain, -np.inf if gain is None else gain)
        if gain is not None and gain <= self.tol:
            return None, "the model of the bracket predicts less than tol to gain"
        lo, hi = sorted((t_best + _SAFEGUARD * (far[0] - t_best),
                         far[0] - _SAFEGUARD * (far[0] - t_best)))
        return (0.5 * (t_best + far[0]) if t is None else float(np.clip(t, lo, hi))), None

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


def _distinct(values):
    """``(theta, value)`` pairs sorted by ``theta``, one per ``theta``: a start that is also
    a grid point (``alpha_init`` on the grid) would make the starts' divided differences
    divide by zero."""
    out = []
    for t, f in sorted(values):
        if not out or t != out[-1][0]:
            out.append((t, f))
    return out


_STARTS = {"parabola": parabola_start, "cubic": cubic_start, "theta0": lambda values, t0: t0}
