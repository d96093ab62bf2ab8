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
from ..engine.loop import BestEvaluated, FoldEvaluator, GridScreening, OptimizerDriver, OuterLoop
from ..engine.outer import make_optimizer
from ..utils._tensor import to_tensor

DTYPE = torch.float64

# What reports each evaluation of the running tuning path: a factory ``describe ->
# Progress`` (``describe`` names theta in the user's units) or None. A context variable set
# by the search around ``adapter.tune``, so that the adapters' ``tune`` keep one signature
# and a thread tuning another combination keeps its own.
_PROGRESS = ContextVar("skbilevel_search_progress", default=None)


@contextlib.contextmanager
def reporting(progress):
    """Report the evaluations of the tuning paths run in the block through ``progress``
    (``describe -> Progress`` or None, see ``_PROGRESS``)."""
    token = _PROGRESS.set(progress)
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
    """A float64 tensor copy of ``a`` (None stays None); a scipy sparse ``a`` becomes a CSR
    tensor with ``sparse=True`` (for adapters whose problems take one), dense otherwise."""
    if a is None:
        return None
    if sp.issparse(a):
        if sparse:
            return to_tensor(sp.csr_matrix(a, dtype=np.float64, copy=True), DTYPE, "cpu")
        a = a.toarray()
    # A copy: the caller's array may be read-only (torch warns on those) and must not be
    # shared with the engine.
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

        Returns the evaluated points in order, as ``(params, objective, hypergradient)``
        with ``params`` and ``hypergradient`` dicts keyed by parameter name (the
        hypergradient with respect to the log of a log-scale parameter; NaN where the
        point was evaluated without gradients).
        """
        low, high = bounds[self.param]
        path = tune_path(self, estimator, data, low, high, objective, max_iter=max_iter,
                         tol=tol)
        return [({self.param: v}, obj, {self.param: g}) for v, obj, g in path]


def evaluation_progress(describe):
    """The ``Progress`` for a path's ``FoldEvaluator`` under :func:`reporting`, or None;
    ``describe(theta)`` names the point being evaluated."""
    progress = _PROGRESS.get()
    return None if progress is None else progress(describe)


def tune_path(adapter, estimator, data, low, high, objective, *, max_iter, tol):
    """Tune ``adapter.param`` of ``estimator`` on the transformed folds ``data``.

    A screening grid of one point per decade of ``[low, high]`` (at least 5), then a
    bracketing search on the hypergradient within one grid step of the best grid point.
    Returns the evaluated points in order: a list of ``(value, objective, hypergradient)``
    with ``hypergradient`` the derivative of the objective with respect to
    ``log(value)`` (NaN for the screening grid, evaluated without gradients).
    """
    folds = adapter.folds(estimator, data, objective)
    solver, method, grid_solver = adapter.solvers(folds)
    n_grid = max(5, int(np.ceil(np.log10(high / low))) + 1)
    values = np.geomspace(high, low, n_grid) if adapter.param == "alpha" else \
        np.geomspace(low, high, n_grid)  # strong penalty first: cheap fits lead the path
    theta = torch.as_tensor(adapter.to_theta(values), dtype=DTYPE)[:, None]
    box = sorted((float(adapter.to_theta(low)), float(adapter.to_theta(high))))
    step = float(abs(theta[1, 0] - theta[0, 0]))
    grads = []

    def record(grad, theta):  # the signed hypergradient of every optimize-phase record
        grads.append(float(grad[0]))
        return grad

    progress = evaluation_progress(lambda theta: f"{adapter.param}="
                                   f"{float(adapter.from_theta(float(theta[0]))):.4g}")
    evaluator = FoldEvaluator(folds, solver, method, transform=record, progress=progress)
    optimizer = make_optimizer("bracket", max_iter=max_iter, tol=tol, first_step=step / 2)
    loop = OuterLoop(evaluator, OptimizerDriver(optimizer, local_radius=np.array([step])),
                     screening=GridScreening(list(theta), patience=adapter.grid_patience,
                                             solver=grid_solver),
                     selection=BestEvaluated(), bounds=(box[0], box[1]))
    result = loop.run(theta[0])
    out, it = [], iter(grads)
    for rec in result.history:
        value = float(np.clip(adapter.from_theta(float(rec["theta"][0])), low, high))
        grad = next(it, np.nan) if rec["phase"] == "optimize" else np.nan
        out.append((value, float(rec["objective"]), grad * adapter.dtheta()))
    return out
