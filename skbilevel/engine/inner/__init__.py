"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._datafits import LogisticDatafit, MultinomialDatafit, QuadraticDatafit
from ._design import LinearDesign
from ._logistic import LogisticProblem
from ._penalties import L1, L2, ElasticNet, Shifted, WeightedL1, soft_threshold
from ._ridge import RidgeProblem
from ._proximal import ProximalProblem

__all__ = ["ElasticNet", "InnerProblem", "L1", "L2", "LinearDesign",
           "LogisticDatafit", "LogisticProblem", "MultinomialDatafit", "ProximalProblem",
           "QuadraticDatafit", "RidgeProblem", "Shifted", "WeightedL1", "soft_threshold"]
