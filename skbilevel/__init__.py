"""skbilevel: hyperparameter tuning by hypergradients, as scikit-learn estimators."""

from ._lasso import BilevelLassoCV
from ._logistic import HDMLogisticRegression
from ._ridge import BilevelRidgeCV

__version__ = "0.1.0.dev0"

__all__ = ["BilevelLassoCV", "BilevelRidgeCV", "HDMLogisticRegression", "__version__"]
