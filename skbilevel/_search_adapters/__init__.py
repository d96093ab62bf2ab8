"""Per-model adapters of ``HypergradientSearchCV``: scikit-learn estimator -> engine folds.

One module per model family; each adapter is registered once in ``ADAPTERS``.
"""

from ._base import FoldData, SearchAdapter, reporting, tune_path
from ._hdm import HDMLogisticAdapter
from ._lasso import ElasticNetAdapter, LassoAdapter
from ._logistic import LogisticAdapter
from ._ridge import RidgeAdapter

ADAPTERS = (RidgeAdapter(), LogisticAdapter(), HDMLogisticAdapter(), LassoAdapter(),
            ElasticNetAdapter())


def adapter_for(estimator):
    """The adapter of ``estimator`` (exact class match), or None."""
    return next((a for a in ADAPTERS if type(estimator) is a.estimator_class), None)


__all__ = ["ADAPTERS", "FoldData", "SearchAdapter", "adapter_for", "reporting",
           "tune_path"]
