"""L-BFGS for smooth inner problems (a datafit plus an L2 penalty)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from .._capabilities import check, value_and_grad
from .._results import InnerSolution
from ._solver import InnerSolver

_NEWTON_HANDOFF = 1e4  # L-BFGS's tolerance, relative to tol, before the Newton steps


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

    Attributes
    ----------
    requires : tuple of str
        ``init_params``, ``objective``, ``grad`` (a declared ``value_and_grad`` is used
        when present) and the flag ``smooth``.
    optional : tuple of str
        ``variable_scale`` (the Jacobi scaling above), and ``smooth_hvp`` with
        ``penalty_hessian_diag`` (the Newton steps; both are needed); ``support_hessian``
        forms their Hessian in one product where the problem can (a dense design).
    residual_kind : str
        ``"scaled_grad_inf_norm"``: ``||grad / scale||_inf``.
    scaled_residual : bool
        True: ``tol`` is in the units of ``x``.
    """

    requires = ("init_params", "objective", "grad", "smooth")
    optional = ("variable_scale", "smooth_hvp", "penalty_hessian_diag", "support_hessian")
    residual_kind = "scaled_grad_inf_norm"
    scaled_residual = True

    @classmethod
    def supports(cls, problem) -> bool:
        """Whether ``problem`` provides :attr:`requires` and its objective is smooth."""
        return super().supports(problem) and bool(problem.smooth)

    def __init__(self, max_iter=1000, tol=1e-10, history_size=10, polish_max=500,
                 newton_max=64):
        self.polish_max, self.newton_max = int(polish_max), int(newton_max)
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

        def to_w(x):  # the optimiser's variable x = scale * w
            return torch.as_tensor(x, dtype=like.dtype, device=like.device).reshape(
                like.shape) / scale

        def to_x(w):
            return (w * scale).detach().cpu().double().numpy().ravel()

        def fun(x):
            value, grad = evaluate(to_w(x), theta)
            return float(value), grad.detach().cpu().double().numpy().ravel() / scale_np

        def lbfgs(x0, gtol):
            return minimize(fun, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": self.max_iter, "gtol": gtol, "ftol": 0.0,
                                     "maxcor": self.history_size,
                                     "maxfun": 2 * self.max_iter})

        # With few variables a Newton step costs a handful of gradients, and from a
        # moderately accurate point two or three of them reach any tolerance, where
        # L-BFGS's linear rate needs dozens of evaluations: hand over early.
        can_newton = {"smooth_hvp", "penalty_hessian_diag"} <= found
        newton = like.numel() <= self.newton_max and can_newton
        res = lbfgs(to_x(like), self.tol * _NEWTON_HANDOFF if newton else self.tol)
        n_iter, n_eval = int(res.nit), int(res.nfev)
        w = to_w(res.x)
        grad_max = float(np.max(np.abs(res.jac), initial=0.0))
        if grad_max > self.tol and like.numel() <= self.polish_max and can_newton:
            w, grad_max, n_polish = self._newton_polish(
                problem, evaluate, w, theta, grad_max, scale, n_steps=10 if newton else 5,
                direct="support_hessian" in found)
            n_eval += n_polish
        if newton and grad_max > self.tol:  # Newton stalled: L-BFGS finishes the job
            res = lbfgs(to_x(w), self.tol)
            n_iter, n_eval = n_iter + int(res.nit), n_eval + int(res.nfev)
            w = to_w(res.x)
            grad_max = float(np.max(np.abs(res.jac), initial=0.0))
        # scipy may also stop on a relative decrease below rounding: converged as well.
        converged = math.isfinite(grad_max) and (grad_max <= self.tol or
                                                 (res.success and res.nit < self.max_iter))
        return InnerSolution(w=w, n_iter=n_iter, residual=grad_max,
                             residual_kind=self.residual_kind, converged=converged,
                             n_func_eval=n_eval, n_grad_eval=n_eval)

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
