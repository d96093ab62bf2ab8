"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._datafits import LogisticDatafit, QuadraticDatafit
from ._design import LinearDesign
from ._logistic import LogisticProblem
from ._penalties import L1, L2, ElasticNet, WeightedL1, soft_threshold
from ._proximal import LassoProblem
from ._ridge import RidgeProblem
from ._sparse import ProximalProblem

__all__ = ["ElasticNet", "InnerProblem", "L1", "L2", "LassoProblem", "LinearDesign",
           "LogisticDatafit", "LogisticProblem", "ProximalProblem", "QuadraticDatafit",
           "RidgeProblem", "WeightedL1", "soft_threshold"]
