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

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import enet_path

from .engine import InnerSolution, provides
from .engine.solvers import InnerSolver

# A sparse design is densified for coordinate descent up to this many entries (80 MB).
_DENSIFY_MAX = 10_000_000
# Gram matrix (d x d) precomputed when n > d and d is at most this (d^2 floats of memory).
_GRAM_MAX_FEATURES = 3000


class _CenteredArrays:
    """``X~ = sqrt(n s_i / S) (x_i - x_mean)`` and ``y~`` likewise, Fortran-ordered float64.

    ``1/(2n) ||y~ - X~ w||^2`` is the datafit ``1/(2S) sum_i s_i (y_i - x_i^T w - b)^2``
    after the intercept's elimination, which is the objective ``enet_path`` minimises.
    """

    def __init__(self, datafit):
        design = datafit.design
        X = design.X.detach().cpu()
        X = (X.to_dense() if design.is_sparse else X).to(torch.float64).numpy()
        if design.offset is not None:
            X = X - design.offset.detach().cpu().to(torch.float64).numpy()
        sw = datafit.sample_weight.detach().cpu().to(torch.float64).numpy()
        root = np.sqrt(sw * len(sw) / sw.sum())
        self.X = np.asfortranarray(X * root[:, None])
        self.y = datafit.y.detach().cpu().to(torch.float64).numpy()[:, 0] * root
        n, d = self.X.shape
        self.gram = self.X.T @ self.X if n > d and d <= _GRAM_MAX_FEATURES else None
        self.Xy = self.X.T @ self.y


def _arrays(problem) -> _CenteredArrays:
    cache = problem.__dict__.get("_cd_arrays")
    if cache is None:
        cache = problem.__dict__["_cd_arrays"] = _CenteredArrays(problem.datafit)
    return cache


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
        precompute = gram if gram is not None else False
        with warnings.catch_warnings():
            # Non-convergence is reported through ``converged`` (the estimators warn once,
            # naming themselves), not as scikit-learn's warning from inside the engine.
            warnings.simplefilter("ignore", ConvergenceWarning)
            _, coefs, gaps, n_iters = enet_path(
                X, data.y, l1_ratio=l1_ratio, alphas=[alpha], precompute=precompute,
                Xy=Xy if gram is not None else None, coef_init=coef_init, copy_X=False,
                return_n_iter=True, check_input=False, max_iter=self.max_iter, tol=self.tol)
        coef = coefs[:, 0] if scale is None else coefs[:, 0] / c
        like = problem.init_params()
        w = torch.as_tensor(coef, dtype=like.dtype, device=like.device).reshape(like.shape)
        n_iter = int(n_iters[0])
        # The residual is scikit-learn's duality gap (cheaper than a gradient mapping, which
        # needs the Lipschitz constant: hundreds of products on a wide design).
        residual = float(gaps[0])
        converged = n_iter < self.max_iter and math.isfinite(residual)
        return InnerSolution(w=w, n_iter=n_iter, residual=residual,
                             residual_kind=self.residual_kind, converged=converged)
