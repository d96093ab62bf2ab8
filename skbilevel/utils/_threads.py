"""One torch thread while fitting small designs.

torch's CPU operations split over all cores. On a small design every product is a few
microseconds of work, and waking and joining the thread pool costs more than that; on
large designs the threads pay off. The measurements behind the threshold are in
``benchmarks/results/measurements.md``.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import scipy.sparse as sp
import torch

SMALL_DESIGN = 1 << 18  # stored entries below which one thread is faster

_LOCK = threading.Lock()
_STATE = {"depth": 0, "saved": None}  # nested / concurrent fits restore the count once


def design_entries(X):
    """Stored entries of ``X``: ``nnz`` when sparse, ``n * d`` otherwise."""
    if sp.issparse(X):
        return int(X.nnz)
    try:
        return int(np.prod(np.shape(X)))
    except (TypeError, ValueError):  # ragged input: fit's validation will say so
        return 0


class _OneThread:
    """Context: torch at one thread; the first to enter saves the count, the last to leave
    restores it, so fits running in concurrent threads never leave one thread behind."""

    def __enter__(self):
        with _LOCK:
            if _STATE["depth"] == 0:
                _STATE["saved"] = torch.get_num_threads()
                torch.set_num_threads(1)
            _STATE["depth"] += 1

    def __exit__(self, *exc):
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                torch.set_num_threads(_STATE["saved"])
        return False


def single_threaded_if_small(fit):
    """Decorate ``fit(self, X, ...)``: run it with one torch thread when ``X`` has fewer
    than ``SMALL_DESIGN`` stored entries (and torch has more than one thread)."""

    @functools.wraps(fit)
    def wrapper(self, X, *args, **kwargs):
        if torch.get_num_threads() == 1 and _STATE["depth"] == 0 or \
                design_entries(X) >= SMALL_DESIGN:
            return fit(self, X, *args, **kwargs)
        with _OneThread():
            return fit(self, X, *args, **kwargs)

    return wrapper
