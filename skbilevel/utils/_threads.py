"""One torch thread while fitting small designs, in the fitting thread only.

torch's CPU operations split over all cores. On a small design every product is a few
microseconds of work, and waking and joining the thread pool costs more than that; on
large designs the threads pay off. The measurements behind the threshold are in
``benchmarks/results/measurements.md``.

The limit is the engine's :func:`~skbilevel.engine.limit_torch_threads`: it changes the
OpenMP and MKL thread counts of the thread that calls ``fit`` and nothing else, so torch
code running concurrently in the user's other threads, and the process-wide count of
:func:`torch.set_num_threads`, are never touched. Where torch's OpenMP runtime cannot be
found, the fit simply keeps the caller's threads.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.sparse as sp

from ..engine import limit_torch_threads

SMALL_DESIGN = 1 << 18  # stored entries below which one thread is faster


def design_entries(X):
    """Stored entries of ``X``: ``nnz`` when sparse, ``n * d`` otherwise."""
    if sp.issparse(X):
        return int(X.nnz)
    try:
        return int(np.prod(np.shape(X)))
    except (TypeError, ValueError):  # ragged input: fit's validation will say so
        return 0


def single_threaded_if_small(fit):
    """Decorate ``fit(self, X, ...)``: run it with one torch thread, in the calling thread
    only, when ``X`` has fewer than ``SMALL_DESIGN`` stored entries."""

    @functools.wraps(fit)
    def wrapper(self, X, *args, **kwargs):
        if design_entries(X) >= SMALL_DESIGN:
            return fit(self, X, *args, **kwargs)
        with limit_torch_threads(1):
            return fit(self, X, *args, **kwargs)

    return wrapper
