"""Least-squares proximal problems solved by scikit-learn's coordinate descent.

An inner solver that the scikit-learn face plugs into the engine: it has the engine's solver
interface (``solve(problem, theta, w0=None, recycle=None) -> InnerSolution``) but lives
outside :mod:`skbilevel.engine`, which never imports scikit-learn.

Implicit differentiation on the support needs only the solution ``w*``, not the path to it,
so any solver may produce it. For the Lasso, the elastic net and the weighted Lasso on a
dense design, the fastest one on a CPU is cyclic coordinate descent (what ``Lasso`` and
``LassoCV`` run): exact zeros, so the support is read off without thresholding, and a warm
start from the previous outer iterate costs a handful of sweeps. This wraps the public
``sklearn.linear_model.enet_path`` on the centred, weight-scaled fold data (cached per
problem, with its Gram matrix when that is cheaper) and returns a torch tensor.
"""

from __future__ import annotations

import math
import warnings
import weakref

import numpy as np
import torch
from sklearn import config_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import enet_path

try:  # the Cython kernel behind enet_path's Gram branch (private: see enet_gram_solve)
    from sklearn.linear_model._cd_fast import enet_coordinate_descent_gram as _cd_gram
except ImportError:  # pragma: no cover - moved in some scikit-learn release
    _cd_gram = None

from .engine import InnerSolution, provides
from .engine.solvers import InnerSolver

# A sparse design is densified for coordinate descent up to this many entries (80 MB).
_DENSIFY_MAX = 10_000_000
# Gram matrix (d x d) precomputed when n > d and d is at most this (d^2 floats of memory).
_GRAM_MAX_FEATURES = 3000
# Working sets (as celer and skglm do) when there is no Gram matrix and at least this many
# features: each sweep of scikit-learn's coordinate descent touches every column, even
# the thousands that stay at zero on a d >> n design.
_WS_MIN_FEATURES = 1000
_WS_MIN_SIZE = 100  # the first working set holds at least this many features
_RNG = np.random.RandomState(0)  # the kernel's rng (it seeds only the random selection)


class _CenteredArrays:
    """``X~ = sqrt(n s_i / S) (x_i - x_mean)`` and ``y~`` likewise, Fortran-ordered float64.

    ``1/(2n) ||y~ - X~ w||^2`` is the datafit ``1/(2S) sum_i s_i (y_i - x_i^T w - b)^2``
    after the intercept's elimination, which is the objective ``enet_path`` minimises.
    """

    def __init__(self, datafit):
        design = datafit.design
        X = design.X.detach().cpu()
        X = (X.to_dense() if design.is_sparse else X).to(torch.float64)
        sw = datafit.sample_weight.detach().cpu().to(torch.float64).numpy()
        root = np.sqrt(sw * len(sw) / sw.sum())
        # Fortran order as the C-ordered transpose: torch's blocked transpose, then the
        # centring in place (numpy's asfortranarray transposes 3-4 times slower).
        Xt = X.t().contiguous()
        if Xt.data_ptr() == X.data_ptr():  # X itself (one row or column): centred in place
            Xt = Xt.clone()
        Xt = Xt.numpy()
        if design.offset is not None:
            Xt -= design.offset.detach().cpu().to(torch.float64).numpy().reshape(-1, 1)
        Xt *= root
        self.X = Xt.T
        self.y = datafit.y.detach().cpu().to(torch.float64).numpy()[:, 0] * root
        n, d = self.X.shape
        self.gram = self.X.T @ self.X if n > d and d <= _GRAM_MAX_FEATURES else None
        self.Xy = self.X.T @ self.y


# Per problem (a fold), for as long as it lives: its centred Fortran-ordered arrays, built
# once for every CoordinateDescent solve of it (grid, search, refit). Kept off the problem,
# which is pickled to joblib's workers (the arrays are a copy of the design).
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _arrays(problem) -> _CenteredArrays:
    cache = _CACHE.get(problem)
    if cache is None:
        cache = _CACHE[problem] = _CenteredArrays(problem.datafit)
    return cache


