"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._design import LinearDesign
from ._logistic import LogisticProblem
from ._ridge import RidgeProblem

__all__ = ["InnerProblem", "LinearDesign", "LogisticProblem", "RidgeProblem"]
