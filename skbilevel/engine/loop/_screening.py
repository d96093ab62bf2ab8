"""Screening: the coarse safety grid evaluated (values only) before the driver starts."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

_GRID_TIE = 1e-6  # relative: grid values this close count as equal for the patience


class GridScreening:
    """Evaluate candidate points (values only, cheap) to choose the driver's start.

    This is the safety net against bad starts: the answer of a best-evaluated selection
    is never worse than the grid's best point.

    Parameters
    ----------
    candidates : torch.Tensor
        ``(m, n_hyper)`` points; the loop puts its nominal start ``theta0`` first.
    patience : int or None
        When the candidates form a path (ordered along one hyperparameter), stop
        evaluating them once this many in a row have not improved on the best: on a
        unimodal CV curve the rest are worse, and they are often the expensive fits (weak
        penalties). None evaluates them all.
    patience_below_first : bool
        With ``patience``, count the points that do not improve only once the path's best
        is below its first value (the strongest penalty's: the null model of an L1 path).
        An L1 path's CV error can rise above the null model's before it falls (a noise
        feature in large units, cheap to penalise, enters first): that rise is no
        evidence that the rest of the path is worse, a rise past a point that beats the
        null model is.
    path_length : int or None
        With ``patience``, the candidates are consecutive paths of this length (e.g. one
        path of penalties per ``l1_ratio``), and the patience applies within each path.
        None: one path.
    solver : inner solver or None
        Solver of the candidates, typically the loop's solver with a looser tolerance:
        they only rank starting points. Their values are then *approximate*, and a
        best-evaluated selection prefers points solved by the loop's own solver.
    refine : int
        For a single path: once it is screened, ``refine`` more points, evenly spaced in
        ``theta``, between its best candidate and each neighbour of it. A CV curve with
        many kinks (the Lasso's when hundreds of features enter the support) has local
        minima closer together than the path's points; a finer grid around the best one
        (as fine as a 100-point path) finds the lowest of them for the optimizer to start
        from. 0 refines nothing.
    """

    def __init__(self, candidates, patience: Optional[int] = None,
                 path_length: Optional[int] = None, solver=None, refine: int = 0,
                 patience_below_first: bool = False):
        self.candidates = list(candidates)
        self.patience, self.path_length, self.solver = patience, path_length, solver
        self.refine = int(refine)
        self.patience_below_first = bool(patience_below_first)

    @property
    def approximate(self) -> bool:
        """Whether the candidates' values come from a looser solver than the loop's."""
        return self.solver is not None

    def run(self, evaluate, candidates=None) -> None:
        """Evaluate the candidates through ``evaluate(theta, phase=, solver=) -> value``.

        ``candidates`` replaces :attr:`candidates` (the loop passes them clipped to its box).
        """
        candidates = self.candidates if candidates is None else candidates
        path_length = self.path_length or len(candidates)
        best_k = None
        for k, cand in enumerate(candidates):
            if k % path_length == 0:
                best_value, n_worse, first = np.inf, 0, None
            elif self.patience is not None and n_worse >= self.patience:
                continue  # the path is past its basin: its remaining points only get worse
            value = evaluate(cand, phase="grid", solver=self.solver)
            first = value if first is None else first
            if value < best_value:
                best_value, n_worse, best_k = value, 0, k
            elif value > best_value + _GRID_TIE * abs(best_value) and not (
                    self.patience_below_first and
                    best_value >= first - _GRID_TIE * abs(first)):
                n_worse += 1
            # else a tie, as on the plateau of penalties that zero every coefficient: it
            # says nothing about which side of the basin the path is on.
        if self.refine > 0 and path_length == len(candidates) and best_k is not None:
            # From the weak-penalty side inwards, then the strong side: warm starts move
            # little between neighbouring points.
            for j in (best_k + 1, best_k - 1):
                if 0 <= j < len(candidates):
                    for t in np.arange(self.refine, 0, -1) / (self.refine + 1):
                        point = candidates[best_k] + t * (candidates[j] - candidates[best_k])
                        evaluate(point, phase="grid", solver=self.solver)


def clip_to_box(points, bounds, like: torch.Tensor):
    """``points`` as tensors like ``like``, clipped to the box ``bounds`` (or None)."""
    points = [p.to(dtype=like.dtype, device=like.device) for p in points]
    if bounds is None:
        return points
    low, high = (torch.as_tensor(np.broadcast_to(b, like.shape).copy(), dtype=like.dtype,
                                 device=like.device) for b in bounds)
    return [torch.minimum(torch.maximum(p, low), high) for p in points]
