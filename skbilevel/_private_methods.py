"""The private tuning methods of :class:`PrivateHyperparamSearch`, by name.

Each entry is a :class:`~skbilevel._private_base.PrivateMethod` subclass constructed without
arguments; a new method is one class and one line here.
"""

from ._private_grid_path import GridPathMethod
from ._private_penalty import PenaltyMethod
from ._private_random_search import RandomSearchMethod
from ._private_sufficient import SufficientStatisticsMethod

PRIVATE_METHODS = {cls.name: cls for cls in (SufficientStatisticsMethod, GridPathMethod,
                                              PenaltyMethod, RandomSearchMethod)}

# What method="auto" picks per model family, best first, from benchmarks/bench_private.py
# (results/private.md):
# - ridge: one release of sufficient statistics spends the whole budget once, then tunes
#   and refits for free;
# - logistic (no finite sufficient statistics): the grid path; random search covers the
#   range with a random, often small, number of runs, each paid in full.
AUTO_ORDER = {
    "ridge": ("sufficient-statistics", "penalty", "random-search"),
    "logistic": ("grid-path", "random-search", "penalty"),
}


def resolve_method(method, kind):
    """The registered method class for ``method`` ("auto" or a name) and model ``kind``."""
    if method == "auto":
        for name in AUTO_ORDER[kind]:
            if name in PRIVATE_METHODS:
                return PRIVATE_METHODS[name]
        raise ValueError(f"no private tuning method for {kind} is installed")
    if method not in PRIVATE_METHODS:
        raise ValueError(f"method={method!r} is not available; available: "
                         f"{sorted(PRIVATE_METHODS)} or 'auto'")
    cls = PRIVATE_METHODS[method]
    if kind not in cls.kinds:
        raise ValueError(f"method={method!r} supports {sorted(cls.kinds)} models, not {kind}")
    return cls
