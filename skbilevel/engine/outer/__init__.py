"""Outer criteria and optimizers: what is minimised over theta, and how."""

from ._criteria import HeldOutMSE
from ._optimizers import (OPTIMIZERS, Adam, GradientDescent, LBFGSB, OptimizeOutcome,
                          make_optimizer)

__all__ = ["HeldOutMSE", "Adam", "GradientDescent", "LBFGSB", "OptimizeOutcome",
           "OPTIMIZERS", "make_optimizer"]
