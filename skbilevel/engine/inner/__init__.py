"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._design import LinearDesign
from ._logistic import LogisticProblem
from ._proximal import L1, ElasticNet, LassoProblem, WeightedL1
from ._ridge import RidgeProblem

__all__ = ["ElasticNet", "InnerProblem", "L1", "LassoProblem", "LinearDesign", "LogisticProblem",
           "RidgeProblem", "WeightedL1"]
