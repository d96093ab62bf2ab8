"""The one-hyperparameter outer search: cubic interpolation on values and slopes."""

import numpy as np
import pytest

from skbilevel.engine.outer import Bracket, make_optimizer
from skbilevel.engine.outer._bracket import hermite_minimizer, hermite_value


def cubic(t):  # t^3 - 3t: local minimum at t = 1
    return t ** 3 - 3 * t, 3 * t ** 2 - 3


def test_hermite_interpolation_is_exact_on_a_cubic():
    (fa, ga), (fb, gb) = cubic(0.0), cubic(2.0)
    assert hermite_minimizer(0.0, fa, ga, 2.0, fb, gb) == pytest.approx(1.0, abs=1e-12)
    # the same cubic seen from the other end
    assert hermite_minimizer(2.0, fb, gb, 0.0, fa, ga) == pytest.approx(1.0, abs=1e-12)
    for t in (-0.5, 0.3, 1.7, 2.5):
        assert hermite_value(0.0, fa, ga, 2.0, fb, gb, t) == pytest.approx(cubic(t)[0])


def test_hermite_minimizer_none_without_a_local_minimum():
    # t^3: no local minimum (d1^2 - ga gb < 0 for these ends)
    assert hermite_minimizer(-1.0, -1.0, 3.0, 1.0, 1.0, 3.0) is None


def _counted(f):
    calls = []

    def fun(theta):
        calls.append(float(theta[0]))
        value, grad = f(float(theta[0]))
        return value, np.array([grad])

    return fun, calls


def skewed(t):
    """exp(t - 3) - t + 0.1 (t - 3)^2: minimum at 3, flat on the left, steep on the right
    (the shape of a CV curve in log alpha)."""
    return np.exp(t - 3) - t + 0.1 * (t - 3) ** 2, np.exp(t - 3) - 1 + 0.2 * (t - 3)


@pytest.mark.parametrize("start", [0.5, 2.0, 4.5])
def test_bracket_finds_the_minimum(start):
    fun, calls = _counted(skewed)
    out = Bracket(tol=1e-10, first_step=0.5).run(fun, np.array([start]),
                                                   (np.array([0.0]), np.array([6.0])))
    assert out.converged
    assert out.theta[0] == pytest.approx(3.0, abs=1e-4)
    assert out.n_iter == len(calls) <= 10



@pytest.mark.parametrize("start", [0.5, 2.0, 4.5])
def test_bracket_resumes_from_its_points_to_a_smaller_tol(start):
    # A grid's values, a loose search from them, then the same search resumed from the
    # loose one's points (value and slope) with the tight tol: together the very trials
    # of one search with the tight tol, which the loose one alone stopped short of.
    grid = [(np.array([t]), skewed(t)[0]) for t in np.linspace(0.0, 6.0, 4)]
    box = (np.array([0.0]), np.array([6.0]))
    fun, tight = _counted(skewed)
    Bracket(tol=1e-12, first_step=0.5).run(fun, np.array([start]), box, known=grid)
    fun, loose = _counted(skewed)
    first = Bracket(tol=1e-3, first_step=0.5).run(fun, np.array([start]), box, known=grid)
    assert first.converged and len(loose) < len(tight)
    fun, resumed = _counted(skewed)
    points = [(np.array([t]), *skewed(t)) for t in loose]
    out = Bracket(tol=1e-12, first_step=0.5).run(fun, np.array([start]), box,
                                                 known=grid + points)
    assert loose + resumed == tight
    assert out.n_iter == len(resumed) and out.theta[0] == pytest.approx(3.0, abs=1e-5)


def test_bracket_stops_at_a_bound():
    fun, calls = _counted(skewed)
    out = Bracket(tol=1e-10, first_step=0.5).run(fun, np.array([1.0]),
                                                   (np.array([0.0]), np.array([2.0])))
    assert out.converged and out.theta[0] == 2.0
    assert "bound" in out.message


def test_bracket_treats_a_non_finite_region_as_a_wall():
    def fun(theta):  # the orchestrator's stand-in for a diverged inner solve: (inf, 0)
        if theta[0] > 1.2:
            return np.inf, np.zeros(1)
        value, grad = skewed(theta[0])
        return value, np.array([grad])

    out = Bracket(tol=1e-6, first_step=0.5).run(fun, np.array([1.0]),
                                                  (np.array([0.0]), np.array([6.0])))
    assert 1.1 < out.theta[0] <= 1.2  # the best finite point, next to the wall


def test_bracket_stops_when_the_start_is_not_finite():
    out = Bracket().run(lambda t: (np.nan, np.array([np.nan])), np.array([1.0]))
    assert not out.converged and out.n_iter == 1 and "non-finite" in out.message


def test_bracket_needs_one_hyperparameter():
    with pytest.raises(ValueError, match="one hyperparameter"):
        Bracket().run(lambda t: (0.0, t), np.zeros(2))
    assert isinstance(make_optimizer("bracket", tol=1e-3), Bracket)


def ridge_like(t):
    """A CV curve of ridge in log alpha at n >> d: a gentle slope on the left, a minimum
    at ~2.05, and a steep sigmoid rise to the variance of y on the right."""
    def f(u):
        return 0.33 + 0.00066 * np.logaddexp(0, (1.66 - u) / 0.3) + \
            1.7 / (1 + np.exp(-2.0 * (u - 6.5)))
    return f(t), (f(t + 1e-6) - f(t - 1e-6)) / 2e-6


