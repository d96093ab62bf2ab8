"""``BilevelRidgeCV`` on a ``dask.array``: the folds' moments by one map-reduce pass.

A ridge fold, its validation error and its hypergradient depend on the rows only through
weighted moments (see ``_moments.py``). When the validation blocks partition the rows
(K-fold), the K blocks' moments are all the tuning needs: each chunk of rows, on the
worker that holds it, sums its rows' moments per validation block, a tree of additions
reduces them, and only K sets of ``d x d`` moments come back. The tuning then runs here,
as the in-memory fit's moment path does: training fold = all the rows minus its block.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from sklearn.model_selection import check_cv

from ._moments import RawMoments
from ._ridge_folds import complement_moments, moment_fold, one_shot, ridge_solvers
from ._scaling import history_in_user_units
from ._tuning import history_to_arrays, warn_if_not_converged
from .engine import minimize_hyperparams
from .engine.inner import RidgeProblem
from .engine.outer import make_optimizer

DTYPE = torch.float64


def is_dask_array(a):
    """Whether ``a`` is a ``dask.array.Array`` (without importing dask when it is not)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(a, da.Array)


def _pack(X, Y, w, labels, n_blocks):
    """One chunk's raw moments per validation block, packed in a ``(K, P)`` array."""
    out = []
    for b in range(n_blocks):
        rows = labels == b
        m = RawMoments.of(*(torch.from_numpy(np.ascontiguousarray(a[rows], dtype=np.float64))
                            for a in (X, Y, w)))
        yy = (w[rows, None] * Y[rows] ** 2).sum(0)  # per target: R^2 averages them
        out.append(np.concatenate([np.ravel(f.numpy()) for f in
                                   (m.weight, m.x_sum, m.y_sum, m.xx, m.xy)] + [yy]))
    return np.stack(out) if out else np.zeros((0, 0))


def _unpack(row, d, k):
    sizes = [1, d, k, d * d, d * k, k]
    parts = np.split(row, np.cumsum(sizes)[:-1])
    t = [torch.from_numpy(p.copy()) for p in parts]
    raw = RawMoments(t[0][0], t[1], t[2], t[3].reshape(d, d), t[4].reshape(d, k), t[5].sum())
    return raw, parts[5]


def block_moments(X, Y, sample_weight, labels, n_blocks):
    """Raw moments of each validation block of a row-chunked dask array, in one pass.

    Parameters
    ----------
    X : dask.array of shape (n, d)
    Y : dask.array or ndarray of shape (n, k)
    sample_weight : dask.array or ndarray of shape (n,)
    labels : ndarray of shape (n,) or None
        The validation block of every row, in ``range(n_blocks)``; None: one block, all
        the rows (made on the workers, nothing shipped).

    Returns
    -------
    blocks : list of RawMoments
    yy : ndarray of shape (n_blocks, k)
        ``sum_i s_i y_ij^2`` per block and target.
    """
    import dask
    import dask.array as da

    X = X.rechunk({1: -1})  # whole rows in every chunk
    rows = X.chunks[0]
    if labels is None:
        labels, n_blocks = da.zeros(X.shape[0], chunks=(rows,), dtype=np.int32), 1
    Y, w, labels = (da.asarray(a).rechunk({0: rows}) for a in (Y, sample_weight, labels))
    Y = Y.rechunk({1: -1})
    parts = [dask.delayed(_pack)(x, y, s, b, n_blocks) for x, y, s, b in zip(
        X.to_delayed().ravel(), Y.to_delayed().ravel(), w.to_delayed().ravel(),
        labels.to_delayed().ravel())]
    while len(parts) > 1:  # a binary tree of sums: no worker receives every chunk's part
        parts = [dask.delayed(np.add)(*parts[i:i + 2]) if i + 1 < len(parts) else parts[i]
                 for i in range(0, len(parts), 2)]
    (packed,) = dask.compute(parts[0])
    d, k = X.shape[1], Y.shape[1]
    blocks, yy = zip(*(_unpack(row, d, k) for row in packed))
    return list(blocks), np.stack(yy)


def _check(estimator, X, y, sample_weight, params):
    """Validated ``(Y (n, k), sample weights, validation labels, K)``, or a clear error for
    what the moment path does not do."""
    name = type(estimator).__name__
    unsupported = {"alpha_per_feature": False, "early_stopping": False, "device": "cpu",
                   "dtype": "float64"}
    for param, value in unsupported.items():
        if getattr(estimator, param, value) not in (value, "auto", None) or \
                (param == "alpha_per_feature" and estimator.alpha_per_feature is not False):
            raise ValueError(f"{name} on a dask array needs {param}={value!r}, got "
                             f"{getattr(estimator, param)!r}")
    if estimator.linear_solver not in ("auto", "cholesky"):
        raise ValueError(f"{name} on a dask array fits from the folds' moments: "
                         f"linear_solver must be 'auto' or 'cholesky', got "
                         f"{estimator.linear_solver!r}")
    if params:
        raise ValueError(f"{name} on a dask array takes no fit parameters besides "
                         f"sample_weight (the folds are contiguous blocks of rows), got "
                         f"{sorted(params)}")
    Y, sample_weight = check_dask_data(X, y, sample_weight)
    cv = check_cv(estimator._cv(1))
    # Only the number of rows matters to the splitters accepted here (no y, no groups).
    labels, n_blocks = partition_labels(cv.split(np.empty((X.shape[0], 0))), X.shape,
                                        f"{name} on a dask array", f"cv={cv!r}")
    return Y, sample_weight, labels, n_blocks


