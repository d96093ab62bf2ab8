"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._design import LinearDesign
from ._ridge import RidgeProblem

__all__ = ["InnerProblem", "LinearDesign", "RidgeProblem"]
