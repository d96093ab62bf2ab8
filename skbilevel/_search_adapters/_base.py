"""The adapters' shared parts: the fold data, the base class and the one-parameter path.

An adapter knows, for one scikit-learn model family, which continuous parameter it tunes,
how that parameter maps to the engine's ``theta``, which inner problem and held-out
criterion a training / validation pair is, and which inner solver and hypergradient method
solve it. :func:`tune_path` runs the engine's outer loop (a screening grid over the user's
bounds, then a bracketing search on the hypergradient) and returns every evaluated point.

The folds come already transformed by the pipeline prefix fitted on each training fold
(see ``_search.py``), as numpy arrays or scipy CSR matrices; nothing here sees the
pipeline.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

import numpy as np
import scipy.sparse as sp
import torch

from .._tuning import positive_bounds
from ..engine.loop import (BestEvaluated, FoldEvaluator, GridScreening, OptimizerDriver,
                           OuterLoop, Progress)
from ..engine.outer import make_optimizer
from ..utils._tensor import to_tensor

DTYPE = torch.float64

# What receives each evaluation of the running tuning path: ``(progress, on_point)``, where
# ``progress`` is a factory ``(describe, callback) -> Progress`` (``describe`` names theta
# in the user's units) or None, and ``on_point`` is called with every point of the path as
# soon as it is evaluated (the search scores it then) or None. A context variable set by
# the search around ``adapter.tune``, so that the adapters' ``tune`` keep one signature and
# a thread tuning another combination keeps its own.
_PROGRESS = ContextVar("skbilevel_search_progress", default=(None, None))


@contextlib.contextmanager
def reporting(progress, on_point=None):
    """Report the evaluations of the tuning paths run in the block through ``progress``
    (``(describe, callback) -> Progress`` or None) and pass each point of the path, as it
    is evaluated, to ``on_point`` (or None); see ``_PROGRESS``."""
    token = _PROGRESS.set((progress, on_point))
    try:
        yield
    finally:
        _PROGRESS.reset(token)


class FoldData:
    """One training / validation pair after the pipeline prefix (numpy or scipy CSR).

    Parameters
    ----------
    X_train : ndarray, sparse matrix or callable
        Training features, or a function computing them on first access of ``X_train``
        (an adapter that builds its folds from the validation blocks never needs them).
    y_train, sample_weight, X_val, y_val :
        Training targets, the final step's ``sample_weight`` on the training rows (None:
        unweighted), validation features and targets.
    rows : tuple of ndarray, default=None
        ``(train, validation)`` positions of the fold's rows in the search's ``X``, set
        only when the features of a row do not depend on the fold (no prefix, or one that
        learns nothing from the data): the training features are then the validation
        blocks' rows of the other folds, which lets an adapter build every fold from
        per-block quantities.
    val_weight : ndarray, default=None
        The final step's ``sample_weight`` on the validation rows (their weight where they
        train the other folds), with ``rows``.
    """

    def __init__(self, X_train, y_train, sample_weight, X_val, y_val, *, rows=None,
                 val_weight=None):
        self._X_train = X_train
        self.y_train, self.sample_weight = y_train, sample_weight
        self.X_val, self.y_val = X_val, y_val
        self.rows, self.val_weight = rows, val_weight
        # The scorer's sample_weight on the validation rows (None: unweighted scores).
        self.score_weight = None

    @property
    def X_train(self):
        if callable(self._X_train):
            self._X_train = self._X_train()
        return self._X_train


def as_tensor(a, sparse=False):
    """A float64 tensor of a fold's array ``a`` (None stays None); a scipy sparse ``a``
    becomes a CSR tensor with ``sparse=True`` (for adapters whose problems take one), dense
    otherwise.

    A writeable float64 array is shared, not copied: the folds' arrays are the search's own
    (row slices of the data, or the prefix's outputs on them, see ``_search_folds``) and
    the engine never writes into its data. At n = 15,000 the copies of the five folds were
    an eighth of a logistic search's time (fresh pages are slow to touch). Anything else
    (read-only, on which torch warns; another dtype) is copied."""
    if a is None:
        return None
    if sp.issparse(a):
        if sparse:
            return to_tensor(sp.csr_matrix(a, dtype=np.float64, copy=True), DTYPE, "cpu")
        a = a.toarray()
    a = np.asarray(a)
    if a.dtype == np.float64 and a.flags.writeable:
        return torch.from_numpy(a)
    return torch.from_numpy(np.array(a, dtype=np.float64))


class SearchAdapter:
    """One scikit-learn model family as ``HypergradientSearchCV`` tunes it.

    A subclass sets ``estimator_class`` (matched exactly), ``param`` (the continuous
    penalty, always bounded), ``objectives`` (scoring name -> engine criterion name) and
    ``default_objective``, and writes ``check``, ``folds`` and ``solvers`` for
    :func:`tune_path` (and ``to_theta`` / ``from_theta`` / ``dtheta`` when ``theta`` is
    not the log of the penalty). A family with more continuous
    parameters lists them in ``params`` (the penalty first; the others are optional in
    ``param_bounds`` and otherwise keep the estimator's value) and overrides
    ``parse_bounds`` and ``tune``.
    """

    estimator_class = None
    param = None
    objectives: dict = {}
    default_objective = None
    grid_patience = None  # GridScreening's patience (None: screen the whole grid)
    # Where the hypergradient search starts around the screening grid's best point
    # (Bracket's start): the vertex of the parabola through it and its neighbours.
    bracket_start = "parabola"
    # FoldEvaluator's warm_start: "nearest" where the folds' warm starts are solution
    # vectors, so that the search starts from the screened point nearest to it.
    warm_start = "last"

    def polish_tol(self, folds):
        """The relative tolerance to which :func:`tune_path` polishes the best point after
        the search stops at ``tol`` (see there), or None not to: only where an evaluation
        costs little next to scikit-learn's scoring of a point."""
        return None

    @property
    def params(self):
        """The tunable continuous parameters, the penalty first."""
        return (self.param,)

    def check(self, estimator):
        """Raise a ValueError if ``estimator``'s fixed settings are not supported."""

    def to_theta(self, value):
        """The engine's ``theta`` of a penalty value: ``log(value)`` by default."""
        return np.log(value)

    def from_theta(self, theta):
        """The penalty value of ``theta`` (the inverse of :meth:`to_theta`)."""
        return np.exp(theta)

    def dtheta(self):
        """``d theta / d log(value)``: 1 for ``theta = log(value)``."""
        return 1.0

    def parse_bounds(self, name, key, param_bounds):
        """``(low, high)`` of ``param_bounds[key]`` (parameter ``name``): a log-scale box."""
        return positive_bounds(param_bounds, key)

    def tune(self, estimator, data, bounds, objective, *, max_iter, tol):
        """Tune on the transformed folds ``data`` within ``bounds`` (``{name: (low, high)}``).

        Returns the evaluated points in order, as ``(params, objective, hypergradient,
        phase)`` with ``params`` and ``hypergradient`` dicts keyed by parameter name (the
        hypergradient with respect to the log of a log-scale parameter; NaN where the
        point was evaluated without gradients) and ``phase`` ``"grid"`` (the screening
        grid), ``"optimize"`` (the hypergradient search) or ``"polish"`` (see
        :func:`tune_path`). Under :func:`reporting` each point is also passed on as it is
        evaluated.
        """
        low, high = bounds[self.param]
        path = tune_path(self, estimator, data, low, high, objective, max_iter=max_iter,
                         tol=tol, as_point=lambda v, obj, g, phase: (
                             {self.param: v}, obj, {self.param: g}, phase))
        return path


def evaluation_progress(describe, point):
    """The ``Progress`` for a path's ``FoldEvaluator`` under :func:`reporting`, or None.

    ``describe(theta)`` names the point being evaluated; ``point(record)`` turns a record
    of the evaluator's history into the path's point (see :meth:`SearchAdapter.tune`),
    which is passed on as soon as it is recorded.
    """
    progress, on_point = _PROGRESS.get()
    callback = None if on_point is None else (lambda k, record: on_point(point(record)))
    if progress is None:
        return None if callback is None else Progress(0, describe=describe,
                                                      callback=callback)
    return progress(describe, callback)


def tune_path(adapter, estimator, data, low, high, objective, *, max_iter, tol,
              as_point=None):
    """Tune ``adapter.param`` of ``estimator`` on the transformed folds ``data``.

    A screening grid of one point per decade of ``[low, high]`` (at least 5), then a
    bracketing search on the hypergradient within one grid step of the best grid point,
    until the decrease still to be had is below ``tol`` relative. Where evaluations are
    cheap (``adapter.polish_tol(folds)`` not None: closed-form ridge fits), the bracketing
    search then goes on from the best point down to that tolerance, its evaluations of
    phase ``"polish"``: a flat CV curve (many more rows than features) has a decrease of
    ``tol`` left over a wide interval, enough to stop short of a finer grid's best point.

    Returns the evaluated points in order, as ``as_point(value, objective, hypergradient,
    phase)`` (default: that tuple), with ``hypergradient`` the derivative of the objective
    with respect to ``log(value)`` (NaN for the screening grid, evaluated without
    gradients) and ``phase`` ``"grid"``, ``"optimize"`` or ``"polish"``. Under
    :func:`reporting` each point is also passed on as it is evaluated.
    """
    as_point = as_point or (lambda *point: point)
    folds = adapter.folds(estimator, data, objective)
    solver, method, grid_solver = adapter.solvers(folds)
    n_grid = max(5, int(np.ceil(np.log10(high / low))) + 1)
    values = np.geomspace(high, low, n_grid) if adapter.param == "alpha" else \
        np.geomspace(low, high, n_grid)  # strong penalty first: cheap fits lead the path
    theta = torch.as_tensor(adapter.to_theta(values), dtype=DTYPE)[:, None]
    box = sorted((float(adapter.to_theta(low)), float(adapter.to_theta(high))))
    step = float(abs(theta[1, 0] - theta[0, 0]))
    grads = []

    def record(grad, theta):  # the signed hypergradient of every evaluation with one
        grads.append(float(grad[0]))
        return grad

    def point(rec, grad=None):
        """The path's point of a record (``grad``: its hypergradient, by default the last
        one computed, the record's own when it is reported as it is made)."""
        value = float(np.clip(adapter.from_theta(float(rec["theta"][0])), low, high))
        if rec["phase"] == "grid":
            grad = np.nan
        elif grad is None:
            grad = grads[-1]
        return as_point(value, float(rec["objective"]), grad * adapter.dtheta(),
                        rec["phase"])

    progress = evaluation_progress(lambda theta: f"{adapter.param}="
                                   f"{float(adapter.from_theta(float(theta[0]))):.4g}",
                                   point)
    evaluator = FoldEvaluator(folds, solver, method, transform=record, progress=progress,
                              warm_start=adapter.warm_start)
    optimizer = make_optimizer("bracket", max_iter=max_iter, tol=tol, first_step=step / 2,
                               start=adapter.bracket_start)
    loop = OuterLoop(evaluator, OptimizerDriver(optimizer, local_radius=np.array([step])),
                     screening=GridScreening(list(theta), patience=adapter.grid_patience,
                                             solver=grid_solver),
                     selection=BestEvaluated(), bounds=(box[0], box[1]))
    result = loop.run(theta[0])
    polish_tol = adapter.polish_tol(folds)
    start = float(result.theta[0])
    if polish_tol is not None and polish_tol < tol and result.converged and \
            box[0] < start < box[1]:  # converged inside the bounds: polish it
        _polish(evaluator, list(grads), step, box, polish_tol)
    it = iter(grads)
    return [point(rec, None if rec["phase"] == "grid" else next(it, np.nan))
            for rec in evaluator.history]


_POLISH_ITER = 10  # evaluations at most: closed-form ones converge in two to four


def _polish(evaluator, grads, step, box, tol):
    """Resume the bracketing search of :func:`tune_path` from its evaluations (values and
    ``grads``, the hypergradients of the records after the screening grid) until the
    decrease still to be had is below ``tol`` relative, in the same box (one screening
    ``step`` around the grid's best point) and on the same scale; its evaluations are of
    phase ``"polish"``."""
    grid = [r for r in evaluator.history if r["phase"] == "grid"]
    best = min(grid, key=lambda r: r["objective"])
    scale = abs(best["objective"]) or 1.0  # OptimizerDriver's normalisation
    known = [(r["theta"], r["objective"] / scale) for r in grid]
    known += [(r["theta"], r["objective"] / scale, g / scale) for r, g in
              zip([r for r in evaluator.history if r["phase"] != "grid"], grads)]

    def fun(theta):
        value, grad = evaluator(torch.as_tensor(theta, dtype=DTYPE), with_grad=True,
                                phase="polish")
        if not np.isfinite(value) or not bool(grad.isfinite().all()):
            return np.inf, np.zeros_like(theta)
        return value / scale, grad.numpy() / scale

    center = float(best["theta"][0])
    bounds = (np.array([max(box[0], center - step)]), np.array([min(box[1], center + step)]))
    make_optimizer("bracket", max_iter=_POLISH_ITER, tol=tol, first_step=step / 2).run(
        fun, np.array([center]), bounds, known=known)
