"""Two stages of one search: a shared penalty, then one penalty per feature (or group)."""

from __future__ import annotations

import numpy as np

from .._results import OuterResult


def broadcast_first_stage(first: OuterResult, second: OuterResult,
                          n_hyper: int) -> OuterResult:
    """``second`` with ``first``'s evaluations in front of its own, as one search.

    The first stage tuned one shared penalty (``theta`` of length 1); the second started
    from it with ``n_hyper`` penalties. The first stage's records get ``theta`` broadcast
    to every penalty, so that the history (and the solution path, when kept) reads as
    one path in the second stage's space. ``second`` is returned, extended in place.
    """
    for rec in first.history:
        rec["theta"] = np.full(n_hyper, rec["theta"][0])
    second.history[:0] = first.history
    second.solution_path[:0] = first.solution_path
    return second
