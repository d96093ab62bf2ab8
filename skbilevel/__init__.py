"""skbilevel: hyperparameter tuning by hypergradients, as scikit-learn estimators."""

import importlib

__version__ = "0.1.0.dev0"

# The estimators import scikit-learn; they load on first access (PEP 562) so that importing
# the torch-only engine (``import skbilevel.engine``), which runs this file first, does not
# import scikit-learn.
_ESTIMATORS = {
    "BilevelElasticNetCV": "._lasso",
    "BilevelLassoCV": "._lasso",
    "BilevelLogisticRegressionCV": "._logistic_cv",
    "BilevelRidgeCV": "._ridge",
    "HDMLogisticRegression": "._logistic",
    "HyperCleaningClassifier": "._cleaning",
    "HypergradientSearchCV": "._search",
    "HypergradientSearchDisplay": "._search_display",
    "PrivateHyperparamSearch": "._private",
}

__all__ = [*_ESTIMATORS, "__version__"]


def __getattr__(name):
    """Import the estimator called ``name`` from its module on first access."""
    if name not in _ESTIMATORS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ESTIMATORS[name], __name__), name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
