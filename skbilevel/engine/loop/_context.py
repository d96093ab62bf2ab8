"""What the parts of the outer loop share while it runs."""

from __future__ import annotations

import time

import numpy as np
import torch

from ._stopping import StopSearch


class LoopContext:
    """The evaluator, the stopping rules and the box, as the drivers and selection see
    them.

    Parameters
    ----------
    evaluator : FoldEvaluator
        Evaluates the folds; its ``history`` is the loop's record.
    stopping : sequence of StoppingRule
        Each observes every record; a reason from one ends the driver's loop while it
        optimises.
    bounds : tuple or None
        Box ``(low, high)`` of ``theta``: floats or arrays of its shape.
    like : torch.Tensor
        A tensor of ``theta``'s dtype and device.
    """

    def __init__(self, evaluator, stopping=(), bounds=None, like=None):
        self.evaluator, self.stopping, self.bounds = evaluator, list(stopping), bounds
        self.like = like
        # The evaluator's own list objects: what a single-loop driver steps on (problem and
        # criterion of each fold), and one record per evaluation so far.
        self.folds, self.history = evaluator.folds, evaluator.history

    def tensor(self, theta) -> torch.Tensor:
        """``theta`` as a tensor of the loop's dtype and device."""
        return torch.as_tensor(theta, dtype=self.like.dtype, device=self.like.device)

    def project(self, theta: np.ndarray) -> np.ndarray:
        """``theta`` clipped to the box."""
        if self.bounds is None:
            return theta
        return np.clip(theta, self.bounds[0], self.bounds[1])

    def evaluate(self, theta, with_grad=True, phase="optimize", solver=None):
        """Evaluate at ``theta``, let every stopping rule observe the record, and raise
        :class:`StopSearch` if one says stop while optimising. Returns ``(value, grad)``."""
        value, grad = self.evaluator(self.tensor(theta), with_grad=with_grad, phase=phase,
                                     solver=solver)
        reasons = [rule.observe(self.history[-1]) for rule in self.stopping]
        reason = next((r for r in reasons if r is not None), None)
        if reason is not None and phase == "optimize":
            raise StopSearch(reason)
        return value, grad

    def record(self, theta, **fields):
        """Append a record of a step a single-loop driver took without an evaluation
        (its objective unknown), so that ``history`` shows every iterate."""
        rec = {"phase": "optimize", "objective": np.nan, "theta": np.array(theta, copy=True),
               "grad_norm": np.nan, "time": time.perf_counter() - self.evaluator.start,
               "n_inner_iter": 0, "n_linsys_iter": 0, "n_matvec": 0, "inner_converged": True,
               **fields}
        self.history.append(rec)
        progress = getattr(self.evaluator, "progress", None)
        if progress is not None:
            progress.report(rec)
        return rec
