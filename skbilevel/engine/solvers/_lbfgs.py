"""L-BFGS for smooth inner problems (a datafit plus an L2 penalty)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from .._capabilities import check, value_and_grad
from .._results import InnerSolution
from ._lbfgs_preconditioners import factor_solve, pairs_preconditioner
from ._solver import InnerSolver

_NEWTON_HANDOFF = 1e4  # L-BFGS's tolerance, relative to tol, before the Newton steps


class _Reached(Exception):
    """Raised from the objective once the stopping rule holds (the sketched variable's
    gradient is not the one the rule measures, so scipy's own ``gtol`` cannot stop it)."""

    def __init__(self, w, grad_max):
        super().__init__()
        self.w, self.grad_max = w, grad_max


def _jacobi_scale(problem, found, theta, like):
    """``sqrt(variable_scale^2 + penalty Hessian diagonal) / median(variable_scale)``
    shaped like ``like``; ones for problems without ``variable_scale`` (``found``: the
    optional methods the problem provides). Dividing by the median keeps well-scaled
    problems (standardised features) at a scale near 1, where scipy's first step (a unit
    step along the gradient) is what it was unscaled."""
    scale = problem.variable_scale() if "variable_scale" in found else None
    if scale is None:
        return torch.ones_like(like)
    scale = scale.reshape(like.shape)
    unit = scale.median()
    squared = scale ** 2
    if "penalty_hessian_diag" in found:
        squared = squared + problem.penalty_hessian_diag(like, theta).reshape(like.shape)
    return torch.sqrt(squared) / unit


class LBFGS(InnerSolver):
    """L-BFGS (scipy's L-BFGS-B, what scikit-learn's ``lbfgs`` solver runs) for smooth
    problems, with values and gradients computed in torch on the problem's device.

    The inner solver of the L2-penalised logistic tuning: on a strongly convex smooth
    objective it needs far fewer gradient evaluations than proximal gradient, and it
    warm-starts from the previous outer iterate. The problem's objective must be
    differentiable (``problem.smooth``: for a
    :class:`~skbilevel.engine.inner.ProximalProblem`, an ``L2`` penalty, shared or per
    feature). Each evaluation moves one vector between the device and the host; the
    Fortran loop itself costs nothing next to the data passes.

    When the problem gives the scale of its variable (``problem.variable_scale()``, the
    square root of the datafit Hessian's diagonal at 0, for the logistic datafits),
    L-BFGS runs in ``x = scale * w`` with ``scale = sqrt(variable_scale^2 + penalty
    Hessian diagonal)``, divided by the median of ``variable_scale``, and stops on the
    gradient in ``x``, ``grad / scale``: a diagonal (Jacobi) preconditioner. The
    minimiser is the same, but neither the iterations nor the stopping rule depend on the
    units of the features (a feature in units a million times larger otherwise dominates
    ``||grad||_inf``), and ``||grad / scale||`` measures the distance to the optimum in
    objective (``f - f* ~ ||grad / scale||^2 / 2``).

    Parameters
    ----------
    max_iter : int, default=1000
        Iterations (each one or more gradient evaluations).
    tol : float, default=1e-10
        Stop when ``||grad / scale||_inf <= tol`` (scipy's ``pgtol``; ``scale`` is 1 for
        problems without ``variable_scale``).
    history_size : int, default=10
        Number of correction pairs (scipy's ``maxcor``).
    polish_max : int, default=500
        With at most this many variables, a few Newton steps on the dense Hessian finish a
        solve that L-BFGS left above ``tol`` (its line search gives up at rounding level
        on ill-conditioned problems, e.g. a large ``C`` on separable data).
    newton_max : int, default=64
        With at most this many variables, L-BFGS stops at ``1e4 * tol`` and Newton steps
        take it to ``tol`` (quadratic convergence; L-BFGS resumes if they stall).
    sketch_max : int, default=500
        With more than ``newton_max`` and at most this many variables, and a problem that
        estimates its Hessian from a subset of its rows (``hessian_sketch``: a dense
        logistic design), L-BFGS runs in ``x = R w`` instead, ``R^T R`` the Cholesky
        factorisation of that estimate at ``w0`` plus the penalty's Hessian: in ``x`` the
        objective is nearly isotropic, and a warm-started solve takes 5-10 gradient
        evaluations where the diagonal scaling takes 15-35 (80,000 x 200 folds). The
        stopping rule stays ``||grad / scale||_inf <= tol``. The factor is kept on the
        solution (``InnerSolution.preconditioner``) for the adjoint solve.
    sketch_rows : int, default=50
        Rows of the sketch per variable, at most (all the rows of a smaller design): its
        relative error is about ``sqrt(1 / sketch_rows)``.
    sketch_passes : float, default=8.0
        What the sketch may cost, in passes over the data (``problem.n_samples`` rows): it
        takes ``m p^2`` multiply-adds from ``m`` rows and ``p`` variables, which a matrix
        product runs about 8 times faster per operation than the memory-bound ``n p`` of a
        pass, so ``m <= 8 sketch_passes n / p`` (and at least ``2 p``). A small design
        gets a coarse sketch (2,500 rows of 8,000 at 201 variables), a large one the
        ``sketch_rows`` cap (10,050 of 80,000). 4 and 16 took 15 % and 6 % longer than 8
        at 8,000 x 200.
    max_line_search : int, default=20
        Evaluations per line search (scipy's ``maxls``); one that runs out clears
        L-BFGS's memory, and one that runs out with the memory empty ends the solve. A
        few suit values computed in float32, whose rounding stalls line searches near the
        solution: the solve then ends in a few evaluations instead of dozens.

    Attributes
    ----------
    requires : tuple of str
        ``init_params``, ``objective``, ``grad`` (a declared ``value_and_grad`` is used
        when present) and the flag ``smooth``.
    optional : tuple of str
        ``variable_scale`` (the Jacobi scaling above), and ``smooth_hvp`` with
        ``penalty_hessian_diag`` (the Newton steps; both are needed); ``support_hessian``
        forms their Hessian in one product where the problem can (a dense design);
        ``hessian_sketch`` (with ``penalty_hessian_diag``) the sketched variable;
        ``independent_blocks``, the Hessian's independent diagonal blocks (folds solved
        side by side), whose size ``sketch_max`` then bounds.
    residual_kind : str
        ``"scaled_grad_inf_norm"``: ``||grad / scale||_inf``.
    scaled_residual : bool
        True: ``tol`` is in the units of ``x``.
    """

    requires = ("init_params", "objective", "grad", "smooth")
    optional = ("variable_scale", "smooth_hvp", "penalty_hessian_diag", "support_hessian",
                "hessian_sketch", "independent_blocks")
    residual_kind = "scaled_grad_inf_norm"
    scaled_residual = True

    @classmethod
    def supports(cls, problem) -> bool:
        """Whether ``problem`` provides :attr:`requires` and its objective is smooth."""
        return super().supports(problem) and bool(problem.smooth)

    def __init__(self, max_iter=1000, tol=1e-10, history_size=10, polish_max=500,
                 newton_max=64, sketch_max=500, sketch_rows=50, sketch_passes=8.0,
                 max_line_search=20):
        if int(max_line_search) < 1:
            raise ValueError(f"max_line_search must be >= 1, got {max_line_search}")
        self.max_line_search = int(max_line_search)
        self.polish_max, self.newton_max = int(polish_max), int(newton_max)
        self.sketch_max, self.sketch_rows = int(sketch_max), int(sketch_rows)
        self.sketch_passes = float(sketch_passes)
        if int(max_iter) < 1 or not tol >= 0 or int(history_size) < 1:
            raise ValueError(f"need max_iter >= 1, tol >= 0 and history_size >= 1, got "
                             f"{max_iter}, {tol}, {history_size}")
        self.max_iter, self.tol, self.history_size = int(max_iter), float(tol), \
            int(history_size)

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta`` from ``w0`` (``recycle`` is ignored)."""
        found = self._check(problem)
        evaluate = value_and_grad(problem)
        theta = theta.detach()
        like = problem.init_params() if w0 is None else w0.detach()
        scale = _jacobi_scale(problem, found, theta, like)
        scale_np = scale.detach().cpu().double().numpy().ravel()
        # With few variables a Newton step costs a handful of gradients, and from a
        # moderately accurate point two or three of them reach any tolerance, where
        # L-BFGS's linear rate needs dozens of evaluations: hand over early.
        can_newton = {"smooth_hvp", "penalty_hessian_diag"} <= found
        newton = like.numel() <= self.newton_max and can_newton
        factor, start, start_max, pairs = None, None, np.inf, (None, None)
        # A Hessian of independent blocks (folds side by side) is sketched block by block:
        # its size is a block's.
        p = like.numel() // (int(problem.independent_blocks) if "independent_blocks" in found
                             else 1)
        if not newton and p <= self.sketch_max and \
                {"hessian_sketch", "penalty_hessian_diag"} <= found:
            # The sketch only once the warm start is known not to be a solution already
            # (the folds' solutions at the chosen point are checked this way).
            start = evaluate(like, theta)
            start_max = float((start[1] / scale).abs().max())
            if start_max > self.tol:
                factor = self._sketch_factor(problem, like, theta, p)
        if factor is not None:
            w, grad_max, n_iter, n_eval, success = self._sketched(
                evaluate, like, theta, scale, factor, start)
        elif start_max <= self.tol:
            w, grad_max, n_iter, n_eval, success = like, start_max, 0, 1, True
        else:
            w, grad_max, n_iter, n_eval, success, pairs = self._diagonal(
                evaluate, like, theta, scale, scale_np,
                self.tol * _NEWTON_HANDOFF if newton else self.tol, start)
        if grad_max > self.tol and like.numel() <= self.polish_max and can_newton:
            w, grad_max, n_polish = self._newton_polish(
                problem, evaluate, w, theta, grad_max, scale, n_steps=10 if newton else 5,
                direct="support_hessian" in found)
            n_eval += n_polish
        last_iter = n_iter
        if newton and grad_max > self.tol:  # Newton stalled: L-BFGS finishes the job
            w, grad_max, last_iter, more_eval, success, pairs = self._diagonal(
                evaluate, w, theta, scale, scale_np, self.tol)
            n_iter, n_eval = n_iter + last_iter, n_eval + more_eval
        # scipy may also stop on a relative decrease below rounding: converged as well.
        converged = math.isfinite(grad_max) and (grad_max <= self.tol or
                                                 (success and last_iter < self.max_iter))
        # The sketch's factor, or else L-BFGS's own last curvature pairs (none when
        # L-BFGS did not iterate, or scipy's memory was empty).
        preconditioner = pairs_preconditioner(*pairs, scale) if factor is None else \
            (lambda b, R=factor: factor_solve(R, b))
        return InnerSolution(w=w, n_iter=n_iter, residual=grad_max,
                             residual_kind=self.residual_kind, converged=converged,
                             n_func_eval=n_eval, n_grad_eval=n_eval,
                             preconditioner=preconditioner)

    def _minimize(self, fun, x0, gtol):
        return minimize(fun, x0, jac=True, method="L-BFGS-B",
                        options={"maxiter": self.max_iter, "gtol": gtol, "ftol": 0.0,
                                 "maxcor": self.history_size, "maxfun": 2 * self.max_iter,
                                 "maxls": self.max_line_search})

    def _diagonal(self, evaluate, like, theta, scale, scale_np, gtol, start=None):
        """L-BFGS in ``x = scale * w`` to ``||grad / scale||_inf <= gtol`` (scipy's own
        rule); ``start`` is ``evaluate(like, theta)`` when already known (scipy's first
        call then reuses it). Returns ``(w, ||grad / scale||_inf, iterations, evaluations,
        success, (s, y))``, the last the curvature pairs of scipy's memory in ``x`` (rows;
        None when it has none)."""
        def to_w(x):
            return torch.as_tensor(x, dtype=like.dtype, device=like.device).reshape(
                like.shape) / scale

        x0 = (like * scale).detach().cpu().double().numpy().ravel()
        known = [start] if start is not None else []

        def fun(x):
            value, grad = known.pop() if known and np.array_equal(x, x0) else \
                evaluate(to_w(x), theta)
            return float(value), grad.detach().cpu().double().numpy().ravel() / scale_np

        res = self._minimize(fun, x0, gtol)
        grad_max = float(np.max(np.abs(res.jac), initial=0.0))
        memory = res.get("hess_inv")
        pairs = getattr(memory, "sk", None), getattr(memory, "yk", None)
        return to_w(res.x), grad_max, int(res.nit), int(res.nfev), bool(res.success), pairs

    def _sketch_factor(self, problem, like, theta, p):
        """Upper Cholesky factor ``R`` of the sketched Hessian plus the penalty's at
        ``like`` (``R^T R``), or None when the problem cannot sketch it or it is not
        positive definite to rounding; ``p`` variables per independent block."""
        rows = min(self.sketch_rows * p,
                   max(2 * p, int(8 * self.sketch_passes * (problem.n_samples or 0) / p)))
        H = problem.hessian_sketch(like, rows)
        if H is None:
            return None
        H = H + torch.diag(problem.penalty_hessian_diag(like, theta).reshape(-1))
        R, info = torch.linalg.cholesky_ex(H, upper=True)
        return R if int(info) == 0 and bool(R.diagonal().isfinite().all()) else None

    def _sketched(self, evaluate, like, theta, scale, R, start):
        """L-BFGS in ``x = R w`` (see ``sketch_max``), stopped by the objective once
        ``||grad / scale||_inf <= tol``; ``start`` is ``evaluate(like, theta)``. Returns as
        :meth:`_diagonal`."""
        shape, n_eval, last = like.shape, 0, [np.inf, like]

        def to_w(x):
            x = torch.as_tensor(x, dtype=like.dtype, device=like.device).reshape(-1, 1)
            return torch.linalg.solve_triangular(R, x, upper=True).reshape(shape)

        def fun(x, w=None, known=None):
            nonlocal n_eval
            if w is None and first and np.array_equal(x, x0):
                return first[0]  # scipy's first call: evaluated at w0 below
            w = to_w(x) if w is None else w
            value, grad = evaluate(w, theta) if known is None else known
            n_eval += 1
            grad_max = float((grad / scale).abs().max())
            if not math.isfinite(float(value)) or not math.isfinite(grad_max):
                return np.inf, np.zeros_like(x)
            if grad_max < last[0]:
                last[:] = grad_max, w
            if grad_max <= self.tol:
                raise _Reached(w, grad_max)
            gx = torch.linalg.solve_triangular(R.t(), grad.reshape(-1, 1), upper=False)
            return float(value), gx.detach().cpu().double().numpy().ravel()

        x0 = (R @ like.reshape(-1, 1)).detach().cpu().double().numpy().ravel()
        first = []
        try:
            # At w0 itself (x0 maps back to it only to rounding).
            first.append(fun(x0, like, start))
            res = self._minimize(fun, x0, 0.0)
        except _Reached as reached:
            return reached.w, reached.grad_max, n_eval, n_eval, True
        # scipy gave up (rounding, max_iter): the best point it evaluated.
        return last[1], last[0], int(res.nit), n_eval, bool(res.success)

    def _check(self, problem):
        """The optional methods ``problem`` provides, once its requirements are checked."""
        found = check(self, problem)
        if not problem.smooth:
            raise ValueError(f"LBFGS needs a differentiable objective; this "
                             f"{type(problem).__name__} is not smooth (a non-quadratic "
                             f"penalty?): use FISTA")
        return found

    def _newton_polish(self, problem, evaluate, w, theta, grad_max, scale, n_steps=5,
                       direct=False):
        """Newton steps ``w -= H^{-1} g`` while they reduce ``||g / scale||_inf`` (needs
        ``smooth_hvp`` and ``penalty_hessian_diag``; ``direct``: the smooth Hessian from
        ``support_hessian``, one product where ``smooth_hvp`` of the identity takes two, and
        their copies). Returns ``(w, ||g / scale||_inf, gradient evaluations)``."""
        n_eval = 0
        eye = torch.eye(w.numel(), dtype=w.dtype, device=w.device)
        everywhere = torch.ones_like(w, dtype=torch.bool)
        for _ in range(n_steps):
            H = problem.support_hessian(w, everywhere) if direct else None
            H = problem.smooth_hvp(w, theta, eye) if H is None else H
            H = H + torch.diag(problem.penalty_hessian_diag(w, theta).reshape(-1))
            g = evaluate(w, theta)[1]
            # Pseudo-inverse: a multinomial Hessian is singular along a common shift of the
            # intercepts, a direction in which the gradient is zero anyway.
            vals, vecs = torch.linalg.eigh(H)
            keep = vals > 1e-12 * float(vals.abs().max())
            inv = torch.where(keep, 1.0 / torch.where(keep, vals, 1.0), 0.0)
            step = vecs @ (inv[:, None] * (vecs.T @ g.reshape(-1, 1)))
            trial = w - step.reshape(w.shape)
            trial_max = float((evaluate(trial, theta)[1] / scale).abs().max())
            n_eval += 2
            if not trial_max < grad_max:
                break
            w, grad_max = trial, trial_max
            if grad_max <= self.tol:
                break
        return w, grad_max, n_eval
