"""L-BFGS for smooth inner problems (a datafit plus an L2 penalty)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize

from .._results import InnerSolution


def _value_and_grad(problem, w, theta):
    """Objective and full gradient; a proximal problem's penalty must then be quadratic
    (``L2``: its gradient is its diagonal Hessian times ``w``)."""
    if hasattr(problem, "smooth_grad"):
        value = problem.smooth_value(w, theta) + problem.penalty_value(w, theta)
        return value, problem.smooth_grad(w, theta) + problem.penalty_hessian_diag(w, theta) * w
    return problem.value_and_grad(w, theta)


class LBFGS:
    """L-BFGS (scipy's L-BFGS-B, what scikit-learn's ``lbfgs`` solver runs) for smooth
    problems, with values and gradients computed in torch on the problem's device.

    The inner solver of the L2-penalised logistic tuning: on a strongly convex smooth
    objective it needs far fewer gradient evaluations than proximal gradient, and it
    warm-starts from the previous outer iterate. For a
    :class:`~skbilevel.engine.inner.ProximalProblem` the penalty must be quadratic
    (``L2``, shared or per feature). Each evaluation moves one vector between the device
    and the host; the Fortran loop itself costs nothing next to the data passes.

    Parameters
    ----------
    max_iter : int, default=1000
        Iterations (each one or more gradient evaluations).
    tol : float, default=1e-10
        Stop when ``||grad||_inf <= tol`` (scipy's ``pgtol``).
    history_size : int, default=10
        Number of correction pairs (scipy's ``maxcor``).
    """

    def __init__(self, max_iter=1000, tol=1e-10, history_size=10):
        if int(max_iter) < 1 or not tol >= 0 or int(history_size) < 1:
            raise ValueError(f"need max_iter >= 1, tol >= 0 and history_size >= 1, got "
                             f"{max_iter}, {tol}, {history_size}")
        self.max_iter, self.tol, self.history_size = int(max_iter), float(tol), \
            int(history_size)

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta`` from ``w0`` (``recycle`` is ignored)."""
        theta = theta.detach()
        like = problem.init_params() if w0 is None else w0.detach()

        def fun(x):
            w = torch.as_tensor(x, dtype=like.dtype, device=like.device).reshape(like.shape)
            value, grad = _value_and_grad(problem, w, theta)
            return float(value), grad.detach().cpu().double().numpy().ravel()

        res = minimize(fun, like.detach().cpu().double().numpy().ravel(), jac=True,
                       method="L-BFGS-B",
                       options={"maxiter": self.max_iter, "gtol": self.tol,
                                "ftol": 64 * np.finfo(float).eps,
                                "maxcor": self.history_size, "maxfun": 2 * self.max_iter})
        w = torch.as_tensor(res.x, dtype=like.dtype, device=like.device).reshape(like.shape)
        grad_max = float(np.max(np.abs(res.jac), initial=0.0))
        # scipy may also stop on a relative decrease below rounding: converged as well.
        converged = math.isfinite(grad_max) and (grad_max <= self.tol or
                                                 (res.success and res.nit < self.max_iter))
        return InnerSolution(w=w, n_iter=int(res.nit), residual=grad_max,
                             converged=converged, n_func_eval=int(res.nfev),
                             n_grad_eval=int(res.nfev))
