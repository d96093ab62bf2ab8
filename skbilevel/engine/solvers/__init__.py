"""Inner solvers: how the inner problem is solved."""

from ._closed_form import ClosedFormSolver
from ._coordinate import CoordinateDescent
from ._hdm import HDMConfig, HDMState, hdm_config, hdm_init_state, hdm_trial_point, hdm_update
from ._hdm_solver import HDMSolver, HDMSolverState
from ._lbfgs import LBFGS
from ._krylov import ConjugateGradientSolver, KrylovSolver
from ._proximal import FISTA, ProximalGradient, ProximalState
from ._smoothness import power_iteration, probe_smoothness

__all__ = ["ClosedFormSolver", "ConjugateGradientSolver", "CoordinateDescent", "FISTA",
           "HDMConfig", "HDMSolver", "HDMSolverState", "HDMState", "KrylovSolver", "LBFGS",
           "ProximalGradient", "ProximalState", "hdm_config", "hdm_init_state",
           "hdm_trial_point", "hdm_update", "power_iteration", "probe_smoothness"]
