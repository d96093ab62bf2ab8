"""Outer criteria and optimizers: what is minimised over theta, and how."""

from ._criteria import HeldOutLogLoss, HeldOutMSE
from ._optimizers import (HDM, OPTIMIZERS, Adam, Bracket, GradientDescent, LBFGSB,
                          OptimizeOutcome, make_optimizer)

__all__ = ["HeldOutLogLoss", "HeldOutMSE", "Adam", "Bracket", "GradientDescent", "HDM",
           "LBFGSB", "OptimizeOutcome", "OPTIMIZERS", "make_optimizer"]
