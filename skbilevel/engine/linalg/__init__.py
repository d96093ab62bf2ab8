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
           "LINEAR_SOLVERS", "make_linear_solver", "power_iteration", "probe_smoothness",
           "repair_recycle_space", "tag_recycle_space"]

LINEAR_SOLVERS = {"cg": CG, "minres": MINRES, "recycled_minres": RecycledMINRES,
                  "dense": DenseSolver}


def make_linear_solver(name: str, registry=None, **params):
    """Build a linear solver by name.

    Parameters
    ----------
    name : str
        A key of ``registry``; in :data:`LINEAR_SOLVERS`: ``"cg"``, ``"minres"``,
        ``"recycled_minres"`` or ``"dense"``.
    registry : dict or None, default=None
        Name to solver class; None is :data:`LINEAR_SOLVERS`.
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
    registry = LINEAR_SOLVERS if registry is None else registry
    if name not in registry:
        raise ValueError(f"unknown linear solver {name!r}; valid names are "
                         f"{sorted(registry)}")
    return registry[name](**params)
