"""Hypergradient methods: how the gradient of the outer loss is obtained.

Every method subclasses :class:`HypergradientMethod` and declares what it needs from the
problem and the inner solver; :data:`METHODS` names them for :func:`make_hypergradient`.
Adding a method is one class and one line in :data:`METHODS`.
"""

from .._capabilities import build
from ._implicit import ImplicitDifferentiation
from ._implicit_support import ImplicitSupport
from ._method import HypergradientMethod
from ._unrolled import ForwardMode, ReverseMode

__all__ = ["ForwardMode", "HypergradientMethod", "ImplicitDifferentiation", "ImplicitSupport",
           "METHODS", "ReverseMode", "make_hypergradient"]

METHODS = {"implicit": ImplicitDifferentiation, "implicit_support": ImplicitSupport,
           "forward": ForwardMode, "reverse": ReverseMode}


def make_hypergradient(name: str, registry=None, **params):
    """``registry[name](**params)``: a hypergradient method by name. ``registry`` None is
    :data:`METHODS`; offer one of your own as
    ``{**METHODS, "name": MethodClass}``. Raises ValueError naming the valid names."""
    return build(METHODS if registry is None else registry, name, "hypergradient method", **params)
