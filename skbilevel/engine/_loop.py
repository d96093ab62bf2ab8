"""The outer loop: one orchestrator for every bilevel estimator."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from joblib import Parallel, delayed

from ._results import OuterResult
from .outer import OptimizeOutcome


_GRID_TIE = 1e-6  # relative: grid values this close count as equal for grid_patience


class _Stop(Exception):
    """Raised inside the objective to end the optimizer's loop; carries the reason."""


@dataclass(frozen=True)
class Fold:
    """One train/validation pair: an inner problem and the criterion that scores it."""

    problem: Any
    criterion: Any


class _Evaluator:
    """Evaluates the fold-averaged outer objective, keeping each fold's warm start."""

    def __init__(self, folds, solver, method, holdout, n_jobs, verbose, keep_solutions=False):
        self.folds, self.solver, self.method = list(folds), solver, method
        self.holdout, self.n_jobs, self.verbose = holdout, n_jobs, verbose
        self.solution_path = [] if keep_solutions else None
        self.warm = [None] * len(self.folds)
        self.holdout_warm = None
        self.history = []
        self.start = time.perf_counter()
        self.best_holdout, self.n_stale = np.inf, 0

    def _map(self, theta, with_grad, solver):
        def one(i, fold):
            return self.method.compute(fold.problem, fold.criterion, theta, solver=solver,
                                       warm_start=self.warm[i], with_grad=with_grad)

        jobs = list(enumerate(self.folds))
        if self.n_jobs in (None, 1) or len(jobs) == 1:
            return [one(i, f) for i, f in jobs]
        # Threads: torch releases the GIL in its kernels and the folds share the device; a
        # joblib backend configured by the user (e.g. dask) takes precedence over the hint.
        return Parallel(n_jobs=self.n_jobs, prefer="threads")(delayed(one)(i, f)
                                                              for i, f in jobs)

    def __call__(self, theta: torch.Tensor, with_grad: bool, phase: str, solver=None):
        solver = self.solver if solver is None else solver
        results = self._map(theta, with_grad, solver)
        self.warm = [r.warm_start for r in results]
        value = float(np.mean([r.value for r in results]))
        grad = None
        if with_grad:
            grad = torch.stack([r.grad for r in results]).mean(0)
        record = {
            "phase": phase,
            "objective": value,
            "fold_objectives": np.array([r.value for r in results]),
            "theta": theta.detach().cpu().numpy().copy(),
            "grad_norm": float(torch.linalg.vector_norm(grad)) if grad is not None else np.nan,
            "time": time.perf_counter() - self.start,
            "n_inner_iter": sum(r.n_inner_iter for r in results),
            "n_linsys_iter": sum(r.n_linsys_iter for r in results),
            "n_matvec": sum(r.n_matvec for r in results),
            "inner_converged": all(r.inner_converged for r in results),
        }
        if self.holdout is not None:
            res = self.method.compute(self.holdout.problem, self.holdout.criterion, theta,
                                      solver=solver, warm_start=self.holdout_warm,
                                      with_grad=False)
            self.holdout_warm = res.warm_start
            record["holdout_objective"] = res.value
            if res.value < self.best_holdout:
                self.best_holdout, self.n_stale = res.value, 0
            elif phase == "optimize":
                self.n_stale += 1
        self.history.append(record)
        if self.solution_path is not None:
            self.solution_path.append([r.w.detach() for r in results])
        if self.verbose and (phase != "grid" or self.verbose > 1):
            _print_record(len(self.history), record)
        return value, grad


def _print_record(k, rec):
    theta = rec["theta"]
    alpha = (f"alpha={np.exp(theta[0]):.4g}" if theta.size == 1 else
             f"alpha in [{np.exp(theta.min()):.3g}, {np.exp(theta.max()):.3g}]")
    extra = f"  holdout={rec['holdout_objective']:.6g}" if "holdout_objective" in rec else ""
    print(f"[skbilevel] {rec['phase']:>8} eval {k:3d}  cv={rec['objective']:.6g}{extra}  "
          f"|grad|={rec['grad_norm']:.2e}  {alpha}  inner={rec['n_inner_iter']} "
          f"krylov={rec['n_linsys_iter']}  t={rec['time']:.2f}s", flush=True)


