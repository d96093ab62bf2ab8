"""The fold evaluator: ``theta`` -> mean criterion and hypergradient over the folds."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs

from .._capabilities import provides
from .._results import WarmStart
from .._torch import limit_torch_threads
from ._progress import Progress
from ._transforms import as_transform


@dataclass(frozen=True)
class Fold:
    """One train/validation pair: an inner problem and the criterion that scores it."""

    problem: Any
    criterion: Any


class _ValueWithheld:
    """A criterion whose value is never computed: a method that asks gets NaN.

    Private tuning may only use what it pays for (noised hypergradients); withholding the
    value at the source makes "no value evaluation" a property of the evaluator rather
    than a promise of every part that reads the history.
    """

    def __init__(self, criterion):
        self.criterion = criterion

    def value(self, w):
        return torch.tensor(float("nan"))

    def grad_w(self, w):
        return self.criterion.grad_w(w)

    def grad_theta(self, w, theta):
        return self.criterion.grad_theta(w, theta)


class FoldEvaluator:
    """Evaluates the fold-averaged outer objective, keeping each fold's warm start.

    One call solves every fold's inner problem at ``theta`` (warm-started from the
    fold's previous call, or from its nearest one), asks the hypergradient method for
    the fold's criterion and hypergradient, averages them and appends one record to :attr:`history`.

    Parameters
    ----------
    folds : sequence of Fold
        The objective is the mean of their criteria.
    solver : inner solver
        Default inner solver of the folds (a call may pass another, e.g. a looser one).
    method : hypergradient method
        Has ``compute(problem, criterion, theta, solver=, warm_start=, with_grad=)``.
    holdout : Fold or None
        A split scored at every call (values only) but kept out of the objective; its
        criterion is recorded as ``holdout_objective`` for the stopping and selection
        parts to read.
    transform : GradientTransform, callable or None
        Gradient transform (clipping, calibrated noise; see :class:`GradientTransform`).
        With ``per_fold`` true it receives the ``(n_folds, n_hyper)`` stack of fold
        hypergradients before they are averaged, otherwise the averaged ``(n_hyper,)``
        gradient; a plain callable ``(grad, theta) -> grad`` acts on the average.
    reveal_values : bool
        False withholds the criterion's value from the methods (they compute none, the
        records hold NaN): the evaluator then reads the validation data only through
        hypergradients.
    keep_solutions : bool
        Keep every call's fold solutions in :attr:`solution_path`.
    n_jobs : int or None
        Folds evaluated in parallel through joblib (threads). The calling thread's torch
        threads are divided among the workers (see :func:`limit_torch_threads`).
    warm_start : {"last", "nearest"}
        Where each call's fold solves start: ``"last"``, the folds' state after the
        previous call; ``"nearest"``, the solutions (and adjoints) of the past call whose
        ``theta`` is nearest (Euclidean; the latest among equals) or, where ``theta``
        projects between the two nearest, the solutions interpolated linearly between
        theirs (a secant along the solution path); the rest of the state (a Krylov
        recycle space) stays the previous call's. After a screening path, the first
        search point lies between the path's best point and a neighbour, up to a grid
        step from the path's last point. The solutions of at most ``max_warm_starts``
        past calls are kept (the oldest are dropped), one per fold: use it where they
        are vectors of the problem's size, not where a call's state is large.
    max_warm_starts : int
        With ``warm_start="nearest"``, how many past calls' solutions are kept.
    verbose : int
        Without ``progress``: 0 silent, 1 one line per call (see :class:`Progress`), 2
        with the hypergradient norm and iteration counts.
    progress : Progress or None
        Reports every record as soon as it is made (takes precedence over ``verbose``).
    """

    def __init__(self, folds, solver, method, *, holdout: Optional[Fold] = None,
                 transform=None, reveal_values=True, keep_solutions=False, n_jobs=None,
                 warm_start="last", max_warm_starts=64, verbose=0,
                 progress: Optional[Progress] = None):
        if warm_start not in ("last", "nearest"):
            raise ValueError(f"warm_start must be 'last' or 'nearest', got {warm_start!r}")
        if int(max_warm_starts) < 1:
            raise ValueError(f"max_warm_starts must be >= 1, got {max_warm_starts!r}")
        if holdout is not None and not reveal_values:
            raise ValueError("a holdout is scored by its value: it cannot be combined with "
                             "reveal_values=False")
        self.folds = [f if reveal_values else Fold(f.problem, _ValueWithheld(f.criterion))
                      for f in folds]
        self.solver, self.method, self.holdout = solver, method, holdout
        self.transform = None if transform is None else as_transform(transform)
        self.reveal_values = reveal_values
        self.n_jobs = n_jobs
        self.progress = Progress(verbose) if progress is None and verbose else progress
        self.solution_path = [] if keep_solutions else None
        self.warm = [None] * len(self.folds)
        self.warm_start, self.max_warm_starts = warm_start, int(max_warm_starts)
        self._past = []  # (theta, [(w, adjoint, jacobian) per fold]) of past calls
        self.holdout_warm = None
        self.history = []
        self.start = time.perf_counter()

    def _starts(self, theta):
        """The folds' warm starts of a call at ``theta`` (see ``warm_start``)."""
        if self.warm_start == "last" or not self._past:
            return self.warm
        point = theta.detach().cpu().numpy().ravel()
        # reversed + stable sort: the latest of equally near calls first (the last one's
        # recycle space and Hessian pairing then match its solutions).
        near = sorted(reversed(self._past),
                      key=lambda entry: float(np.linalg.norm(entry[0] - point)))
        (theta1, kept), weight = near[0], 0.0
        if len(near) > 1:  # between the two nearest: a secant start along the path
            step = near[1][0] - theta1
            weight = float(np.dot(point - theta1, step) / max(np.dot(step, step), 1e-300))
        if not 0.0 < weight < 1.0:  # not between them: the nearest's solutions as they are
            return [replace(warm or WarmStart(), w=w, adjoint=adjoint, jacobian=jacobian)
                    for warm, (w, adjoint, jacobian) in zip(self.warm, kept)]
        return [replace(warm or WarmStart(), w=w + weight * (w2 - w), adjoint=adjoint,
                        jacobian=jacobian)
                for warm, (w, adjoint, jacobian), (w2, _, _) in zip(self.warm, kept,
                                                                    near[1][1])]

    def _keep(self, theta):
        if self.warm_start == "nearest":
            self._past.append((theta.detach().cpu().numpy().ravel().copy(),
                               [(w.w, w.adjoint, w.jacobian) for w in self.warm]))
            del self._past[:-self.max_warm_starts]

    def _map(self, theta, with_grad, solver):
        starts = self._starts(theta)

        def one(i, fold):
            return self.method.compute(fold.problem, fold.criterion, theta, solver=solver,
                                       warm_start=starts[i], with_grad=with_grad)

        jobs = list(enumerate(self.folds))
        if self.n_jobs in (None, 1) or len(jobs) == 1:
            return [one(i, f) for i, f in jobs]
        # Threads: torch releases the GIL in its kernels and the folds share the device; a
        # joblib backend configured by the user (e.g. dask) takes precedence over the hint.
        # The caller's torch threads are shared out among the workers (each limited in its
        # own thread only): a worker at the full count would oversubscribe the cores.
        share = max(1, torch.get_num_threads() // min(effective_n_jobs(self.n_jobs), len(jobs)))

        def limited(i, fold):
            with limit_torch_threads(share):
                return one(i, fold)

        return Parallel(n_jobs=self.n_jobs, prefer="threads")(delayed(limited)(i, f)
                                                              for i, f in jobs)

    def _gradient(self, results, theta):
        grads = torch.stack([r.grad for r in results])
        per_fold = self.transform is not None and self.transform.per_fold
        if per_fold:
            grads = self.transform(grads, theta)
        grad = grads.mean(0)
        if self.transform is not None and not per_fold:
            grad = self.transform(grad, theta)
        return grad

    def _fold_values(self, results):
        """Each fold's criterion; a criterion of several folds solved as one problem (one
        with ``fold_values``, see ``HeldOutStackedLogLoss``) gives one value per fold."""
        values = []
        for fold, r in zip(self.folds, results):
            if provides(fold.criterion, "fold_values"):
                values.extend(float(v) for v in fold.criterion.fold_values(r.w).detach())
            else:
                values.append(float(r.value))
        return np.array(values)

    def __call__(self, theta: torch.Tensor, with_grad: bool, phase: str, solver=None):
        """Return ``(value, grad)`` at ``theta`` (``grad`` None without ``with_grad``;
        ``value`` NaN when values are withheld) and record the call in :attr:`history`."""
        solver = self.solver if solver is None else solver
        results = self._map(theta, with_grad, solver)
        self.warm = [r.warm_start for r in results]
        self._keep(theta)
        value = float(np.mean([r.value for r in results]))
        grad = self._gradient(results, theta) if with_grad else None
        record = {
            "phase": phase,
            "objective": value,
            "fold_objectives": self._fold_values(results),
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
        self.history.append(record)
        if self.solution_path is not None:
            self.solution_path.append([r.w.detach() for r in results])
        if self.progress is not None:
            self.progress.report(record)
        return value, grad

    @property
    def fold_solutions(self):
        """The folds' inner solutions at the last call (warm starts of a refit)."""
        return [w.w for w in self.warm if w is not None]

