"""Outer criteria and optimizers: what is minimised over theta, and how."""

from ._criteria import HeldOutLogLoss, HeldOutMSE, HeldOutStackedLogLoss
from ._moment_mse import MomentMSE
from ._optimizers import (OPTIMIZERS, LBFGSB, Adam, Bracket, GradientDescent, OptimizeOutcome,
                          OuterHDM, adam_direction, make_optimizer)

__all__ = ["HeldOutLogLoss", "HeldOutMSE", "HeldOutStackedLogLoss", "MomentMSE", "Adam",
           "Bracket", "GradientDescent", "LBFGSB", "OptimizeOutcome", "OuterHDM", "OPTIMIZERS",
           "adam_direction", "make_optimizer"]
