"""Linear algebra of the engine: symmetric solvers, recycle spaces, spectral estimates.

The linear solvers solve ``H x = b`` given only ``v -> H v``. They share one call signature,
``solver(matvec, b, x0=None, recycle=None)``, and return ``(x, LinearSolveInfo)``. They keep
no state between calls: recycled MINRES returns its recycle space in ``info.recycle`` for the
caller to pass to the next solve, after :func:`tag_recycle_space` and, once ``theta`` has
moved, :func:`repair_recycle_space`. :func:`power_iteration`, :func:`probe_smoothness` and
:func:`sample_smoothness` estimate the largest eigenvalue of an operator and the smoothness
of a gradient. This is the engine's bottom layer: it imports no other part of the engine.
"""

from .._capabilities import build
from ._cg import CG
from ._dense import DenseSolver
from ._info import LinearSolveInfo, RecycleSpace
from ._minres import MINRES, RecycledMINRES
from ._solver import LinearSolver
from ._recycle import repair_recycle_space, tag_recycle_space
from ._spectral import power_iteration, probe_smoothness, sample_smoothness

__all__ = ["LinearSolveInfo", "LinearSolver", "RecycleSpace", "CG", "MINRES", "RecycledMINRES",
           "DenseSolver", "LINEAR_SOLVERS", "make_linear_solver", "power_iteration",
           "probe_smoothness", "repair_recycle_space", "sample_smoothness",
           "tag_recycle_space"]

LINEAR_SOLVERS = {"cg": CG, "minres": MINRES, "recycled_minres": RecycledMINRES,
                  "dense": DenseSolver}


def make_linear_solver(name: str, registry=None, **params):
    """``registry[name](**params)``: a linear solver by name. ``registry`` None is
    :data:`LINEAR_SOLVERS`; the estimators pick theirs with it. Raises ValueError naming
    the valid names."""
    return build(LINEAR_SOLVERS if registry is None else registry, name, "linear solver",
                 **params)
