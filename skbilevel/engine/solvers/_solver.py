"""What every inner solver declares."""

from __future__ import annotations

from .._capabilities import check, missing


class InnerSolver:
    """Base class of the inner solvers: the declarations the rest of the engine reads.

    A solver subclasses this, declares what it needs from the problem and writes
    ``solve(problem, theta, w0=None, recycle=None) -> InnerSolution``; one line in
    :data:`SOLVERS` then makes it available by name.

    Attributes
    ----------
    requires : tuple of str
        Methods the problem must provide; :func:`~skbilevel.engine._capabilities.check`
        tests them once per solve, before any work.
    optional : tuple of str
        Methods used when the problem provides them (a faster or better-scaled path); the
        solver asks :func:`~skbilevel.engine._capabilities.check` which are there.
    unrollable : bool
        Whether the solver has a ``run`` whose iterations forward and reverse mode can
        follow (``ProximalGradient``, ``FISTA``).
    residual_kind : str
        What ``InnerSolution.residual`` measures (see
        :class:`~skbilevel.engine.InnerSolution`).
    scaled_residual : bool
        Whether ``solve`` measures that residual in the problem's diagonally scaled
        variable (``unit_scale``) rather than in ``w``, so that its ``tol`` is in those
        units.
    """

    requires: tuple = ()
    optional: tuple = ()
    unrollable = False
    residual_kind = "grad_norm"
    scaled_residual = False

    @classmethod
    def supports(cls, problem) -> bool:
        """Whether this solver can solve ``problem`` (it provides :attr:`requires`).

        Solvers that also need a structure (a least-squares datafit, a smooth objective)
        refine it; estimators ask it to choose a solver.
        """
        return not missing(problem, cls.requires)

    def check_problem(self, problem, *extra) -> frozenset:
        """Check ``problem`` against :attr:`requires` (plus ``extra``) once, before any work;
        return the entries of :attr:`optional` it provides. Raises a TypeError naming what
        it lacks."""
        return check(self, problem, *extra)