def minimize_hyperparams(folds: Sequence[Fold], theta0: torch.Tensor, *, solver, method,
                         optimizer, bounds=None, start_grid: Optional[torch.Tensor] = None,
                         holdout: Optional[Fold] = None, n_iter_no_change: int = 10,
                         penalty=None, grid_patience: Optional[int] = None,
                         grid_path_length: Optional[int] = None, grid_solver=None,
                         stall_patience: Optional[int] = None, stall_tol: float = 1e-7,
                         local_radius=None, keep_solution_path: bool = False, n_jobs=None,
                         verbose: int = 0) -> OuterResult:
    """Minimise the fold-averaged outer criterion over ``theta`` by hypergradients.

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
        best of them and ``theta0`` is the starting point. This is the safety net against
        bad starts: the result is never worse than the grid's best point.
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
        prior on the hyperparameters, e.g. shrinkage of many ``log alpha`` toward their
        mean). Without a holdout it also ranks the grid candidates; the reported ``value``
        and the history objective exclude it.
    grid_patience : int or None
        When the grid candidates form a path (ordered along one hyperparameter), stop
        evaluating them once this many in a row have not improved on the best: on a
        unimodal CV curve the rest are worse, and they are often the expensive fits
        (weak penalties). None evaluates them all.
    grid_path_length : int or None
        With ``grid_patience``, the candidates ``[theta0] + start_grid`` are consecutive
        paths of this length (e.g. one path of penalties per ``l1_ratio``), and the patience
        applies within each path. None: one path.
    grid_solver : inner solver or None
        Solver of the grid candidates, typically ``solver`` with a looser tolerance: they
        only rank starting points, and the chosen one is evaluated again by ``solver`` as
        the optimizer's first point. When given, the answer is chosen among the points
        ``solver`` evaluated (the grid's values are approximate), unless there are none.
    stall_patience : int or None
        Stop (as converged) once this many consecutive optimizer evaluations have not
        lowered the best objective by more than ``stall_tol`` relative. For piecewise-smooth
        objectives (Lasso-type CV errors change support at kinks): at a minimum on a kink
        the gradient never vanishes and L-BFGS-B zigzags across it for dozens of
        evaluations that change the objective in its eighth digit. None: never.
    stall_tol : float
        Relative decrease of the objective that counts as progress.
    local_radius : float, array or None
        Confine the optimizer to ``theta_start +- local_radius`` (within ``bounds``): on a
        unimodal curve the minimum lies within one grid step of the best grid point, and
        the box stops L-BFGS-B's early secant steps from overshooting to the far bound of
        a flat CV curve (one wasted, often expensive, evaluation). None: ``bounds`` only.
    keep_solution_path : bool
        Keep every evaluation's fold solutions in ``OuterResult.solution_path`` (the
        coefficient paths of ``LogisticRegressionCV``; memory: evaluations x folds x the
        size of ``w``).
    n_jobs : int or None
        Folds evaluated in parallel through joblib.
    verbose : int
        0 silent, 1 one line per evaluation, 2 also the grid evaluations.

    Returns
    -------
    OuterResult
        ``history`` holds one dict per evaluation: phase, objective, fold_objectives (each
        fold's criterion; ``objective`` is their mean), theta, grad_norm, time,
        n_inner_iter, n_linsys_iter, n_matvec, inner_converged and, with a holdout,
        holdout_objective.
    """
    evaluate = _Evaluator(folds, solver, method, holdout, n_jobs, verbose, keep_solution_path)
    dtype, device = theta0.dtype, theta0.device
    candidates = [theta0] + ([] if start_grid is None else list(start_grid))
    if bounds is not None:  # every point evaluated, hence every answer, lies in the box
        low, high = (torch.as_tensor(np.broadcast_to(b, theta0.shape).copy(), dtype=dtype,
                                     device=device) for b in bounds)
        candidates = [torch.minimum(torch.maximum(c.to(dtype=dtype, device=device), low),
                                    high) for c in candidates]
    if len(candidates) > 1:
        path_length = grid_path_length or len(candidates)
        for k, cand in enumerate(candidates):
            if k % path_length == 0:
                best_value, n_worse = np.inf, 0
            elif grid_patience is not None and n_worse >= grid_patience:
                continue  # the path is past its basin: its remaining points only get worse
            evaluate(cand.to(dtype=dtype, device=device), with_grad=False, phase="grid",
                     solver=grid_solver)
            value = evaluate.history[-1]["objective"]
            if value < best_value:
                best_value, n_worse = value, 0
            elif value > best_value + _GRID_TIE * abs(best_value):
                n_worse += 1
            # else a tie, as on the plateau of penalties that zero every coefficient: it
            # says nothing about which side of the basin the path is on.
        # Start from the candidate the final answer would be: the best on the holdout if
        # there is one, else by the optimizer's own objective (criterion plus penalty).
        best = int(np.argmin([r["holdout_objective"] if holdout is not None else
                              _penalised(r, penalty, dtype, device)
                              for r in evaluate.history]))
        theta_start = torch.as_tensor(evaluate.history[best]["theta"], dtype=dtype,
                                      device=device)
    else:
        theta_start = theta0
    scale = abs(min((r["objective"] for r in evaluate.history), default=0.0)) or 1.0
    progress = {"best": np.inf, "stalled": 0}

    def fun(theta_np):
        theta = torch.as_tensor(theta_np, dtype=dtype, device=device)
        value, grad = evaluate(theta, with_grad=True, phase="optimize")
        if holdout is not None and evaluate.n_stale >= n_iter_no_change:
            raise _Stop(f"early stopping: no holdout improvement in {n_iter_no_change} "
                        f"evaluations")
        if value < progress["best"] - stall_tol * abs(progress["best"]):
            progress["stalled"] = 0
        else:
            progress["stalled"] += 1
        progress["best"] = min(progress["best"], value)
        if stall_patience is not None and progress["stalled"] >= stall_patience:
            raise _Stop(f"no decrease of the objective beyond {stall_tol:g} relative in "
                        f"{stall_patience} evaluations")
        if not np.isfinite(value) or not torch.isfinite(grad).all():
            return np.inf, np.zeros_like(theta_np)
        if penalty is not None:
            p_value, p_grad = penalty(theta)
            value, grad = value + float(p_value), grad + p_grad
        return value / scale, grad.detach().cpu().double().numpy() / scale

    start_np = theta_start.detach().cpu().double().numpy()
    if bounds is not None:
        start_np = np.clip(start_np, bounds[0], bounds[1])
    if local_radius is not None:
        low = start_np - local_radius
        high = start_np + local_radius
        if bounds is not None:
            low, high = np.maximum(low, bounds[0]), np.minimum(high, bounds[1])
        bounds = (low, high)
    # A one-dimensional search can use the grid's values to start and to close brackets.
    run_options = {}
    if getattr(optimizer, "accepts_values", False) and holdout is None and penalty is None:
        run_options["known"] = [(rec["theta"], rec["objective"] / scale)
                                for rec in evaluate.history if rec["phase"] == "grid"]
    try:
        outcome = optimizer.run(fun, start_np, bounds, **run_options)
    except _Stop as stop:
        n_evals = sum(r["phase"] == "optimize" for r in evaluate.history)
        outcome = OptimizeOutcome(start_np, n_evals, True, str(stop))

    # The answer is an evaluated point: the best on the holdout when there is one, else the
    # best of what the optimizer minimised (the criterion plus the penalty, if any).
    def score(rec):
        value = rec["holdout_objective"] if holdout is not None else \
            _penalised(rec, penalty, dtype, device)
        return value if np.isfinite(value) else np.inf

    exact = [rec["phase"] != "grid" or grid_solver is None for rec in evaluate.history]
    grid_best = min((score(rec) for rec, ok in zip(evaluate.history, exact) if not ok),
                    default=np.inf)
    start_solved = any(ok and np.array_equal(rec["theta"], start_np)
                       for rec, ok in zip(evaluate.history, exact))
    if any(exact) and not start_solved and \
            grid_best < min(score(rec) for rec, ok in zip(evaluate.history, exact) if ok):
        # The optimizer never reached the grid's best value (an approximate one): solve
        # that point properly, so the answer is never worse than the grid.
        evaluate(torch.as_tensor(start_np, dtype=dtype, device=device), with_grad=False,
                 phase="optimize")
        exact.append(True)
    if not any(exact):  # no evaluation by ``solver`` (e.g. max_iter=0): the grid decides
        exact = [True] * len(exact)
    best = int(np.argmin([score(rec) if ok else np.inf
                          for rec, ok in zip(evaluate.history, exact)]))
    theta_best = torch.as_tensor(evaluate.history[best]["theta"], dtype=dtype, device=device)
    return OuterResult(theta=theta_best, value=evaluate.history[best]["objective"],
                       n_iter=outcome.n_iter, converged=outcome.converged,
                       message=outcome.message, history=evaluate.history,
                       fold_solutions=[w.w for w in evaluate.warm if w is not None],
                       solution_path=evaluate.solution_path or [])


def _penalised(rec, penalty, dtype, device):
    """A history record's objective plus the penalty at its ``theta``."""
    if penalty is None:
        return rec["objective"]
    theta = torch.as_tensor(rec["theta"], dtype=dtype, device=device)
    return rec["objective"] + float(penalty(theta)[0])
