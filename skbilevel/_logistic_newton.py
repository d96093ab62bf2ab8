"""Binary L1 logistic regression by proximal Newton on working sets (glmnet, newGLMNET).

An inner solver that the scikit-learn face plugs into the engine, as
:mod:`._coordinate_descent` does for the Lasso: the engine's solver interface, scikit-learn's
coordinate descent inside. Implicit differentiation on the support needs only an exact
solution ``w*`` (exact zeros, the KKT conditions to rounding), not the path to it.

FISTA reaches that solution in thousands of iterations on one-hot designs (0/1 columns, rare
categories: badly conditioned, even in the diagonally scaled variable), and each of them
pays torch's per-operation overhead. A Newton step does not care about the conditioning:
each one minimises the quadratic model of the log-loss plus the L1 penalty, a weighted
Lasso on the working set (the support and the coordinates that violate, or nearly violate,
their KKT condition), which scikit-learn's coordinate descent solves on its Gram matrix in
microseconds per sweep; a backtracking line search on the true objective follows. The KKT
conditions of every coordinate are checked after each step, so a coordinate left out of the
working set that should enter does so at the next one; a handful of steps from a warm
start (the previous ``C`` of the grid or the search) reach the tolerance.
"""

from __future__ import annotations

import math
import weakref
from functools import cached_property

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg.blas import dsyrk
from scipy.special import expit

from ._coordinate_descent import enet_gram_solve
from .engine import InnerSolution, provides
from .engine.inner import L1, LogisticDatafit, Shifted, WeightedL1, scipy_csr_pair
from .engine.solvers import InnerSolver

_MEMORY = 32  # solutions kept per problem as warm starts
_ARMIJO = 1e-4  # sufficient decrease of the line search (of the model's predicted one)
_MIN_STEP = 1e-10  # below this the step is rounding noise: stop and report the residual
# A zero coordinate joins the working set when its gradient reaches this fraction of its
# penalty: those that may enter at this step, without a Gram matrix of every column.
_ENTER = 0.9
# Each Newton model (a Lasso) is solved by coordinate descent to this relative duality gap
# (scikit-learn's tol): rougher solves (1e-4, 1e-6) cost more Newton steps than they save in
# sweeps. An exact solve on the support and signs that coordinate descent finds was tried
# and fails on one-hot designs: when the support holds a whole group of columns (they add
# up to the eliminated intercept's) the model's Hessian there is singular and its
# minimiser not unique.
_SUB_TOL = 1e-8
# Tightened by 1e-3, down to this, where a step fails to halve the KKT residual.
_SUB_TOL_MIN = 1e-16
# Far from the solution the model need not be solved to _SUB_TOL (inexact Newton: a forcing
# term that shrinks with the KKT residual keeps the fast local convergence): its tolerance is
# _LOOSE times the squared residual, between _SUB_TOL and _LOOSE_MAX (and _SUB_TOL for the
# rest of the solve once a loosened step fails to halve the residual). On the one-hot
# benchmark problems (1600 x 120, 4000 x 200) it cuts the sweeps by 27-52 % (1600 x 120
# seed 1: 27,569 -> 13,334) with as many Newton steps (one more in 137 there); 1e4 saved
# a few more sweeps for 10 % more steps.
_LOOSE = 1e3
_LOOSE_MAX = 1e-2
_SUB_MAX_ITER = 1000  # its sweeps (the outer KKT check decides convergence)
# The Gram matrix of a sparse design (one-hot categories: 0/1, a few nonzeros a row) as one
# sparse product ``P h``, where row ``(j, l)`` of ``P`` holds ``x_ij x_il`` (j <= l): its
# ``sum_i r_i (r_i + 1) / 2`` entries (``r_i`` nonzeros in row ``i``) against BLAS's
# ``n k^2 / 2`` flops on ``k`` working columns, each entry of a sparse product costing about
# _PAIR_COST flops (1600 x 120 one-hot: 0.29 ms a Gram matrix, BLAS's dsyrk 0.94 ms).
_PAIR_COST = 20
_PAIR_MAX = 4_000_000  # entries of P (12 bytes each), or BLAS


