"""Inner solvers: how the inner problem is solved."""

from ._closed_form import ClosedFormSolver
from ._hdm_solver import HDMSolver, HDMSolverState
from ._lbfgs import LBFGS
from ._krylov import ConjugateGradientSolver, KrylovSolver
from ._proximal import FISTA, ProximalGradient, ProximalState

__all__ = ["ClosedFormSolver", "ConjugateGradientSolver", "FISTA", "HDMSolver",
           "HDMSolverState", "KrylovSolver", "LBFGS", "ProximalGradient", "ProximalState"]
