"""Inner solvers: how the inner problem is solved."""

from ._closed_form import ClosedFormSolver
from ._krylov import ConjugateGradientSolver, KrylovSolver

__all__ = ["ClosedFormSolver", "ConjugateGradientSolver", "KrylovSolver"]
