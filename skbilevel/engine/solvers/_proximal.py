"""Proximal gradient (ISTA) and FISTA with time-varying steps, differentiable.

One update, :meth:`ProximalGradient.update`, serves the solver, reverse mode (autograd through
the same code with ``theta`` attached) and forward mode: given ``J_k = dw_k / dtheta`` it
also returns ``J_{k+1} = D_w A_k(w_k) J_k + D_theta A_k(w_k)``, the derivative of the very
update it applied (Mehmood & Ochs, ICML 2025: these derivative iterates converge to
``dw*/dtheta`` at the rate of the iterates, even when the steps never settle).

Step sizes (constant, a schedule of ``k``, or a backtracking search) and FISTA's momentum
coefficients and restarts are constants in ``theta``: they are computed from detached
values. A backtracking step is piecewise constant in ``theta`` (the Armijo test changes its
outcome only on a null set), so this is its derivative almost everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional

import torch

from .._capabilities import check
from .._results import InnerSolution
from ._solver import InnerSolver


@dataclass(frozen=True)
class ProximalState:
    """What one proximal-gradient step hands to the next.

    Attributes
    ----------
    k : int
        Iterations done.
    lipschitz : float
        ``L`` of the smooth part, fixed for the run.
    t : float
        FISTA's ``t_k`` (1 means no momentum at the next step).
    w_prev, J_prev : torch.Tensor or None
        Previous iterate and derivative iterate (momentum).
    step : float or None
        Last step size (where a backtracking search restarts).
    objective : float
        Objective at the current iterate, for the function restart.
    n_restart : int
        Momentum restarts so far.
    """

    k: int
    lipschitz: float
    t: float = 1.0
    w_prev: Optional[torch.Tensor] = None
    J_prev: Optional[torch.Tensor] = None
    step: Optional[float] = None
    objective: float = math.inf
    n_restart: int = 0


class ProximalGradient(InnerSolver):
    """Proximal gradient descent ``w+ = prox_{s_k g}(w - s_k grad f(w))``.

    Parameters
    ----------
    step : "constant", "backtracking" or callable, default="constant"
        ``"constant"``: ``s_k = 1 / L``. A callable ``k -> c_k`` (``k = 1, 2, ...``) gives
        ``s_k = c_k / L``, with ``c_k`` in (0, 2) for convergence (e.g. the oscillating
        ``1 + 0.9 sin k``). ``"backtracking"``: start from ``min(2 s_{k-1}, 2 / L)`` and halve
        until the quadratic upper bound of ``f`` holds at the trial point; the chosen step
        is treated as piecewise constant in ``theta`` by the hypergradient methods.
    max_iter : int, default=5000
        Iteration cap.
    tol : float, default=1e-10
        Stop when the optimality residual (the gradient mapping at step ``1 / L``, see
        ``ProximalProblem.optimality_residual``) is at most ``tol``. It is evaluated only
        once the step's own gradient mapping ``||y_k - w_{k+1}|| / s_k`` is below ``tol``.
    record : bool, default=False
        Keep one record per iteration in ``InnerSolution.history``: ``w``, ``step``,
        ``beta``, ``restart``, ``residual`` (the step's gradient mapping) and ``J`` when
        derivative iterates are propagated.

    Attributes
    ----------
    requires : tuple of str
        What the problem must provide (a :class:`~skbilevel.engine.inner.ProximalProblem`
        does).
    derivative_requires : tuple of str
        What forward mode (derivative iterates ``J``) needs on top: ``smooth_hvp`` and
        ``prox_jacobian``.
    optional : tuple of str
        ``optimality_residual`` (the stopping test at step ``1 / L``; otherwise the last
        step's gradient mapping) and ``preconditioner`` (:meth:`solve` then iterates in the
        scaled variable).
    unrollable : bool
        True: :meth:`run` is what forward and reverse mode differentiate.
    residual_kind : str
        ``"gradient_mapping"``.
    scaled_residual : bool
        True: :meth:`solve` measures it in the preconditioned variable (:meth:`run` in
        ``w``).
    """

    requires = ("init_params", "smooth_value", "smooth_grad", "prox", "lipschitz", "objective")
    derivative_requires = ("smooth_hvp", "prox_jacobian")
    optional = ("optimality_residual", "preconditioner")
    unrollable = True
    residual_kind = "gradient_mapping"
    scaled_residual = True
    momentum = False

    def __init__(self, step="constant", max_iter=5000, tol=1e-10, restart=None, record=False):
        if not (step in ("constant", "backtracking") or callable(step)):
            raise ValueError(f"step must be 'constant', 'backtracking' or a callable, got "
                             f"{step!r}")
        if restart not in (None, "function", "gradient"):
            raise ValueError(f"restart must be None, 'function' or 'gradient', got "
                             f"{restart!r}")
        if restart is not None and not self.momentum:
            raise ValueError("restart needs momentum: use FISTA")
        if int(max_iter) < 1 or not tol >= 0:
            raise ValueError(f"need max_iter >= 1 and tol >= 0, got {max_iter}, {tol}")
        self.step_rule, self.max_iter, self.tol = step, int(max_iter), tol
        self.restart, self.record = restart, record

    # -- one update ------------------------------------------------------------------
    def init_state(self, problem, w, theta, J=None) -> ProximalState:
        """State before the first step from ``w`` (and derivative iterate ``J``)."""
        check(self, problem, *(() if J is None else self.derivative_requires))
        return self._fresh_state(problem, w, theta, J)

    @staticmethod
    def _fresh_state(problem, w, theta, J):
        return ProximalState(k=0, lipschitz=float(problem.lipschitz(theta.detach())),
                             w_prev=w, J_prev=J)

    def _step_size(self, problem, y, g, theta, k, state):
        L = state.lipschitz
        if self.step_rule == "constant":
            return 1.0 / L
        if callable(self.step_rule):
            return float(self.step_rule(k)) / L
        s = 2.0 / L if state.step is None else min(2.0 * state.step, 2.0 / L)
        f_y = float(problem.smooth_value(y, theta))
        # Below this the value test f(y + d) - f(y) - g.d is rounding noise (near the
        # solution d is tiny): then the curvature is measured from gradients instead,
        # <grad f(y + d) - g, d> / 2, exact for quadratics and stable.
        noise = 64 * torch.finfo(y.dtype).eps * max(abs(f_y), 1e-300)
        for _ in range(60):  # quadratic upper bound of the smooth part along the step
            d = problem.prox(y - s * g, s, theta) - y
            bound = float((d * d).sum()) / (2 * s)
            if bound > noise:
                excess = float(problem.smooth_value(y + d, theta)) - f_y - float((g * d).sum())
            else:
                excess = 0.5 * float(((problem.smooth_grad(y + d, theta) - g) * d).sum())
            if excess <= bound:
                break
            s *= 0.5
        return s

    def update(self, problem, w, theta, state, J=None):
        """One update from ``w``; returns ``(w_next, J_next, state_next, info)``.

        ``J`` (``(w.numel(), n_hyper)``) is the derivative iterate ``dw / dtheta``; the
        returned ``J_next`` is None without it. ``info = (residual, beta, restarted)``:
        the step's gradient mapping ``||y - w_next|| / s``, the momentum coefficient used
        and whether the momentum was reset. Autograd records the update when ``theta``
        requires grad.
        """
        k, t, beta = state.k + 1, state.t, 0.0
        if self.momentum:
            t = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * state.t ** 2))
            beta = (state.t - 1.0) / t
        y = w + beta * (w - state.w_prev) if beta else w
        g = problem.smooth_grad(y, theta)
        with torch.no_grad():
            s = self._step_size(problem, y.detach(), g.detach(), theta.detach(), k, state)
        z = y - s * g
        w_next = problem.prox(z, s, theta)
        J_next = None
        if J is not None:
            J_y = J + beta * (J - state.J_prev) if beta else J
            # z = y - s grad f(y): dz = (I - s H(y)) J_y; prox: diagonal in z, plus d/dtheta.
            dz = J_y - s * problem.smooth_hvp(y.detach(), theta, J_y)
            diag, d_theta = problem.prox_jacobian(z.detach(), s, theta.detach())
            J_next = diag.reshape(-1, 1) * dz + d_theta
        with torch.no_grad():
            wd, yd = w_next.detach(), y.detach()
            residual = float(torch.linalg.vector_norm(yd - wd)) / s
            objective, restart = state.objective, False
            if self.restart == "function":  # O'Donoghue & Candes: objective went up
                objective = float(problem.objective(wd, theta.detach()))
                restart = objective > state.objective
            elif self.restart == "gradient":  # the step opposes the momentum direction
                restart = float(((yd - wd) * (wd - w.detach())).sum()) > 0
        new = replace(state, k=k, t=1.0 if restart else t, w_prev=w, J_prev=J, step=s,
                      objective=objective, n_restart=state.n_restart + int(restart))
        return w_next, J_next, new, (residual, beta, restart)

    # -- the loop ----------------------------------------------------------------------
    def run(self, problem, theta, w0=None, J0=None, n_iter=None, differentiable=False, *,
            state: Any = None, record=None, callback=None):
        """Iterate from ``w0`` (with derivative iterate ``J0`` when given).

        Parameters
        ----------
        n_iter : int or None
            Run exactly this many steps (no stopping test); None stops on ``tol``.
        differentiable : bool
            Keep ``theta`` attached so that autograd records the iterations.
        state : ProximalState or None
            Resume from this state (``w0`` is its iterate) instead of a fresh one.
        record : bool or None
            Overrides the solver's ``record``.
        callback : callable or None
            ``callback(w, state)`` before every step (detached iterate; a caller keeps
            checkpoints this way).

        Returns
        -------
        solution : InnerSolution
            ``solver_state`` holds the final :class:`ProximalState`.
        J : torch.Tensor or None
            Final derivative iterate.
        """
        found = check(self, problem, *(() if J0 is None else self.derivative_requires))
        w = problem.init_params() if w0 is None else w0.detach().clone()
        theta = theta if differentiable else theta.detach()
        J = None if J0 is None else J0.detach().clone()
        if J is not None and w.dim() > 1 and w.shape[1] != 1:
            # J's rows are the entries of one column
            raise ValueError(f"derivative iterates need a one-column variable, got "
                             f"shape {tuple(w.shape)}")
        state = self._fresh_state(problem, w, theta, J) if state is None else state
        record = self.record if record is None else record
        history = [] if record else None
        residual, converged = math.inf, False
        for _ in range(self.max_iter if n_iter is None else int(n_iter)):
            if callback is not None:
                callback(w.detach(), state)
            w, J, state, (residual, beta, restart) = self.update(problem, w, theta, state, J)
            if history is not None:
                rec = {"w": w.detach().clone(), "step": state.step, "beta": beta,
                       "restart": restart, "residual": residual}
                if J is not None:
                    rec["J"] = J.detach().clone()
                history.append(rec)
            if n_iter is None and residual <= self.tol:
                residual = self._residual(problem, found, w.detach(), theta.detach(),
                                          residual)
                if residual <= self.tol:
                    converged = True
                    break
        if n_iter is not None or not converged:
            residual = self._residual(problem, found, w.detach(), theta.detach(), residual)
            converged = residual <= self.tol
        sol = InnerSolution(w=w, n_iter=state.k, residual=residual,
                            residual_kind=self.residual_kind, converged=converged,
                            history=history, solver_state=state)
        return sol, J

    @staticmethod
    def _residual(problem, found, w, theta, fallback):
        """The gradient mapping at ``1 / L`` when the problem gives it (``found``: its
        optional methods), else ``fallback``, the last step's."""
        if "optimality_residual" in found:
            return float(problem.optimality_residual(w, theta))
        return fallback

    def solve(self, problem, theta, w0=None, recycle=None) -> InnerSolution:
        """Minimise ``problem`` at ``theta`` from ``w0`` (``recycle`` is ignored).

        A problem with a ``preconditioner()`` (the logistic ones) is solved in its scaled
        variable ``x = D w``, i.e. proximal gradient in the metric ``D^2``: the step
        ``1 / L`` is then not set by the feature in the largest units, and ``tol`` applies
        to the gradient mapping in ``x``. :meth:`run`, which the unrolled hypergradients
        differentiate, iterates on ``w`` itself.
        """
        pre = problem.preconditioner() if "preconditioner" in check(self, problem) else None
        if pre is None:
            return self.run(problem, theta, w0)[0]
        scaled = _DiagonallyScaled(problem, *pre)
        sol = self.run(scaled, theta, None if w0 is None else w0.detach() * scaled.D)[0]
        return replace(sol, w=sol.w / scaled.D)


class _DiagonallyScaled:
    """``problem`` in the variable ``x = D w`` (``D`` positive, shaped like ``w``): its
    smooth part ``f(x / D)`` has gradient ``grad f / D`` and Lipschitz constant ``L``
    (given), its penalty ``g(x / D)`` the proximal map ``D prox_{s / D^2} (z / D)`` (one
    step per entry, for separable penalties)."""

    def __init__(self, problem, D, L):
        self.problem, self.D, self.L = problem, D, float(L)

    def init_params(self):
        return self.problem.init_params()

    def smooth_value(self, x, theta=None):
        return self.problem.smooth_value(x / self.D, theta)

    def smooth_grad(self, x, theta=None):
        return self.problem.smooth_grad(x / self.D, theta) / self.D

    def lipschitz(self, theta=None):
        return self.L

    def prox(self, z, step, theta):
        return self.D * self.problem.prox(z / self.D, step / self.D ** 2, theta)

    def objective(self, x, theta):
        return self.problem.objective(x / self.D, theta)

    def optimality_residual(self, x, theta) -> float:
        """The gradient mapping at ``s = 1 / L`` in ``x``."""
        s = 1.0 / self.L
        x_plus = self.prox(x - s * self.smooth_grad(x, theta), s, theta)
        return float(torch.linalg.vector_norm((x - x_plus).detach())) / s


class FISTA(ProximalGradient):
    """FISTA: proximal gradient at ``y_k = w_k + beta_k (w_k - w_{k-1})``.

    ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``, ``beta_k = (t_k - 1) / t_{k+1}``, ``t_1 = 1``.
    The derivative iterates carry the same extrapolation,
    ``J_y = J_k + beta_k (J_k - J_{k-1})``. Same parameters as :class:`ProximalGradient`,
    plus ``restart`` (O'Donoghue & Candes): ``"function"`` resets the momentum when the
    objective increases, ``"gradient"`` when ``(y_k - w_{k+1})^T (w_{k+1} - w_k) > 0``;
    a restart is a decision on detached values, constant in ``theta`` like the steps.
    """

    momentum = True
