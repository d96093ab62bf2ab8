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
    """Build a hypergradient method by name.

    Parameters
    ----------
    name : str
        A key of ``registry``; in :data:`METHODS`: ``"implicit"``, ``"implicit_support"``,
        ``"forward"`` or ``"reverse"``.
    registry : dict or None, default=None
        Name to method class; None is :data:`METHODS`. A layer above the engine offers
        methods of its own as ``{**METHODS, "name": MethodClass}``.
    **params
        Passed to the method's constructor.

    Returns
    -------
    HypergradientMethod
        The method instance.

    Raises
    ------
    ValueError
        If ``name`` is not in the registry.
    """
    return build(METHODS if registry is None else registry, name, "hypergradient method",
                 **params)
