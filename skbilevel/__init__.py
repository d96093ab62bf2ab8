"""skbilevel: hyperparameter tuning by hypergradients, as scikit-learn estimators."""

from ._lasso import BilevelElasticNetCV, BilevelLassoCV
from ._logistic_cv import BilevelLogisticRegressionCV
from ._logistic import HDMLogisticRegression
from ._ridge import BilevelRidgeCV

__version__ = "0.1.0.dev0"

__all__ = ["BilevelElasticNetCV", "BilevelLassoCV", "BilevelLogisticRegressionCV", "BilevelRidgeCV",
           "HDMLogisticRegression",
           "__version__"]
