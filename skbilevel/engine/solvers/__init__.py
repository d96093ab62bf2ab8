"""Inner solvers: how the inner problem is solved.

Every solver subclasses :class:`InnerSolver` and declares what it needs from the problem;
:data:`SOLVERS` names them for :func:`make_inner_solver`. Adding a solver is one class and
one line in :data:`SOLVERS`.
"""

from .._capabilities import build
from ._closed_form import ClosedFormSolver
from ._hdm_solver import HDMSolver, HDMSolverState
from ._lbfgs import LBFGS
from ._krylov import ConjugateGradientSolver, KrylovSolver
from ._proximal import FISTA, ProximalGradient, ProximalState
from ._solver import InnerSolver

__all__ = ["ClosedFormSolver", "ConjugateGradientSolver", "FISTA", "HDMSolver",
           "HDMSolverState", "InnerSolver", "KrylovSolver", "LBFGS", "ProximalGradient",
           "ProximalState", "SOLVERS", "make_inner_solver"]

SOLVERS = {"closed_form": ClosedFormSolver, "krylov": KrylovSolver,
           "cg": ConjugateGradientSolver, "fista": FISTA, "ista": ProximalGradient,
           "lbfgs": LBFGS, "hdm": HDMSolver}


def make_inner_solver(name: str, registry=None, **params):
    """``registry[name](**params)``: an inner solver by name. ``registry`` None is
    :data:`SOLVERS`; a layer above offers its own as
    ``{**SOLVERS, "name": SolverClass}``. Raises ValueError naming the valid names."""
    return build(SOLVERS if registry is None else registry, name, "inner solver", **params)
