"""The outer loop assembled from its parts."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._results import OuterResult
from ._context import LoopContext
from ._screening import GridScreening, clip_to_box
from ._selection import BestEvaluated, Selection
from ._stopping import StoppingRule


class OuterLoop:
    """Screening, then a driver under stopping rules, then selection.

    Each part is replaceable on its own. The loop runs them in this order:

    1. ``screening`` (optional) evaluates candidate points, values only, and the
       ``selection`` picks the driver's start among them;
    2. the ``driver`` moves ``theta`` from there, each evaluation observed by every
       stopping rule (a reason to stop ends the driver's loop);
    3. the ``selection`` returns the answer: the best evaluated point, the last iterate
       or the average of the iterates.

    Parameters
    ----------
    evaluator : FoldEvaluator
        Maps ``theta`` to the fold-averaged criterion and hypergradient.
    driver : OptimizerDriver or StepwiseDriver
        Has ``drive(ctx, start) -> OptimizeOutcome``.
    screening : GridScreening or None
        The coarse safety grid.
    stopping : sequence of StoppingRule
        Stopping rules besides the driver's own.
    selection : Selection or None
        Default :class:`BestEvaluated`.
    bounds : tuple or None
        Box ``(low, high)`` of ``theta``: floats, or arrays of its shape. Every point
        evaluated, hence every answer, lies in it.

    Raises
    ------
    ValueError
        If the evaluator withholds values and a part reads them (screening, a stopping
        rule, a selection that compares values).
    """

    def __init__(self, evaluator, driver, *, screening: Optional[GridScreening] = None,
                 stopping: Sequence[StoppingRule] = (), selection: Optional[Selection] = None,
                 bounds=None):
        self.evaluator, self.driver, self.screening = evaluator, driver, screening
        self.stopping = list(stopping)
        self.selection = BestEvaluated() if selection is None else selection
        self.bounds = bounds
        if not evaluator.reveal_values:
            readers = ([type(screening).__name__] if screening is not None else []) + \
                [type(rule).__name__ for rule in self.stopping] + \
                ([type(self.selection).__name__] if self.selection.reads_values else [])
            if readers:
                raise ValueError(f"the evaluator withholds values, but {', '.join(readers)} "
                                 f"read(s) them")

    def run(self, theta0: torch.Tensor) -> OuterResult:
        """Run the loop from ``theta0`` (unconstrained, shape ``(n_hyper,)``)."""
        ctx = LoopContext(self.evaluator, self.stopping, self.bounds, like=theta0)
        start = theta0
        if self.screening is not None:
            self.screening.run(lambda theta, **kw: ctx.evaluate(theta, with_grad=False, **kw)[0],
                               clip_to_box(self.screening.candidates, self.bounds, theta0))
            start = self.selection.start(ctx.history, theta0)
        n_screened = len(ctx.history)
        start_np = ctx.project(start.detach().cpu().double().numpy())
        outcome = self.driver.drive(ctx, start_np)
        approximate = self.screening is not None and self.screening.approximate
        exact = [k >= n_screened or not approximate for k in range(len(ctx.history))]
        theta, value = self.selection.select(ctx, outcome, start_np, exact)
        return OuterResult(theta=theta, value=value, n_iter=outcome.n_iter,
                           converged=outcome.converged, message=outcome.message,
                           history=self.evaluator.history,
                           fold_solutions=self.evaluator.fold_solutions,
                           solution_path=self.evaluator.solution_path or [])
