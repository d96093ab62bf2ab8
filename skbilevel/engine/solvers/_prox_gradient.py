"""Proximal gradient (ISTA) and FISTA with time-varying step sizes, differentiable.

One loop serves both solvers and forward-mode differentiation: given the Jacobian
``J_k = dw_k / dtheta`` (``(d, p)``), it propagates ``J_{k+1}`` through the same update,
exactly as the update's derivative dictates (Mehmood & Ochs, ICML 2025): the derivative
iterates converge to ``d w* / dtheta`` at the rate of the iterates, even when the step
sizes never settle. Step sizes (a schedule, or a backtracking line search) and FISTA's
momentum coefficients are treated as constants in ``theta``: for a backtracking search
the step is piecewise constant in ``theta``, so this is its derivative almost everywhere.
"""

from __future__ import annotations

import math

import torch
from torch.func import jvp, vmap

from .._results import InnerSolution


class ProximalGradient:
    """Proximal gradient descent ``w+ = prox_{s_k g}(w - s_k grad f(w))``.

    Parameters
    ----------
    step : "constant", "backtracking" or callable
        ``"constant"``: ``s_k = 1 / L``. A callable ``k -> c_k`` gives ``s_k = c_k / L``,
        with ``c_k`` in (0, 2) for convergence (e.g. oscillating). ``"backtracking"``:
        start from ``2 / L`` and halve until the quadratic upper bound holds.
    max_iter : int
        Iteration cap.
    tol : float
        Stop when the gradient-mapping norm ``||w_k - w_{k+1}|| / s_k`` is at most ``tol``.
    momentum : bool
        FISTA's Nesterov momentum (see :class:`FISTA`).
    restart : None or "function"
        With momentum, reset it whenever the objective increases.
    record : bool
        Keep every iterate (and Jacobian) in ``InnerSolution.history``.
    """

    momentum = False

    def __init__(self, step="constant", max_iter=5000, tol=1e-10, restart=None, record=False):
        if not (step in ("constant", "backtracking") or callable(step)):
            raise ValueError(f"step must be 'constant', 'backtracking' or a callable, got "
                             f"{step!r}")
        if restart not in (None, "function"):
            raise ValueError(f"restart must be None or 'function', got {restart!r}")
        self.step, self.max_iter, self.tol = step, max_iter, tol
        self.restart, self.record = restart, record

    # -- pieces ---------------------------------------------------------------------------
    def _step_size(self, problem, y, theta, k, L, previous):
        if self.step == "constant":
            return 1.0 / L
        if callable(self.step):
            return float(self.step(k)) / L
        s = 2.0 / L if previous is None else min(2.0 * previous, 2.0 / L)
        f_y, g_y = problem.smooth_value(y), problem.smooth_grad(y)
        for _ in range(60):  # quadratic upper bound of the smooth part along the step
            w = problem.prox(y - s * g_y, s, theta)
            d = w - y
            if problem.smooth_value(w) <= f_y + (g_y * d).sum() + (d * d).sum() / (2 * s):
                break
            s *= 0.5
        return s

    @staticmethod
    def _propagate(problem, z, step, theta, J_in):
        """``dw+ = d prox(z, theta) [dz, I]`` with ``dz = (I - s H) J_in``: the update's
        derivative applied to every column of the Jacobian at once."""
        # H acts on the (d, p) Jacobian as on p right-hand sides (w is one column).
        dz = J_in - step * problem.hessian_matvec(J_in)
        eye = torch.eye(theta.numel(), dtype=theta.dtype, device=theta.device)

        def column(dz_j, dtheta_j):  # J's columns are flat; the variable may be (d, 1)
            return jvp(lambda zz, th: problem.prox(zz, step, th), (z, theta),
                       (dz_j.reshape(z.shape), dtheta_j))[1].reshape(-1)

        return vmap(column, in_dims=(1, 0), out_dims=1)(dz, eye)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, problem, theta, w0=None, J0=None, n_iter=None, differentiable=False):
        """Iterate from ``w0``; with ``J0`` (``(d, p)``), also propagate the Jacobian.

        ``n_iter`` runs exactly that many iterations (no stopping test); ``differentiable``
        keeps ``theta`` attached, so autograd records the iterations (reverse mode).
        Returns ``(InnerSolution, J)`` (``J`` None without ``J0``).
        """
        w = problem.init_params() if w0 is None else w0.detach().clone()
        theta = theta if differentiable else theta.detach()
        J = None if J0 is None else J0.detach().clone()
        L = problem.lipschitz(theta)
        w_prev, J_prev, t, step = w, J, 1.0, None
        history = [] if self.record else None
        f_prev, residual, converged, k = math.inf, math.inf, False, 0
        for k in range(1, (n_iter or self.max_iter) + 1):
            beta = 0.0
            if self.momentum:
                t_next = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
                beta, t = (t - 1) / t_next, t_next
            y = w + beta * (w - w_prev)
            with torch.no_grad():  # steps are constants in theta (piecewise, if searched)
                step = self._step_size(problem, y.detach(), theta.detach(), k, L, step)
            z = y - step * problem.smooth_grad(y)
            w_next = problem.prox(z, step, theta)
            if J is not None:
                J_y = J + beta * (J - J_prev)
                J_prev, J = J, self._propagate(problem, z, step, theta, J_y)
            w_prev, w = w, w_next
            residual = float(torch.linalg.vector_norm((w - y).detach())) / step
            if history is not None:
                history.append({"w": w.detach().clone(),
                                "J": None if J is None else J.clone(), "step": step})
            if self.momentum and self.restart == "function":
                f_now = float(problem.objective(w.detach(), theta.detach()))
                if f_now > f_prev:
                    t = 1.0  # momentum off for the next step
                f_prev = f_now
            if n_iter is None and residual <= self.tol:
                converged = True
                break
        sol = InnerSolution(w=w, n_iter=k, residual=residual, converged=converged,
                            history=history)
        return sol, J

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta`` from ``w0`` (``recycle`` is ignored)."""
        return self.run(problem, theta, w0)[0]


class FISTA(ProximalGradient):
    """FISTA: proximal gradient with Nesterov momentum ``(t_k - 1) / t_{k+1}``.

    Same parameters as :class:`ProximalGradient`; ``restart="function"`` resets the momentum
    whenever the objective increases (O'Donoghue & Candes).
    """

    momentum = True
