"""Inner problems: what is fitted for given hyperparameters."""

from ._base import InnerProblem
from ._datafits import QuadraticDatafit
from ._design import LinearDesign, scipy_csr_pair
from ._logistic_datafits import LogisticDatafit, MultinomialDatafit
from ._losses import (AffineDesign, BinaryLogLoss, MultinomialLogLoss, StackedBinaryLogLoss,
                      log_loss)
from ._module import LinearModel, MLPModel, ModuleModel, WeightedModuleProblem
from ._penalties import L1, L2, ElasticNet, Shifted, WeightedL1, soft_threshold
from ._proximal import ProximalProblem
from ._ridge import RidgeProblem
from ._stacked_logistic import StackedLogisticDatafit, stacked_shift

__all__ = ["AffineDesign", "BinaryLogLoss", "ElasticNet", "InnerProblem", "L1", "L2",
           "LinearDesign", "LinearModel", "LogisticDatafit", "MLPModel", "ModuleModel",
           "MultinomialDatafit", "MultinomialLogLoss", "ProximalProblem", "QuadraticDatafit",
           "RidgeProblem", "Shifted", "StackedBinaryLogLoss", "StackedLogisticDatafit",
           "WeightedL1", "WeightedModuleProblem", "log_loss", "scipy_csr_pair",
           "soft_threshold", "stacked_shift"]
