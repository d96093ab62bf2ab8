"""Hypergradient methods: how the gradient of the outer loss is obtained."""

from ._implicit import ImplicitDifferentiation
from ._implicit_support import ImplicitSupport
from ._unrolled import ForwardMode, ReverseMode

__all__ = ["ForwardMode", "ImplicitDifferentiation", "ImplicitSupport", "ReverseMode"]
