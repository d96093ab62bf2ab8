"""Hyper-cleaning: one weight per training sample, learned so that the model fitted on the
weighted noisy data does best on a trusted set.

Every method subclasses :class:`CleaningMethod` (``run(problem, ...) -> CleaningResult``)
on a :class:`~skbilevel.engine.inner.WeightedModuleProblem`; :data:`METHODS` names them for
:func:`make_cleaning_method`. Adding a method is one class and one line in :data:`METHODS`.
"""

from .._capabilities import build
from ._base import HISTORY_KEYS, CleaningMethod, CleaningResult
from ._implicit import ImplicitCleaning
from ._penalty import PenaltyCleaning
from ._pgd_cqa import PGDCQA, cqa_direction
from ._reweight import ReweightCleaning

__all__ = ["HISTORY_KEYS", "METHODS", "CleaningMethod", "CleaningResult",
           "ImplicitCleaning", "PGDCQA", "PenaltyCleaning", "ReweightCleaning",
           "cqa_direction", "make_cleaning_method"]

METHODS: dict = {
    "pgd-cqa": PGDCQA,
    "implicit": ImplicitCleaning,
    "penalty": PenaltyCleaning,
    "reweight": ReweightCleaning,
}


def make_cleaning_method(name: str, registry=None, **params):
    """``registry[name](**params)``: a cleaning method by name (``registry`` None is
    :data:`METHODS`). Raises ValueError naming the valid names."""
    return build(METHODS if registry is None else registry, name, "cleaning method",
                 **params)
