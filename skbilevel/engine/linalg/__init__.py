"""Linear algebra of the engine: symmetric solvers, recycle spaces, spectral estimates.

The linear solvers solve ``H x = b`` given only ``v -> H v``. They share one call signature,
``solver(matvec, b, x0=None, recycle=None)``, and return ``(x, LinearSolveInfo)``. They keep
no state between calls: recycled MINRES returns its recycle space in ``info.recycle`` for the
caller to pass to the next solve, after :func:`tag_recycle_space` and, once ``theta`` has
moved, :func:`repair_recycle_space`. :func:`power_iteration` and :func:`probe_smoothness`
estimate the largest eigenvalue of an operator and the smoothness of a gradient. This is the
engine's bottom layer: it imports no other part of the engine.
"""

from ._cg import CG
from ._dense import DenseSolver
from ._info import LinearSolveInfo, RecycleSpace
from ._minres import MINRES, RecycledMINRES
from ._recycle import repair_recycle_space, tag_recycle_space
from ._spectral import power_iteration, probe_smoothness

__all__ = ["LinearSolveInfo", "RecycleSpace", "CG", "MINRES", "RecycledMINRES", "DenseSolver",
           "make_linear_solver", "power_iteration", "probe_smoothness", "repair_recycle_space",
           "tag_recycle_space"]

_SOLVERS = {"cg": CG, "minres": MINRES, "recycled_minres": RecycledMINRES,
            "dense": DenseSolver}


def make_linear_solver(name: str, **params):
    """Build a linear solver by name.

    Parameters
    ----------
    name : {"cg", "minres", "recycled_minres", "dense"}
        Which solver.
    **params
        Passed to the solver's constructor.

    Returns
    -------
    CG, MINRES, RecycledMINRES or DenseSolver
        The solver instance.

    Raises
    ------
    ValueError
        If ``name`` is not one of the valid names.
    """
    if name not in _SOLVERS:
        raise ValueError(f"unknown linear solver {name!r}; valid names are "
                         f"{sorted(_SOLVERS)}")
    return _SOLVERS[name](**params)
