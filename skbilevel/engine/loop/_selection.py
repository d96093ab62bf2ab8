"""Selection: which point the outer loop returns once its driver has stopped."""

from __future__ import annotations

import numpy as np
import torch


class Selection:
    """Base class of selection rules.

    ``reads_values`` says whether the rule compares criterion values (a private search
    may only use rules that do not).
    """

    reads_values = True

    def start(self, history, theta0):
        """The driver's start after screening filled ``history`` (default ``theta0``)."""
        return theta0

    def select(self, ctx, outcome, start, exact):
        """Return ``(theta, value)``: the answer and its objective (NaN if unknown).

        ``ctx`` is the loop's :class:`~skbilevel.engine.loop.LoopContext`, ``outcome``
        the driver's :class:`OptimizeOutcome`, ``start`` the driver's start (numpy) and
        ``exact[i]`` whether record ``i`` was solved by the loop's own solver.
        """
        raise NotImplementedError


class BestEvaluated(Selection):
    """The evaluated point with the lowest objective, or the lowest holdout criterion.

    The safety net: it is never worse than the screening grid's best point. When the
    grid's values were approximate (a looser solver) and the driver never beat the
    grid's best, that point is solved properly and returned.

    Parameters
    ----------
    holdout : bool
        Rank by the holdout criterion (early stopping along the path) instead of the
        objective.
    penalty : callable or None
        ``theta -> (value, grad)`` added to the objective when ranking (a prior on the
        hyperparameters); the reported value excludes it.
    """

    def __init__(self, holdout=False, penalty=None):
        self.holdout, self.penalty = holdout, penalty

    def _raw_score(self, rec, like):
        if self.holdout:
            return rec["holdout_objective"]
        if self.penalty is None:
            return rec["objective"]
        theta = torch.as_tensor(rec["theta"], dtype=like.dtype, device=like.device)
        return rec["objective"] + float(self.penalty(theta)[0])

    def _score(self, rec, like):
        value = self._raw_score(rec, like)
        return value if np.isfinite(value) else np.inf

    def start(self, history, theta0):
        # Start from the candidate the final answer would be.
        best = int(np.argmin([self._raw_score(r, theta0) for r in history]))
        return torch.as_tensor(history[best]["theta"], dtype=theta0.dtype,
                               device=theta0.device)

    def select(self, ctx, outcome, start, exact):
        history, like = ctx.history, ctx.like
        exact = list(exact)
        scores = [self._score(r, like) for r in history]  # the penalty once per record
        grid_best = min((s for s, ok in zip(scores, exact) if not ok), default=np.inf)
        start_solved = any(ok and np.array_equal(r["theta"], start)
                           for r, ok in zip(history, exact))
        if any(exact) and not start_solved and \
                grid_best < min(s for s, ok in zip(scores, exact) if ok):
            # The driver never reached the grid's best value (an approximate one): solve
            # that point properly, so the answer is never worse than the grid.
            ctx.evaluator(ctx.tensor(start), with_grad=False, phase="optimize")
            exact.append(True)
            scores.append(self._score(history[-1], like))
        if not any(exact):  # no evaluation by the loop's solver (e.g. max_iter=0)
            exact = [True] * len(exact)
        best = int(np.argmin([s if ok else np.inf for s, ok in zip(scores, exact)]))
        return ctx.tensor(history[best]["theta"]), history[best]["objective"]


class LastIterate(Selection):
    """The driver's last iterate; reads no value."""

    reads_values = False

    def select(self, ctx, outcome, start, exact):
        return ctx.tensor(outcome.theta), float("nan")


class AverageIterates(Selection):
    """The mean of the points the driver evaluated during optimisation (Polyak
    averaging, the answer of noisy first-order methods); reads no value.

    Parameters
    ----------
    burn_in : float
        Fraction of the first iterates left out of the mean.
    """

    reads_values = False

    def __init__(self, burn_in: float = 0.0):
        if not 0 <= burn_in < 1:
            raise ValueError(f"burn_in must be in [0, 1), got {burn_in!r}")
        self.burn_in = burn_in

    def select(self, ctx, outcome, start, exact):
        thetas = [r["theta"] for r in ctx.history if r["phase"] == "optimize"]
        if not thetas:
            return ctx.tensor(outcome.theta), float("nan")
        thetas = thetas[int(self.burn_in * len(thetas)):]
        return ctx.tensor(np.mean(thetas, axis=0)), float("nan")
