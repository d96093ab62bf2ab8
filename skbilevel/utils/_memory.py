"""Fresh memory without numpy's huge-page advice while fitting.

numpy asks the kernel to back every array of 4 MiB or more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). Where the kernel then compacts memory on the first touch
of such an array (``/sys/kernel/mm/transparent_hugepage/defrag`` set to ``madvise``, the
usual default), fresh memory can cost an order of magnitude more: on the benchmark
machine a copy of a 400 MB array took 5.3 s with the advice and 0.33 s without it, and
``StandardScaler() + PolynomialFeatures(2)`` on 120,000 x 10 rows 1.1 s against 0.19 s
(``benchmarks/results/measurements.md``). A fit allocates such arrays where it copies
the data: the folds' rows, a pipeline's transformed folds, scikit-learn's scoring fits
inside ``HypergradientSearchCV``. Streaming products over those arrays gain little from
huge pages, so the fits run without the advice; numpy's own setting (``numpy``'s
``NUMPY_MADVISE_HUGEPAGE``) is restored when ``fit`` returns or raises.

The switch is numpy's process-wide one: an array that another thread allocates while a
fit runs is not advised either (it only changes how its pages are backed). Where numpy
has no such switch, fits run as they are.
"""

from __future__ import annotations

import contextlib
import functools
import importlib


def _find_switch():
    """numpy's ``_set_madvise_hugepage`` (it returns the previous setting), or None."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module)._set_madvise_hugepage
        except (ImportError, AttributeError):
            continue
    return None


_SWITCH = _find_switch()


def hugepage_advice_enabled():
    """Whether numpy currently advises huge pages for new large arrays (None: unknown)."""
    if _SWITCH is None:
        return None
    current = _SWITCH(True)
    _SWITCH(current)
    return bool(current)


@contextlib.contextmanager
def no_hugepage_advice():
    """Within the block, numpy's new large arrays are not advised to use huge pages."""
    if _SWITCH is None:
        yield
        return
    previous = _SWITCH(False)
    try:
        yield
    finally:
        _SWITCH(previous)


def without_hugepage_advice(fit):
    """Decorate ``fit``: run it under :func:`no_hugepage_advice`."""

    @functools.wraps(fit)
    def wrapper(*args, **kwargs):
        with no_hugepage_advice():
            return fit(*args, **kwargs)

    return wrapper
