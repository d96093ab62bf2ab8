"""The private tuning methods of :class:`PrivateHyperparamSearch`, by name.

Each entry is a :class:`~skbilevel._private_base.PrivateMethod` subclass constructed without
arguments. The penalty and random-search methods live in their own modules; they join the
registry when present, so the estimator works with whichever methods are installed.
"""

from ._private_sufficient import SufficientStatisticsMethod

PRIVATE_METHODS = {SufficientStatisticsMethod.name: SufficientStatisticsMethod}

try:
    from ._private_penalty import PenaltyMethod
except ImportError:  # pragma: no cover - until the penalty method lands
    pass
else:
    PRIVATE_METHODS[PenaltyMethod.name] = PenaltyMethod

try:
    from ._private_random_search import RandomSearchMethod
except ImportError:  # pragma: no cover - until the random-search baseline lands
    pass
else:
    PRIVATE_METHODS[RandomSearchMethod.name] = RandomSearchMethod

# What method="auto" picks per model family, best first: the first one registered wins.
# Provisional until the benchmark (benchmarks/bench_private.py) compares them: for ridge the
# one release of sufficient statistics spends the whole budget once and tunes for free; for
# logistic regression (no finite sufficient statistics) the paper's penalty method, else the
# random-search baseline.
AUTO_ORDER = {
    "ridge": ("sufficient-statistics", "penalty", "random-search"),
    "logistic": ("penalty", "random-search"),
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