def _enet(X, y, alpha, l1_ratio, coef_init, gram, Xy, max_iter, tol):
    """``(coef, duality gap, sweeps)`` of ``enet_path`` at one ``alpha`` (Gram matrix
    ``gram`` and ``Xy = X^T y`` when given)."""
    # The arguments are ours, already checked: scikit-learn's parameter validation cost
    # 2 ms a call, more than the coordinate descent on a small Gram matrix.
    with warnings.catch_warnings(), config_context(skip_parameter_validation=True):
        # Non-convergence is reported through ``converged`` (the estimators warn once,
        # naming themselves), not as scikit-learn's warning from inside the engine.
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, coefs, gaps, n_iters = enet_path(
            X, y, l1_ratio=l1_ratio, alphas=[alpha],
            precompute=gram if gram is not None else False,
            Xy=Xy if gram is not None else None, coef_init=coef_init, copy_X=False,
            return_n_iter=True, check_input=False, max_iter=max_iter, tol=tol)
    return coefs[:, 0], float(gaps[0]), int(n_iters[0])


def enet_gram_solve(gram, Xy, y_norm2, alpha, coef_init, *, tol, max_iter):
    """``argmin_u 1/2 u^T gram u - Xy^T u + alpha ||u||_1`` by scikit-learn's coordinate
    descent on the Gram matrix (what ``enet_path(precompute=gram, Xy=Xy)`` runs).

    A Lasso given by its moments only: ``y_norm2`` stands for ``||y||^2`` of the least
    squares behind them, which enters only scikit-learn's duality gap (the stopping test is
    a gap of ``tol * y_norm2``).

    The proximal Newton solver calls this on ~100 x 100 models, where ``enet_path``'s own
    work (input preprocessing, array-API dispatch: ~250 us a call) cost as much as the
    sweeps; so the Cython kernel is called directly, with the arguments ``enet_path``
    passes it (scikit-learn >= 1.6 share its first eleven), and ``enet_path`` stays the
    fallback should the private kernel move or change.
    """
    y = np.array([math.sqrt(y_norm2)])
    coef = np.array(coef_init, dtype=np.float64)  # a copy: the kernel works in place
    gram, Xy = np.ascontiguousarray(gram), np.ascontiguousarray(Xy)
    if _cd_gram is not None:
        try:
            with warnings.catch_warnings():  # non-convergence: see _enet
                warnings.simplefilter("ignore", ConvergenceWarning)
                # l1_reg, l2_reg, Q, q, y, max_iter, tol, rng, random, positive
                return np.asarray(_cd_gram(coef, alpha, 0.0, gram, Xy, y, max_iter, tol,
                                           _RNG, 0, 0)[0])
        except TypeError:  # pragma: no cover - another signature
            pass
    # One row of a placeholder design carries the shapes: the moments are already sums
    # over the samples, so enet_path's ``alpha * n_samples`` is ``alpha``.
    return _enet(np.zeros((1, len(Xy))), y, alpha, 1.0, coef, gram, Xy, max_iter, tol)[0]


