"""What every hypergradient method declares."""

from __future__ import annotations

from .._capabilities import check, require


class HypergradientMethod:
    """Base class of the hypergradient methods: the declarations the rest of the engine reads.

    A method subclasses this, declares what it needs from the problem and from the inner
    solver, and writes ``compute(problem, criterion, theta, *, solver, warm_start=None,
    with_grad=True) -> HypergradResult``; one line in :data:`METHODS` then makes it
    available by name.

    Attributes
    ----------
    requires : tuple of str
        Methods the problem must provide.
    optional : tuple of str
        Methods used when the problem provides them (a faster path).
    solver_requires : tuple of str
        Methods the inner solver must provide (``run`` for the unrolled methods).
    differentiates_iterations : bool
        Whether the method differentiates the solver's iterations (forward and reverse
        mode; they need an ``unrollable`` solver) rather than the optimality conditions
        at the solution (implicit differentiation: any solver).
    """

    requires: tuple = ()
    optional: tuple = ()
    solver_requires: tuple = ()
    differentiates_iterations = False

    def _check(self, problem, solver) -> frozenset:
        """Check ``problem`` and ``solver`` once per call; return the optional methods
        ``problem`` provides."""
        require(solver, self.solver_requires, type(self).__name__, role="inner solver")
        return check(self, problem)
