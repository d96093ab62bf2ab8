"""Hypergradient methods: how the gradient of the outer loss is obtained."""

from ._forward import ForwardMode
from ._implicit import ImplicitDifferentiation

__all__ = ["ForwardMode", "ImplicitDifferentiation"]