def _unwrap(penalty):
    """``(penalty, shift)`` without the ``Shifted`` wrapper of scikit-learn's ``C``."""
    if isinstance(penalty, Shifted):
        return penalty.penalty, penalty.shift
    return penalty, 0.0


class _Arrays:
    """The fold's data as float64 numpy on the CPU: ``X`` (dense, or CSR plus a CSC copy
    for column slices), labels, normalised weights (``sum a = 1``) and the diagonal scale of
    the variable (``unit_scale``), in which residuals are measured."""

    def __init__(self, problem):
        datafit = problem.datafit
        X = datafit.design.X.detach().cpu()
        if datafit.design.is_sparse:
            self.X, XT = scipy_csr_pair(X.to(torch.float64).to_sparse_csr())
            self.columns = XT.T  # CSC: X^T's rows are X's columns
        else:
            # Fortran order: the Gram matrix's scaled copy of X keeps it, as BLAS wants it.
            self.X = self.columns = np.asfortranarray(X.to(torch.float64).numpy())
        sign = datafit.loss.sign.detach().cpu().to(torch.float64).numpy()
        self.y = 0.5 * (sign + 1.0)  # the labels in {0, 1}
        self.a = datafit.scaled_weight.detach().cpu().to(torch.float64).numpy()
        self.unit = problem.unit_scale().detach().cpu().to(torch.float64).numpy()[:, 0]
        self.fit_intercept = bool(datafit.fit_intercept)
        self.solved = []  # (log penalties, solution) of the last solves, newest last

    def start(self, key, v0):
        """The warm start at log penalties ``key``: the earlier solution nearest in
        ``key`` (a grid point the search comes back to, a neighbour on the other side),
        unless ``v0`` comes from elsewhere than the last solve, then ``v0``.

        The outer loop hands each fold its last solution; after a search step away from
        the grid's best, the grid's own solution there is a few Newton steps closer.
        """
        if not self.solved or not np.array_equal(v0, self.solved[-1][1]):
            return v0
        return min(self.solved, key=lambda kv: float(np.abs(kv[0] - key).max()))[1]

    @cached_property
    def _pair_product(self):
        """``(P, its entries)`` of :func:`_pair_matrix`, built at the first Gram matrix;
        ``P`` None where it is never cheaper than BLAS, even on every column, or too large
        (it returns all ``d^2`` entries)."""
        A = sp.csr_matrix(self.X)
        r = np.diff(A.indptr)
        entries = int((r * (r + 1) // 2).sum())
        padded = len(r) * (int(r.max()) + 1) ** 2 // 2 if len(r) else 0  # the build's
        never = max(entries, padded, A.shape[1] ** 2) > _PAIR_MAX or \
            2 * _PAIR_COST * entries >= A.shape[0] * A.shape[1] ** 2
        return (None if never else _pair_matrix(A)), entries

    def pairs(self, k):
        """``P`` of :func:`_pair_matrix` where its product costs less than BLAS's on ``k``
        working columns, else None."""
        P, entries = self._pair_product
        if P is None or (not sp.issparse(self.X) and
                         2 * _PAIR_COST * entries >= len(self.y) * k * k):
            return None
        return P

    def remember(self, key, v):
        self.solved = self.solved[-(_MEMORY - 1):] + [(key, v)]


# Per problem (a fold), for as long as it lives: its arrays and the solutions that warm-start
# the next solve. Shared by every LogisticNewtonCD (the grid's, the search's, the refit's),
# so the search starts from the grid's solutions; kept off the problem, which is pickled to
# joblib's workers.
_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _arrays(problem) -> _Arrays:
    cache = _CACHE.get(problem)
    if cache is None:
        cache = _CACHE[problem] = _Arrays(problem)
    return cache


def _loss(a, y, z):
    """``sum_i a_i [log(1 + exp(z_i)) - y_i z_i]``: the mean weighted log-loss."""
    return float(a @ (np.logaddexp(0.0, z) - y * z))


def _pair_matrix(A):
    """``P`` (CSC) of shape ``(d * d, n)`` with ``P[j d + l, i] = x_ij x_il`` for ``j <= l``
    (``A``: the design, CSR with sorted indices), so that ``(P h).reshape(d, d)`` is the
    upper triangle of ``X^T diag(h) X``."""
    n, d = A.shape
    A = A.copy()
    A.sort_indices()
    r = np.diff(A.indptr)
    # Positions (s, t), s <= t, of the pairs of each row's nonzeros, padded to the longest
    # row (one-hot rows all have as many: one per categorical feature), row after row.
    width = int(r.max()) if n else 0
    s_pos, t_pos = np.triu_indices(width)
    keep = t_pos[None, :] < r[:, None]
    first = (A.indptr[:-1, None] + s_pos)[keep]
    second = (A.indptr[:-1, None] + t_pos)[keep]
    # Built as the CSR of P^T (row i: its pairs, in increasing order): no sort.
    indptr = np.concatenate([[0], np.cumsum(r * (r + 1) // 2)])
    PT = sp.csr_matrix((A.data[first] * A.data[second],
                        A.indices[first].astype(np.int64) * d + A.indices[second], indptr),
                       shape=(n, d * d))
    return PT.T  # CSC


def _gram(data, ws, h):
    """``X_W^T diag(h) X_W`` of the working set ``W`` (dense ``(k, k)``, C order)."""
    P = data.pairs(len(ws))
    if P is not None:  # a sparse product: see _PAIR_COST
        d = data.X.shape[1]
        U = (P @ h).reshape(d, d)
        Q = U + U.T
        Q.flat[::d + 1] *= 0.5
        return np.ascontiguousarray(Q[np.ix_(ws, ws)])
    if sp.issparse(data.columns):
        cols = data.columns[:, ws]
        return np.ascontiguousarray((cols.T @ cols.multiply(h[:, None]).tocsc()).toarray())
    # BLAS's symmetric rank-k update (half a general product's work), on all the columns
    # when the working set holds most of them (a column copy costs more than the rest).
    whole = 2 * len(ws) >= data.X.shape[1]
    B = (data.X if whole else data.X[:, ws]) * np.sqrt(h)[:, None]
    U = dsyrk(1.0, B, trans=1)
    Q = U + np.triu(U, 1).T
    return np.ascontiguousarray(Q[np.ix_(ws, ws)]) if whole else Q


class LogisticNewtonCD(InnerSolver):
    """Proximal Newton for binary logistic regression with an L1 or weighted L1 penalty.

    Serves ``ProximalProblem.logistic`` (``LogisticDatafit``) with ``L1`` or ``WeightedL1``
    (bare or ``Shifted``: ``LogisticRegression``'s ``C``), dense or sparse CSR, computed on
    the CPU in float64 and returned on the problem's device and dtype. Each step minimises
    the second-order model of the log-loss plus the penalty on a working set (a weighted
    Lasso with the intercept eliminated, solved by scikit-learn's coordinate descent on its
    Gram matrix), then backtracks on the true objective. It does not propagate derivative
    iterates, so it pairs with implicit differentiation on the support
    (:class:`~skbilevel.engine.hypergrad.ImplicitSupport`), not with forward or reverse
    mode. Multinomial problems are left to FISTA.

    Parameters
    ----------
    max_iter : int, default=100
        Newton steps per solve.
    tol : float, default=1e-10
        Stop when every coordinate's KKT residual, in the diagonally scaled variable (the
        minimum-norm subgradient divided by ``unit_scale``, so that the units of the features
        do not matter; the unpenalised intercept's gradient), is at most ``tol``.

    Attributes
    ----------
    residual_kind : str
        ``"scaled_grad_inf_norm"``: the infinity norm of that minimum-norm subgradient.
    scaled_residual : bool
        True: the residual is measured in the scaled variable, as L-BFGS's is.
    """

    residual_kind = "scaled_grad_inf_norm"
    scaled_residual = True

    def __init__(self, max_iter=100, tol=1e-10):
        if int(max_iter) < 1 or not tol >= 0:
            raise ValueError(f"need max_iter >= 1 and tol >= 0, got {max_iter}, {tol}")
        self.max_iter, self.tol = int(max_iter), float(tol)

    @staticmethod
    def supports(problem) -> bool:
        """Whether ``problem`` is a binary logistic problem with an (optionally shifted)
        ``L1`` or ``WeightedL1`` penalty."""
        if not (provides(problem, "datafit") and provides(problem, "penalty")):
            return False
        return isinstance(problem.datafit, LogisticDatafit) and \
            isinstance(_unwrap(problem.penalty)[0], (L1, WeightedL1))

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta``, warm-started from ``w0``."""
        if not self.supports(problem):
            raise TypeError("LogisticNewtonCD needs a binary logistic ProximalProblem with an "
                            "L1 or WeightedL1 penalty")
        data = _arrays(problem)
        penalty, shift = _unwrap(problem.penalty)
        alpha, _, scale = penalty.enet_form(theta.detach() + shift)
        d = data.X.shape[1]
        lam = np.full(d, alpha) if scale is None else \
            alpha * scale.detach().cpu().to(torch.float64).numpy()
        v = np.zeros(d + int(data.fit_intercept)) if w0 is None else \
            w0.detach().cpu().to(torch.float64).numpy().reshape(-1)
        key = np.log(lam)
        v, residual, n_iter = self._newton(data, lam, data.start(key, v).copy())
        data.remember(key, v)
        like = problem.init_params()
        w = torch.as_tensor(v, dtype=like.dtype, device=like.device).reshape(like.shape)
        return InnerSolution(w=w, n_iter=n_iter, residual=residual,
                             residual_kind=self.residual_kind,
                             converged=residual <= self.tol)

    def _newton(self, data, lam, v):
        """``(v, residual, steps)`` from ``v = [coef, intercept]``."""
        X, y, a, d = data.X, data.y, data.a, data.X.shape[1]
        w, b = v[:d], (v[d] if data.fit_intercept else 0.0)
        z = X @ w + b
        residual, sub_tol, loose, forcing = math.inf, _SUB_TOL, 0.0, True
        for step in range(self.max_iter + 1):
            p = expit(z)
            r = a * (p - y)  # the log-loss's gradient in score space
            g = X.T @ r
            g_b = float(r.sum())
            last, residual = residual, self._kkt(data, w, g, g_b, lam)
            if residual <= self.tol or step == self.max_iter:
                break
            # Newton's convergence stalls on a rough model solve: a loosened one is solved
            # to _SUB_TOL from now on, a _SUB_TOL one tighter.
            if residual > 0.5 * last:
                if loose > sub_tol:
                    forcing = False
                elif sub_tol <= _SUB_TOL_MIN:
                    break
                else:
                    sub_tol *= 1e-3
            ws = np.flatnonzero((w != 0) | (np.abs(g) >= _ENTER * lam))
            h = a * p * expit(-z)  # p (1 - p) without cancellation where p is near 1
            loose = max(sub_tol, min(_LOOSE_MAX, _LOOSE * residual ** 2)) if forcing else \
                sub_tol
            while True:
                dw, db = self._model_step(data, ws, w[ws], z, r, g[ws], g_b, h, lam[ws],
                                          loose)
                step_w = np.zeros(d)
                step_w[ws] = dw
                dz = X @ step_w + db  # no copy of the working set's columns
                t = self._line_search(a, y, z, dz, w[ws], dw, lam[ws],
                                      float(g[ws] @ dw) + g_b * db)
                # No decrease: the model was solved too roughly for this close to the
                # solution (coordinate descent stopped where it started); solve it tighter.
                if t is not None or loose <= _SUB_TOL_MIN:
                    break
                loose *= 1e-3
                sub_tol = min(sub_tol, loose)
            if t is None:  # no decrease above rounding: at the solution to rounding
                break
            w[ws] += t * dw
            b += t * db
            z += t * dz
        v = np.concatenate([w, [b]]) if data.fit_intercept else w
        return v, residual, step

    @staticmethod
    def _kkt(data, w, g, g_b, lam):
        """Infinity norm of the minimum-norm subgradient, per unit of each coordinate."""
        nonzero = w != 0
        viol = np.where(nonzero, np.abs(g + lam * np.sign(w)),
                        np.maximum(np.abs(g) - lam, 0.0)) / data.unit[:len(w)]
        out = float(viol.max()) if len(viol) else 0.0
        if data.fit_intercept:
            out = max(out, abs(g_b) / data.unit[-1])
        return out

    @staticmethod
    def _model_step(data, ws, w_ws, z, r, g_ws, g_b, h, lam_ws, sub_tol):
        """``(dw, db)`` minimising the Newton model plus the penalty on the working set.

        The model ``1/2 D^T H D + g^T D`` in ``D = (dw, db)`` is the weighted least squares
        ``1/2 sum_i h_i (zeta_i - x_i^T u - beta)^2`` in ``u = w + dw`` (the working
        response ``zeta = z - r / h``). The unpenalised ``db`` is eliminated by weighted
        centring (``Q = X^T H X - m m^T / H_bb``), and what is left is a Lasso given by its
        Gram matrix, scikit-learn's ``enet_path(precompute=Q, Xy=q)``; a weighted L1
        penalty is a Lasso on the columns divided by their relative weights.
        """
        k = len(ws)
        H_bb = float(h.sum()) if data.fit_intercept else 1.0
        if k == 0:
            return np.zeros(0), (-g_b / H_bb if data.fit_intercept and H_bb > 0 else 0.0)
        Q = _gram(data, ws, h)
        m = np.asarray(data.columns.T @ h).reshape(-1)[ws]  # H's intercept column
        g_lin = g_ws
        positive = h > 0
        zeta = np.zeros_like(z)
        zeta[positive] = z[positive] - r[positive] / h[positive]
        y2 = float(h @ zeta ** 2)
        if data.fit_intercept and H_bb > 0:
            Q -= np.outer(m, m) / H_bb
            g_lin = g_ws - m * (g_b / H_bb)
            y2 -= float(h @ zeta) ** 2 / H_bb
        q = Q @ w_ws - g_lin
        c = lam_ws / lam_ws.mean()  # relative weights: 1 for a plain L1 penalty
        alpha = float(lam_ws.mean())
        y2 = max(y2, np.finfo(float).tiny)
        Q, q = Q / np.outer(c, c), q / c
        u = enet_gram_solve(Q, q, y2, alpha, w_ws * c, tol=sub_tol,
                            max_iter=_SUB_MAX_ITER) / c
        dw = u - w_ws
        db = -(g_b + float(m @ dw)) / H_bb if data.fit_intercept and H_bb > 0 else 0.0
        return dw, db

    @staticmethod
    def _line_search(a, y, z, dz, w_ws, dw, lam_ws, slope):
        """The largest ``t`` in ``1, 1/2, ...`` with Armijo's decrease of the objective
        along the step (Tseng and Yun's rule: ``slope`` plus the penalty's change), the
        objective's rounding forgiven (near the solution the predicted decrease is below
        it, and the Newton step is right); None if no step of at least ``_MIN_STEP``
        decreases it."""
        pen0 = float(lam_ws @ np.abs(w_ws))
        F0 = _loss(a, y, z) + pen0
        predicted = slope + float(lam_ws @ np.abs(w_ws + dw)) - pen0
        noise = 16 * np.finfo(float).eps * abs(F0)
        if predicted > noise or not bool(np.any(dz)):  # not a descent direction
            return None
        t = 1.0
        while t >= _MIN_STEP:
            F = _loss(a, y, z + t * dz) + float(lam_ws @ np.abs(w_ws + t * dw))
            if F <= F0 + _ARMIJO * t * min(predicted, 0.0) + noise:
                return t
            if predicted > -noise:  # a decrease below rounding: the full step or none
                return None
            t *= 0.5
        return None
