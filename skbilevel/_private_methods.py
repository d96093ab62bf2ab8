"""The private tuning methods of :class:`PrivateHyperparamSearch`, by name.

Each entry is a :class:`~skbilevel._private_base.PrivateMethod` subclass constructed without
arguments; a new method is one class and one line here.
"""

from ._private_penalty import PenaltyMethod
from ._private_random_search import RandomSearchMethod
from ._private_sufficient import SufficientStatisticsMethod

PRIVATE_METHODS = {cls.name: cls for cls in (SufficientStatisticsMethod, PenaltyMethod,
                                              RandomSearchMethod)}

# What method="auto" picks per model family, best first. Provisional until
# benchmarks/bench_private.py compares them on the problems:
# - ridge: one release of sufficient statistics spends the whole budget once, then tunes
#   and refits for free;
# - logistic (no finite sufficient statistics): random search scores *private* fits, so it
#   picks a C that survives the refit's noise; the penalty method tunes C for the
#   non-private objective and its hypergradient is noise-bound at eps = 1 (on 20000 x 10
#   synthetic data, eps = 1: random search C = 0.0044, accuracy 0.93; penalty C = 5.6,
#   whose output-perturbed refit is at chance, 0.48).
AUTO_ORDER = {
    "ridge": ("sufficient-statistics", "penalty", "random-search"),
    "logistic": ("random-search", "penalty"),
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
