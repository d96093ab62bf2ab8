"""What every hyper-cleaning method takes and returns.

A method learns one weight per training sample of a
:class:`~skbilevel.engine.inner.WeightedModuleProblem` (the weights' logits ``x``) together
with the model's parameters ``y``. It is a class with ``name`` and
``run(problem, *, max_iter, x0=None, y0=None, generator=None, callback=None) ->
CleaningResult``; state travels in arguments and results, never on ``self``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


@dataclass
class CleaningResult:
    """A method's answer.

    Attributes
    ----------
    x : torch.Tensor
        ``(n,)`` logits of the learned weights (weight ``sigmoid(x_i)``, times the base).
    y : torch.Tensor
        The model's parameters at the end (flat).
    history : dict of lists
        Per iteration: ``"outer_value"`` (f), ``"sqrt_h"`` (``||grad_y g||``),
        ``"stationarity"`` (``||grad f + lambda grad h||``, or the hypergradient's norm for
        methods without a multiplier), ``"lambda"`` (NaN where there is none) and
        ``"time"`` (seconds since the start).
    n_iter : int
    kkt_residual : float
        The last stationarity measure (see ``history["stationarity"]``).
    converged : bool
        Whether the method's own stopping rule fired before ``max_iter``.
    """

    x: torch.Tensor
    y: torch.Tensor
    history: dict = field(default_factory=dict)
    n_iter: int = 0
    kkt_residual: float = float("nan")
    converged: bool = False


HISTORY_KEYS = ("outer_value", "sqrt_h", "stationarity", "lambda", "time")


class CleaningMethod:
    """Base class: ``run`` learns the weights (see the module docstring)."""

    name = "base"

    def run(self, problem, *, max_iter: int, x0: Optional[torch.Tensor] = None,
            y0: Optional[torch.Tensor] = None, generator=None,
            callback: Optional[Callable] = None) -> CleaningResult:
        raise NotImplementedError

    @staticmethod
    def start(problem, x0, y0, generator):
        """``x0`` default 0 (every weight 1/2), ``y0`` default the model's initialisation."""
        dtype, device = problem.X.dtype, problem.X.device
        x = torch.zeros(problem.n, dtype=dtype, device=device) if x0 is None else x0.clone()
        y = problem.model.init(generator, dtype=dtype, device=device) if y0 is None \
            else y0.clone()
        return x, y
