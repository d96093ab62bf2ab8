"""Ridge folds and solvers: one source of truth for BilevelRidgeCV and the search's adapter.

How a cross-validation fold of a ridge model becomes an engine :class:`Fold` (from its
training rows, or from their moments without copying them), which held-out criterion scores
it (the mean squared error, or one minus the R^2), and which inner solver and hypergradient
method solve it. :class:`~skbilevel.BilevelRidgeCV` and ``RidgeAdapter`` (the ridge family
of ``HypergradientSearchCV``) both build their folds here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ._moments import RawMoments
from ._tuning import build_part
from .engine import Fold
from .engine.hypergrad import make_hypergradient
from .engine.inner import RidgeProblem
from .engine.linalg import LINEAR_SOLVERS, make_linear_solver
from .engine.outer import HeldOutMSE, MomentMSE
from .engine.solvers import ClosedFormSolver, make_inner_solver

# Above this many features "auto" goes matrix-free: a d x d Gram and its factorisation stop
# paying for themselves. Sparse X below it gets the Gram from sparse products, so that the
# same data give the same path and alpha_ whatever their container.
MAX_DENSE_FEATURES = 4000
# Sparse X goes matrix-free earlier, once the Gram's eigendecomposition (~d^3) costs more
# than this many passes over its stored entries: warm-started CG needs far fewer along a
# path of alphas. Measured at 1 % density (5 folds, one alpha): d=1000, n=5000 took 1.3 s
# with CG and 3.6 s with the Gram, n=20,000 2.4 s and 4.9 s, and d=2000, n=5000 2.2 s and
# 34 s; d=500, n=5000 (0.8 s and 0.5 s) and d=300, n=20,000 stay on the Gram.
_GRAM_PASSES = 4000
_N_SNAPSHOTS = 10  # solutions carried in the recycle space (inner and adjoint alternate)
# Relative residual of the matrix-free fits and adjoint solves: hypergradients to ~1e-7.
_KRYLOV_RTOL = 1e-8


def ridge_solvers(linear_solver, d, dtype, recycle_dim=20, rtol=_KRYLOV_RTOL, nnz=None):
    """Resolve ``linear_solver`` (see ``BilevelRidgeCV``) into an inner solver and a
    hypergradient method for ``d`` features in ``dtype``; ``nnz`` is the number of stored
    entries of a sparse ``X`` (None: dense ``X``), ``rtol`` the relative residual of the
    matrix-free solves."""
    name = linear_solver
    if name == "auto":
        # Recycled MINRES: its space and snapshots are re-paired for free along the
        # path of alphas, which saves dense X's costly products. A sparse X's products
        # are cheaper than recycling's orthogonalisations: plain CG, warm-started, took
        # 11 s where recycled MINRES took 22 s at n=50,000, d=20,000, 0.1 % density
        # (benchmarks/results/sparse_ridge.md).
        if nnz is None:
            name = "cholesky" if d <= MAX_DENSE_FEATURES else "recycled_minres"
        else:
            gram = d <= MAX_DENSE_FEATURES and float(d) ** 3 <= _GRAM_PASSES * max(nnz, 1)
            name = "cholesky" if gram else "cg"
    if name == "cholesky":  # the adjoint solves reuse the exact solve's factorisation
        return make_inner_solver("closed_form"), make_hypergradient("implicit")
    # float32 cannot resolve residuals of 1e-8: stop a few orders above its epsilon.
    # Snapshots of the last solutions (recycled MINRES): their pairing follows the
    # Hessian's diagonal shift for free, and they halve the Krylov iterations on the
    # sparse benchmark. Consecutive solutions are nearly parallel: in float32
    # orthonormalising them loses the accuracy of C = H U that deflation relies on, so
    # none are kept.
    linear = build_part(
        make_linear_solver, LINEAR_SOLVERS, name,
        rtol=max(rtol, 100 * torch.finfo(dtype).eps), recycle_dim=recycle_dim,
        n_snapshots=_N_SNAPSHOTS if dtype == torch.float64 else 0)
    # One Krylov method for the fit and the adjoint system: they share the Hessian, so
    # a recycling solver carries one space through both and across outer iterations.
    return (make_inner_solver("krylov", linear_solver=linear),
            make_hypergradient("implicit", linear_solver=linear))


def uses_moments(solver):
    """Whether folds for ``solver`` are worth building from moments (a d x d Gram)."""
    return isinstance(solver, ClosedFormSolver)


def one_shot(solver):
    """The solver for a single solve: a Cholesky factor beats an eigendecomposition."""
    return ClosedFormSolver("cholesky") if isinstance(solver, ClosedFormSolver) else solver


def ridge_fold(val, train, *, n_train, moments=None, fit_intercept=True, groups=None,
               objective="mse"):
    """One cross-validation fold: the ridge problem of its training rows and its criterion.

    Parameters
    ----------
    val : tuple of (X, Y, sample_weight or None)
        Validation tensors (``X`` dense or sparse CSR, ``Y`` 2-D).
    train : callable
        Returns the training tensors ``(X, Y, sample_weight or None)``; called only when
        the rows are needed: without ``moments``, or with fewer rows than features (then
        the data stay, for the thin SVD of a shared ``alpha``).
    n_train : int
        Number of training rows.
    moments : RawMoments or None
        Raw moments of the (weighted) training rows: the fold is built from them without
        copying the rows.
    fit_intercept : bool
    groups : torch.Tensor or None
        Feature -> hyperparameter map of the problem (None: one ``alpha``).
    objective : {"mse", "r2"}
        ``"mse"``: the (weighted) validation mean squared error. ``"r2"``: the squared
        error divided by the validation fold's total sum of squares, i.e. one minus the
        fold's R^2 (pooled over the targets; weighted as ``r2_score`` is).
    """
    X_val, Y_val, w_val = val
    d = X_val.shape[1]
    if moments is not None and n_train >= d:
        problem = RidgeProblem.from_moments(**moments.centred(fit_intercept), groups=groups)
    else:
        gram = None if moments is None else moments.centred(fit_intercept)["gram"]
        problem = RidgeProblem(*train(), groups=groups, fit_intercept=fit_intercept,
                               gram=gram)
    criterion = HeldOutMSE.for_problem(problem, X_val, Y_val, w_val)
    total = None
    if objective == "r2":
        w = torch.ones_like(Y_val[:, 0]) if w_val is None else w_val
        centred = Y_val - (w[:, None] * Y_val).sum(0) / w.sum()
        total = float((w[:, None] * centred ** 2).sum())
    _set_objective(criterion, objective, total)
    return Fold(problem, criterion)


def moment_fold(train, val, *, fit_intercept=True, objective="mse"):
    """One cross-validation fold from moments only: the ridge problem of the training
    rows' ``RawMoments`` ``train``, scored on the validation rows' ``val`` (the same
    criterion as :func:`ridge_fold`'s, expanded in the moments: see ``MomentMSE``)."""
    problem = RidgeProblem.from_moments(**train.centred(fit_intercept))
    criterion = MomentMSE.for_problem(problem, *val._fields())
    # The weighted total sum of squares, pooled over the targets (as ridge_fold's).
    total = float(val.yy - (val.y_sum ** 2).sum() / val.weight) if objective == "r2" \
        else None
    _set_objective(criterion, objective, total)
    return Fold(problem, criterion)


def _set_objective(criterion, objective, total):
    """Check ``objective``; for ``"r2"`` (with the validation fold's total sum of squares
    ``total``) value = scale * SSE with scale = 1 / SST, i.e. 1 - R^2 per fold."""
    if objective not in ("mse", "r2"):
        raise ValueError(f"objective must be 'mse' or 'r2', got {objective!r}")
    if total is not None:
        criterion.scale = 1.0 / (total if total > 0 else 1.0)


def solve_from_moments(raw, alpha, fit_intercept):
    """The ridge fit of the rows whose ``RawMoments`` are ``raw`` at one ``alpha``
    (Cholesky of the centred Gram): ``(coef (d, k), intercept (k,))`` tensors."""
    problem = RidgeProblem.from_moments(**raw.centred(fit_intercept))
    theta = torch.full((1,), float(np.log(alpha)), dtype=problem.gram.dtype)
    w = one_shot(make_inner_solver("closed_form")).solve(problem, theta).w
    return w, problem.intercept(w)


def block_moments(X, Y, sample_weight, to_tensor):
    """Raw moments of one block of rows (``X`` numpy or scipy sparse, ``Y`` 2-D numpy,
    ``sample_weight`` numpy or None for ones)."""
    if sample_weight is None:
        sample_weight = np.ones(X.shape[0])
    if sp.issparse(X):
        return RawMoments.of_sparse(X, Y, sample_weight, to_tensor)
    return RawMoments.of(to_tensor(X), to_tensor(Y), to_tensor(sample_weight))


def complement_moments(blocks):
    """Moments of every training fold, ``total - block``, from the blocks of a partition
    into validation folds; and the total."""
    total = blocks[0]
    for block in blocks[1:]:
        total = total + block
    return [total - block for block in blocks], total


def gram_scale(X, sample_weight, fit_intercept):
    """Mean diagonal of the centred weighted Gram: the natural unit of alpha."""
    if sp.issparse(X):  # squares of the stored entries: X.multiply(X) took 0.1-0.4 s
        X = sp.csr_matrix(X)
        if not X.has_canonical_format:  # duplicates: the square of their sum
            X = X.copy()
            X.sum_duplicates()
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        col_sq = np.bincount(X.indices, weights=sample_weight[rows] * X.data ** 2,
                             minlength=X.shape[1])
    else:
        col_sq = np.asarray((X ** 2).T @ sample_weight).ravel()
    if fit_intercept:
        mean = np.asarray(X.T @ sample_weight).ravel() / sample_weight.sum()
        col_sq = col_sq - sample_weight.sum() * mean ** 2
    scale = float(np.mean(np.maximum(col_sq, 0.0)))
    return scale if scale > 0 else 1.0
