"""Public torch optimizers: :class:`HDM` (hypergradient descent with learned stepsizes)."""

from ._hdm import HDM

__all__ = ["HDM"]