def check_dask_data(X, y, sample_weight):
    """``(Y (n, k), sample weights)`` of a 2-D dask ``X`` (dask or numpy ``y`` and
    ``sample_weight``, None: ones made on the workers), or a ValueError naming the
    parameter; nothing is computed."""
    import dask.array as da

    if X.ndim != 2 or np.isnan(X.shape[0]):
        raise ValueError(f"X must be a 2-D dask array with known chunk sizes "
                         f"(X.compute_chunk_sizes()), got shape {X.shape}")
    n = X.shape[0]
    y = y if is_dask_array(y) else np.asarray(y)
    if y.ndim not in (1, 2) or y.shape[0] != n:
        raise ValueError(f"y must have shape (n_samples,) or (n_samples, n_targets) with "
                         f"n_samples={n}, got {y.shape}")
    Y = y.reshape(n, -1) if y.ndim == 1 else y
    if sample_weight is None:
        sample_weight = da.ones(n, chunks=(X.chunks[0],))
    elif not is_dask_array(sample_weight):
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}")
    return Y, sample_weight


def partition_labels(splits, shape, who, what):
    """``(labels (n,), K)``: the validation block of every row, from ``(train, validation)``
    index pairs, or a ValueError (``who`` needs ..., ``what`` names the splitter) unless
    the validation blocks partition the rows, each training fold being the rest."""
    (n, d), labels, n_blocks = shape, np.full(shape[0], -1, dtype=np.int32), 0
    for k, (train, val) in enumerate(splits):
        if len(train) + len(val) != n or np.any(labels[val] >= 0):
            raise ValueError(f"{who} needs folds whose validation blocks partition the "
                             f"rows (cv an int or a KFold), got {what}")
        if len(train) < d:
            raise ValueError(f"each training fold needs at least n_features={d} rows on a "
                             f"dask array, got {len(train)}")
        labels[val], n_blocks = k, k + 1
    if np.any(labels < 0):
        raise ValueError(f"the validation blocks of {what} must cover every row")
    return labels, n_blocks


def fit_dask(estimator, X, y, sample_weight, params, progress):
    """Fit ``estimator`` (a ``BilevelRidgeCV``) on a ``dask.array`` ``X``: its one shared
    ``alpha`` tuned on the folds' moments computed on the cluster, then refitted from the
    moments of all the rows. The same path as the in-memory fit's moment path."""
    from ._ridge import _GRID

    Y, sample_weight, labels, n_blocks = _check(estimator, X, y, sample_weight, params)
    n, d = X.shape
    progress.header(X, n_blocks, 1, "alpha")
    blocks, yy = block_moments(X, Y, sample_weight, labels, n_blocks)
    trains, total = complement_moments(blocks)
    fit_intercept = estimator.fit_intercept
    folds = [moment_fold(train, block, fit_intercept=fit_intercept)
             for train, block in zip(trains, blocks)]
    solver, method = ridge_solvers(estimator.linear_solver, d, DTYPE, estimator.recycle_dim)
    scale = float(total.centred(fit_intercept)["gram"].diagonal().mean()) or 1.0
    bounds = estimator._log_bounds(scale)
    grid = torch.as_tensor(np.log(scale * _GRID), dtype=DTYPE)[:, None]
    theta0 = torch.full((1,), float(np.log(estimator.alpha_init)), dtype=DTYPE)
    progress.grid([theta0.numpy()] + list(grid.numpy()), "alpha_init and grid")
    result = minimize_hyperparams(
        folds, theta0, start_grid=grid, solver=solver, method=method,
        optimizer=make_optimizer("lbfgs" if estimator.optimizer == "auto" else
                                 estimator.optimizer, max_iter=estimator.max_iter,
                                 tol=estimator.tol),
        bounds=bounds, n_iter_no_change=estimator.n_iter_no_change, n_jobs=estimator.n_jobs,
        progress=progress.loop)
    warn_if_not_converged(result, type(estimator).__name__)
    theta = result.theta
    alpha = np.float64(np.exp(float(theta[0])))
    if estimator.alpha_bounds != "auto":
        alpha = np.float64(np.clip(alpha, *estimator._check_bounds()))
    estimator.alpha_ = alpha
    estimator.best_cv_error_ = float(result.value)
    estimator.best_score_ = _cv_r2(folds, blocks, yy, theta, solver)
    estimator.n_iter_ = max(1, result.n_iter)
    estimator.history_ = history_to_arrays(history_in_user_units(result.history, 0.0, 0),
                                           estimator._user_params)
    whole = RidgeProblem.from_moments(**total.centred(fit_intercept))
    estimator._refit(whole, theta, solver, 1 if y.ndim == 1 else 2, np.float64)
    estimator.n_features_in_ = d
    progress.done({"alpha": estimator.alpha_}, estimator.best_cv_error_,
                  estimator.best_score_, estimator.n_iter_)
    return estimator


def _cv_r2(folds, blocks, yy, theta, solver):
    """``best_score_`` as the in-memory fit's: the mean over folds of the validation R^2
    (targets averaged uniformly, as ``r2_score``), from the blocks' moments."""
    scores = []
    for fold, block, yy_b in zip(folds, blocks, yy):
        w = one_shot(solver).solve(fold.problem, theta).w
        c, my = fold.criterion, fold.problem.y_mean
        yy_c = torch.from_numpy(yy_b) - 2.0 * block.y_sum * my + block.weight * my ** 2
        sse = (yy_c - 2.0 * (w * c.xy).sum(0) + (w * (c.xx @ w)).sum(0)).clamp_min(0.0)
        mean = block.y_sum / block.weight
        sst = torch.from_numpy(yy_b) - block.weight * mean ** 2
        r2 = torch.where(sst > 0, 1.0 - sse / sst, torch.where(sse > 0, 0.0, 1.0))
        scores.append(float(r2.mean()))
    return np.float64(np.mean(scores))
