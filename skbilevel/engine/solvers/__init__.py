"""Inner solvers: how the inner problem is solved."""

from ._closed_form import ClosedFormSolver
from ._krylov import ConjugateGradientSolver

__all__ = ["ClosedFormSolver", "ConjugateGradientSolver"]
