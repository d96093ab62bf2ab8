"""The HDM core: the pure update rules of hypergradient descent and its variants.

One implementation shared by the inner solver
(:class:`~skbilevel.engine.solvers.HDMSolver`), the outer optimizer
(:class:`~skbilevel.engine.outer.OuterHDM`) and the torch optimizer
(:class:`skbilevel.optim.HDM`), so that all three give the same iterates on the same problem.
It sits at the engine's bottom layer, beside :mod:`~skbilevel.engine.linalg`: it imports no
other part of the engine.
"""

from ._core import (VARIANTS, HDMConfig, HDMState, hdm_config, hdm_init_state, hdm_stats,
                    hdm_trial_point, hdm_update)
from ._step import hdm_lookahead, hdm_step, hdm_wants_lookahead

__all__ = ["VARIANTS", "HDMConfig", "HDMState", "hdm_config", "hdm_init_state",
           "hdm_lookahead", "hdm_stats", "hdm_step", "hdm_trial_point", "hdm_update",
           "hdm_wants_lookahead"]
