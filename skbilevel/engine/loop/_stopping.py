"""Stopping rules of the outer loop: read each record, say when to stop and why.

A rule sees every record the loop makes (the screening grid's too, so that a best value
found there counts) through :meth:`observe`, and returns a reason to stop or None. The loop
heeds a reason only while the driver is optimising. Rules read *values* (CV or holdout
criteria): a private search, which may not read values it has not paid for, uses none.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


class StopSearch(Exception):
    """Raised inside the driver's objective to end its loop; carries the reason."""


class StoppingRule:
    """Base class: :meth:`observe` one record, return a reason to stop or None."""

    def observe(self, record: dict) -> Optional[str]:
        raise NotImplementedError


class Stall(StoppingRule):
    """Stop once ``patience`` consecutive optimisation evaluations have not lowered the
    best objective by more than ``tol`` relative.

    For piecewise-smooth objectives (Lasso-type CV errors change support at kinks): at a
    minimum on a kink the gradient never vanishes and L-BFGS-B zigzags across it for
    dozens of evaluations that change the objective in its eighth digit.
    """

    def __init__(self, patience: int, tol: float = 1e-7):
        self.patience, self.tol = patience, tol
        self.best, self.stalled = np.inf, 0

    def observe(self, record):
        if record["phase"] != "optimize":
            return None
        value = record["objective"]
        if value < self.best - self.tol * abs(self.best):
            self.stalled = 0
        else:
            self.stalled += 1
        self.best = min(self.best, value)
        if self.stalled >= self.patience:
            return (f"no decrease of the objective beyond {self.tol:g} relative in "
                    f"{self.patience} evaluations")
        return None


class HoldoutPatience(StoppingRule):
    """Early stopping: stop once ``patience`` consecutive optimisation evaluations have
    not improved the best holdout criterion (the screening grid's included)."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best, self.stale = np.inf, 0

    def observe(self, record):
        value = record["holdout_objective"]
        if value < self.best:
            self.best, self.stale = value, 0
        elif record["phase"] == "optimize":
            self.stale += 1
        if self.stale >= self.patience:
            return f"early stopping: no holdout improvement in {self.patience} evaluations"
        return None
