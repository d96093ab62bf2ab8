"""``minimize_hyperparams``: the outer loop of the ``Bilevel*CV`` estimators in one call."""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .._results import OuterResult
from ._drivers import OptimizerDriver
from ._evaluator import Fold, FoldEvaluator
from ._outer_loop import OuterLoop
from ._progress import Progress
from ._screening import GridScreening
from ._selection import BestEvaluated
from ._stopping import HoldoutPatience, Stall


def minimize_hyperparams(folds: Sequence[Fold], theta0: torch.Tensor, *, solver, method,
                         optimizer, bounds=None, start_grid: Optional[torch.Tensor] = None,
                         holdout: Optional[Fold] = None, n_iter_no_change: int = 10,
                         penalty=None, grid_patience: Optional[int] = None,
                         grid_path_length: Optional[int] = None, grid_solver=None,
                         grid_refine: int = 0, grid_patience_below_first: bool = False,
                         stall_patience: Optional[int] = None,
                         stall_tol: float = 1e-7,
                         local_radius=None, keep_solution_path: bool = False, n_jobs=None,
                         warm_start: str = "last", verbose: int = 0,
                         progress: Optional[Progress] = None
                         ) -> OuterResult:
    """Minimise the fold-averaged outer criterion over ``theta`` by hypergradients.

    A facade over :class:`OuterLoop` with the parts the ``Bilevel*CV`` estimators use: a
    :class:`FoldEvaluator`, :class:`GridScreening`, the stopping rules :class:`Stall` and
    :class:`HoldoutPatience`, an :class:`OptimizerDriver` and :class:`BestEvaluated`
    selection. Compose :class:`OuterLoop` directly for other shapes (fixed steps, gradient
    transforms, single-loop drivers, last-iterate or averaged answers).

    Parameters
    ----------
    folds : sequence of Fold
        Train/validation pairs; the objective is the mean of their criteria, so K-fold
        cross-validation is simply ``len(folds) == K``.
    theta0 : torch.Tensor
        Starting hyperparameters (unconstrained scale), shape ``(n_hyper,)``.
    solver : inner solver
        Has ``solve(problem, theta, w0) -> InnerSolution``.
    method : hypergradient method
        Has ``compute(problem, criterion, theta, solver=, warm_start=, with_grad=)``.
    optimizer : outer optimizer
        Has ``run(fun, theta0, bounds) -> OptimizeOutcome``.
    bounds : tuple or None
        Box ``(low, high)``: floats for every entry of ``theta``, or arrays of its shape.
    start_grid : torch.Tensor or None
        ``(m, n_hyper)`` candidates evaluated (values only, cheap) before optimising; the
        best of them and ``theta0`` is the starting point (see :class:`GridScreening`).
    holdout : Fold or None
        A split kept out of the objective. When given, the optimisation starts from the
        grid candidate with the lowest holdout criterion and the returned ``theta`` is the
        evaluated point with the lowest one (early stopping along the path), which guards
        many hyperparameters against overfitting the validation folds.
    n_iter_no_change : int
        With a holdout, stop once this many consecutive evaluations have not improved the
        holdout criterion.
    penalty : callable or None
        ``theta -> (value, grad)`` added to the fold average in the optimisation phase (a
        prior on the hyperparameters). Without a holdout it also ranks the grid
        candidates; the reported ``value`` and the history objective exclude it.
    grid_patience, grid_path_length, grid_solver, grid_refine, grid_patience_below_first
        See :class:`GridScreening` (``patience``, ``path_length``, ``solver``, ``refine``,
        ``patience_below_first``).
    stall_patience : int or None
        Stop (as converged) after this many optimizer evaluations without progress (see
        :class:`Stall`). None: never.
    stall_tol : float
        Relative decrease of the objective that counts as progress.
    local_radius : float, array or None
        Confine the optimizer to ``start +- local_radius`` (see :class:`OptimizerDriver`).
    keep_solution_path : bool
        Keep every evaluation's fold solutions in ``OuterResult.solution_path``.
    n_jobs : int or None
        Folds evaluated in parallel through joblib.
    warm_start : {"last", "nearest"}
        Each evaluation's fold solves start from the previous evaluation's solutions, or
        from those of the nearest evaluated point (see :class:`FoldEvaluator`).
    verbose : int
        0 silent, 1 one line per evaluation (the grid's included) as it is made, 2 with the
        hypergradient norm and iteration counts (see :class:`Progress`).
    progress : Progress or None
        Reports every evaluation, in place of ``verbose``: a caller passes one with its own
        ``describe`` (the hyperparameters in its units), clock and callback, and can pass
        the same one to several calls (stages of one search) to number them as one.

    Returns
    -------
    OuterResult
        ``history`` holds one dict per evaluation: phase, objective, fold_objectives (each
        fold's criterion; ``objective`` is their mean), theta, grad_norm, time,
        n_inner_iter, n_linsys_iter, n_matvec, inner_converged and, with a holdout,
        holdout_objective.
    """
    evaluator = FoldEvaluator(folds, solver, method, holdout=holdout, n_jobs=n_jobs,
                              verbose=verbose, progress=progress,
                              keep_solutions=keep_solution_path, warm_start=warm_start)
    candidates = [] if start_grid is None else list(start_grid)
    screening = None
    if candidates:
        screening = GridScreening([theta0] + candidates, patience=grid_patience,
                                  path_length=grid_path_length, solver=grid_solver,
                                  refine=grid_refine,
                                  patience_below_first=grid_patience_below_first)
    stopping = [HoldoutPatience(n_iter_no_change)] if holdout is not None else []
    if stall_patience is not None:
        stopping.append(Stall(stall_patience, stall_tol))
    loop = OuterLoop(evaluator, OptimizerDriver(optimizer, penalty, local_radius),
                     screening=screening, stopping=stopping,
                     selection=BestEvaluated(holdout is not None, penalty), bounds=bounds)
    return loop.run(theta0)