def test_bracket_does_not_creep_under_a_steep_grid_value():
    # The coarse grid's next point (5.29) sits on the steep rise: the value model through
    # it puts the minimum next to the best point, and the search used to creep towards
    # the minimum by 5 % of the bracket per evaluation (8 evaluations); the slopes
    # evaluated on the flat side extrapolate past that.
    known = [(np.array([t]), ridge_like(t)[0]) for t in (9.9, 5.29, 0.69, -3.9)]
    fun, calls = _counted(ridge_like)
    out = Bracket(tol=1e-6, first_step=2.3).run(fun, np.array([0.69]),
                                                (np.array([-20.0]), np.array([20.0])), known)
    grid = np.linspace(0, 4, 400001)
    best = ridge_like(grid)[0].min()
    assert out.converged
    assert ridge_like(out.theta[0])[0] <= best * (1 + 1e-8)
    assert len(calls) <= 6


def test_bracket_without_the_parabola_start_begins_at_theta0():
    # Grid values at 0.75, 2.75, 4.75 of the skewed curve (minimum at 3, flat on the
    # left): the parabola through them has its vertex at 2.47, on the flat side, away
    # from the minimum, and the search comes back through 2.75 (5 evaluations). Without
    # it the search starts at the grid's best point, whose slope points the right way:
    # every evaluation on the minimum's side, 4 of them, the same minimum.
    grid = [0.75, 2.75, 4.75]
    known = [(np.array([t]), skewed(t)[0]) for t in grid]
    box = (np.array([0.75]), np.array([4.75]))
    runs = {}
    for start in ("parabola", "theta0"):
        fun, calls = _counted(skewed)
        out = Bracket(tol=1e-10, first_step=1.0, start=start).run(
            fun, np.array([2.75]), box, known)
        assert out.converged and out.theta[0] == pytest.approx(3.0, abs=1e-4)
        runs[start] = calls
    assert runs["parabola"][0] == pytest.approx(2.466, abs=1e-3) and len(runs["parabola"]) == 5
    assert runs["theta0"][0] == 2.75 and min(runs["theta0"]) >= 2.75
    assert len(runs["theta0"]) == 4
    with pytest.raises(ValueError, match="start must be one of"):
        Bracket(start="vertex")


# The screening grid's CV log-loss of the benchmark's synthetic logistic n=20,000 pipeline
# (theta = -log C, one point per decade); the search's minimum is at theta = 0.88.
_LOGISTIC_GRID = [(-2.303, 0.1455474), (0.0, 0.1454126), (2.303, 0.1463534),
                  (4.605, 0.1665580), (6.908, 0.2543792), (9.210, 0.4563136)]


def test_cubic_start_sees_the_skew_a_parabola_misses():
    # Steep towards strong penalties, flat towards weak ones: the parabola through the
    # best grid value and its neighbours has its vertex at -0.86, on the flat side, the
    # cubic through them and the next value on the steep side its minimum at 1.11, on
    # the minimum's side (0.88). Too few values: the parabola's vertex, or theta0.
    from skbilevel.engine.outer._bracket import cubic_start, parabola_start

    assert parabola_start(_LOGISTIC_GRID, 0.0) == pytest.approx(-0.863, abs=1e-3)
    assert cubic_start(_LOGISTIC_GRID, 0.0) == pytest.approx(1.110, abs=1e-3)
    assert cubic_start(_LOGISTIC_GRID[:3], 0.0) == parabola_start(_LOGISTIC_GRID[:3], 0.0)
    assert cubic_start(_LOGISTIC_GRID[1:3], 0.0) == 0.0
    # The driver's box is one grid step around the best point: the cubic start reads the
    # value beyond it (4.605) all the same, the parabola only those inside.
    calls = []

    def fun(theta):
        calls.append(float(theta[0]))
        return 0.1453 + 0.0001 * (theta[0] - 0.88) ** 2, 0.0002 * (theta - 0.88)

    known = [(np.array([t]), f) for t, f in _LOGISTIC_GRID]
    box = (np.array([-2.303]), np.array([2.303]))
    Bracket(max_iter=1, start="cubic").run(fun, np.array([0.0]), box, known)
    Bracket(max_iter=1, start="parabola").run(fun, np.array([0.0]), box, known)
    assert calls == pytest.approx([1.110, -0.863], abs=1e-3)


def test_the_slopes_extrapolation_stops_when_it_predicts_less_than_tol():
    # Near the minimum the extrapolation along the slopes predicts less than tol to gain
    # (as the value model does): the search stops there instead of spending one more
    # evaluation (on a 50,000 x 1,000 logistic search that evaluation cost +25 % CPU for
    # a 5e-6 gain under tol=1e-4); within tol of the minimum all the same.
    known = [(np.array([t]), ridge_like(t)[0]) for t in (8.0, 4.0, 1.6, -2.0)]
    fun, calls = _counted(ridge_like)
    tol = 1e-5
    out = Bracket(tol=tol, first_step=2.3).run(fun, np.array([1.6]),
                                               (np.array([-20.0]), np.array([20.0])), known)
    best = ridge_like(np.linspace(0, 4, 400001))[0].min()
    assert out.converged and "predicts less than tol" in out.message
    assert ridge_like(out.theta[0])[0] - best <= tol
    assert len(calls) == 3


@pytest.mark.parametrize("start", ["parabola", "cubic"])
def test_a_start_repeated_in_the_known_values_is_read_once(start):
    # alpha_init on the grid gives the same theta twice (seen on an all-zero sparse X,
    # whose natural scale is 1): the starts' divided differences divided by zero.
    known = [(np.array([t]), skewed(t)[0]) for t in (0.0, 2.0, 2.0, 4.0, 6.0)]
    fun, calls = _counted(skewed)
    out = Bracket(tol=1e-10, first_step=0.5, start=start).run(
        fun, np.array([2.0]), (np.array([0.0]), np.array([6.0])), known)
    assert out.converged and out.theta[0] == pytest.approx(3.0, abs=1e-4)
