"""Declared capabilities: what an engine part needs from the objects it is handed.

Every inner solver and hypergradient method states, as class attributes, the methods it
needs from the problem (``requires``), the ones it uses when present (``optional``: a fast
path, a better stopping test) and, for hypergradient methods, what it needs from the inner
solver (``solver_requires``). :func:`check` reads them once, up front, and raises one error
naming every missing method and the class that lacks it; the hot loops then run unchecked.
This is how skglm's solvers declare what a datafit must provide.

This module is the engine's bottom layer: it imports nothing, not even torch.
"""

from __future__ import annotations


def provides(obj, name: str) -> bool:
    """Whether ``obj`` has the attribute ``name``, without evaluating it.

    The class (and its bases) and the instance dictionary are searched, so a cached
    property such as the eigendecomposition of a Gram matrix is not computed (and paid
    for) just to find out that it exists, as ``hasattr`` would.

    Parameters
    ----------
    obj : object
        A problem, solver, penalty or datafit (a class is searched as an instance would be).
    name : str
        Attribute or method name.

    Returns
    -------
    bool
    """
    if name in getattr(obj, "__dict__", {}):
        return True
    return any(name in vars(klass) for klass in type(obj).__mro__)


def missing(obj, names) -> tuple:
    """The entries of ``names`` that ``obj`` does not provide, in order."""
    return tuple(name for name in names if not provides(obj, name))


def require(obj, names, who: str, role: str = "problem") -> None:
    """Raise unless ``obj`` provides every entry of ``names``.

    Parameters
    ----------
    obj : object
        What is checked (a problem, or the inner solver handed to a method).
    names : sequence of str
        Methods or attributes ``who`` calls on it.
    who : str
        The part that needs them, named in the message.
    role : str, default="problem"
        What ``obj`` is to ``who``, named in the message.

    Raises
    ------
    TypeError
        ``"<who> needs the <role> to provide a, b; <class> lacks them"``.
    """
    lacking = missing(obj, names)
    if lacking:
        raise TypeError(f"{who} needs the {role} to provide {', '.join(lacking)}; "
                        f"{type(obj).__name__} lacks {'them' if len(lacking) > 1 else 'it'}")


def check(part, problem, *extra) -> frozenset:
    """Check ``problem`` against ``part.requires`` (plus ``extra``) once, up front.

    Parameters
    ----------
    part : object
        An inner solver or hypergradient method declaring ``requires`` and ``optional``.
    problem : object
        The inner problem handed to it.
    *extra : str
        Requirements that depend on how ``part`` was configured.

    Returns
    -------
    frozenset of str
        The entries of ``part.optional`` that ``problem`` provides: the paths open to it.
    """
    require(problem, (*part.requires, *extra), type(part).__name__)
    return frozenset(name for name in part.optional if provides(problem, name))


def value_and_grad(problem):
    """``(w, theta) -> (objective, gradient)`` of ``problem``, resolved once (solvers call it
    at every iteration): its own ``value_and_grad`` when it declares one (it may share work
    between the two, e.g. one pass over the data), else ``objective`` and ``grad``."""
    if provides(problem, "value_and_grad"):
        return problem.value_and_grad
    return lambda w, theta: (problem.objective(w, theta), problem.grad(w, theta))


def build(registry: dict, name: str, kind: str, **params):
    """Instantiate ``registry[name](**params)``, naming the valid choices if ``name`` is
    not one of them (``kind`` says what is being built, for the message)."""
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}; valid names are {sorted(registry)}")
    return registry[name](**params)
