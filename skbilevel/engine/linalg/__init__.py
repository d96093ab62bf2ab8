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
           "make_linear_solver"]

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