class CoordinateDescent(InnerSolver):
    """Cyclic coordinate descent (scikit-learn's) for least squares plus an L1-type penalty.

    Serves ``ProximalProblem.least_squares`` with ``L1``, ``ElasticNet`` or ``WeightedL1``
    (the weighted Lasso as a Lasso on rescaled columns), on a dense design (or a small
    sparse one, densified), computed on the CPU in
    float64 and returned on the problem's device and dtype. It does not propagate
    derivative iterates, so it pairs with implicit differentiation
    (:class:`~skbilevel.engine.hypergrad.ImplicitSupport`), not with forward or reverse
    mode.

    Parameters
    ----------
    max_iter : int, default=10000
        Coordinate sweeps per solve.
    tol : float, default=1e-10
        scikit-learn's tolerance: the duality gap relative to ``||y~||^2 / n``.

    Attributes
    ----------
    residual_kind : str
        ``"duality_gap"``: scikit-learn's, of the objective (not relative).
    """

    residual_kind = "duality_gap"

    def __init__(self, max_iter=10000, tol=1e-10):
        if int(max_iter) < 1 or not tol >= 0:
            raise ValueError(f"need max_iter >= 1 and tol >= 0, got {max_iter}, {tol}")
        self.max_iter, self.tol = int(max_iter), float(tol)

    @staticmethod
    def supports(problem) -> bool:
        """Whether ``problem`` is a least-squares problem with an ElasticNet-form penalty
        and a design that may be held dense (centring densifies a sparse one, so large
        sparse designs go to the proximal solvers)."""
        if not (provides(problem, "datafit") and provides(problem.datafit, "xty") and
                provides(problem, "penalty") and provides(problem.penalty, "enet_form")):
            return False
        datafit = problem.datafit
        n, d = datafit.design.shape
        return not datafit.design.is_sparse or n * d <= _DENSIFY_MAX

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta``, warm-started from ``w0``."""
        if not self.supports(problem):
            raise TypeError("CoordinateDescent needs a least-squares ProximalProblem with an "
                            "L1, ElasticNet or WeightedL1 penalty and a design of at most "
                            f"{_DENSIFY_MAX} entries if sparse")
        data = _arrays(problem)
        alpha, l1_ratio, scale = problem.penalty.enet_form(theta.detach())
        X, gram, Xy = data.X, data.gram, data.Xy
        coef_init = None if w0 is None else \
            w0.detach().cpu().to(torch.float64).numpy()[:, 0].copy()
        if scale is not None:  # weighted Lasso: columns X_j / c_j, coefficients v_j = c_j w_j
            c = scale.detach().cpu().to(torch.float64).numpy()
            X = np.asfortranarray(X / c)
            Xy = Xy / c
            gram = None if gram is None else gram / np.outer(c, c)
            coef_init = None if coef_init is None else coef_init * c
        if gram is None and X.shape[1] >= _WS_MIN_FEATURES and alpha * l1_ratio > 0:
            coef, residual, n_iter = self._working_sets(X, data.y, alpha, l1_ratio,
                                                        coef_init, data)
        else:
            coef, residual, n_iter = self._enet(X, data.y, alpha, l1_ratio, coef_init,
                                                gram, Xy)
        coef = coef if scale is None else coef / c
        like = problem.init_params()
        w = torch.as_tensor(coef, dtype=like.dtype, device=like.device).reshape(like.shape)
        converged = n_iter < self.max_iter and math.isfinite(residual)
        return InnerSolution(w=w, n_iter=n_iter, residual=residual,
                             residual_kind=self.residual_kind, converged=converged)

    def _enet(self, X, y, alpha, l1_ratio, coef_init, gram=None, Xy=None, max_iter=None):
        """``(coef, duality gap, sweeps)`` of scikit-learn's coordinate descent; the gap
        is scikit-learn's, the residual of every solve (cheaper than a gradient mapping,
        which needs the Lipschitz constant: hundreds of products on a wide design)."""
        return _enet(X, y, alpha, l1_ratio, coef_init, gram, Xy,
                     self.max_iter if max_iter is None else max_iter, self.tol)

    def _working_sets(self, X, y, alpha, l1_ratio, coef_init, cache):
        """Coordinate descent on a growing working set of columns (celer, skglm).

        Each round solves the problem restricted to the working set ``W`` (the current
        support plus the columns whose correlation with the residual is closest to the
        KKT bound ``n alpha l1_ratio``) to scikit-learn's tolerance, then checks the
        other columns in one pass: when none violates its KKT condition
        ``|x_j^T r| <= n alpha l1_ratio``, the restricted solution solves the full problem
        and scikit-learn's duality gap of the full problem equals the restricted one (its
        dual point is rescaled by the same largest correlation), so the stopping rule and
        the reported residual are those of the plain solve. Otherwise ``W`` doubles, with
        the worst violators first. ``cache`` keeps the last solution and its correlations
        ``X^T r``: a solve warm-started from it (the next point of a path or search)
        skips that pass over ``X``.
        """
        n, d = X.shape
        bound = n * alpha * l1_ratio
        coef = np.zeros(d) if coef_init is None else coef_init
        support = np.flatnonzero(coef)
        last = getattr(cache, "last_solution", None)
        if last is not None and last[0] is X and np.array_equal(last[1], coef):
            corr = last[2]
        else:
            corr = X.T @ (y - X[:, support] @ coef[support])
        score = np.abs(corr) / bound  # > 1: a KKT violation
        size = max(_WS_MIN_SIZE, 2 * len(support))
        sweeps = 0
        while True:
            rank = score.copy()
            rank[support] = np.inf  # the support stays in
            ws = np.sort(np.argpartition(-rank, size - 1)[:size]) if size < d else \
                np.arange(d)
            sub, gap, n_iter = self._enet(np.asfortranarray(X[:, ws]), y, alpha, l1_ratio,
                                          np.ascontiguousarray(coef[ws]),
                                          max_iter=self.max_iter - sweeps)
            sweeps += n_iter
            coef = np.zeros(d)
            coef[ws] = sub
            if len(ws) == d or sweeps >= self.max_iter:
                return coef, gap, sweeps
            corr = X.T @ (y - X[:, ws] @ sub)
            cache.last_solution = (X, coef.copy(), corr)  # a copy: w may be changed
            score = np.abs(corr) / bound
            outside = np.ones(d, bool)
            outside[ws] = False
            if not (score[outside] > 1).any():
                return coef, gap, sweeps
            support = np.flatnonzero(coef)
            size = min(d, max(2 * size, 2 * len(support)))
