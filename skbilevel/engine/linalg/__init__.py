"""Linear solvers for symmetric systems ``H x = b`` given only ``v -> H v``.

All solvers share one call signature, ``solver(matvec, b, x0=None, recycle=None)``, and
return ``(x, LinearSolveInfo)``. They keep no state between calls: recycled MINRES returns
its recycle space in ``info.recycle`` for the caller to pass to the next solve.
"""

from ._cg import CG
from ._dense import DenseSolver
from ._info import LinearSolveInfo, RecycleSpace
from ._minres import MINRES, RecycledMINRES

__all__ = ["LinearSolveInfo", "RecycleSpace", "CG", "MINRES", "RecycledMINRES", "DenseSolver",
           "LINEAR_SOLVERS", "make_linear_solver"]

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
