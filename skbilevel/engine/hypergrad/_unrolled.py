"""Hypergradients of the unrolled proximal solver: forward and reverse mode.

Both differentiate the *algorithm* (``w_K(theta)`` after the iterations actually run, from
the warm start, with the steps, momentum and restarts the run chose) rather than the
solution map; at convergence both agree with implicit differentiation. Both reuse the
solver's own update (:meth:`ProximalGradient.update`), so there is one implementation of each
update; step sizes and restarts are constants in ``theta`` (a backtracking step is piecewise
constant in ``theta``, so this is its derivative almost everywhere).
"""

from __future__ import annotations

from collections import deque

import torch

from .._results import HypergradResult, WarmStart
from ._method import HypergradientMethod


def _value_only(problem, criterion, theta, solver, warm, n_iter=None):
    sol, _ = solver.run(problem, theta, warm.w, n_iter=n_iter)
    w = sol.w.detach()
    return HypergradResult(float(criterion.value(w)), None, w,
                           WarmStart(w, jacobian=warm.jacobian), n_inner_iter=sol.n_iter,
                           inner_converged=sol.converged)


class ForwardMode(HypergradientMethod):
    """``dF/dtheta = d_theta F + J_K^T grad_w F`` with ``J_K = dw_K / dtheta`` propagated.

    The solver carries the derivative iterate alongside its iterates,
    ``J_{k+1} = D_w A_k(w_k) J_k + D_theta A_k(w_k)`` with ``A_k`` the k-th update (step
    ``s_k``, momentum ``beta_k``), exactly as that update's derivative dictates: through
    ``(I - s_k grad^2 f)``, the prox's diagonal derivative and its derivative in ``theta``.
    ``J_k`` converges to ``dw*/dtheta`` at the rate of the iterates (Mehmood & Ochs, 2025).
    Cost per iteration: ``n_hyper`` Hessian products (one ``(rows, n_hyper)`` block), so it
    suits few hyperparameters; memory: one ``(rows, n_hyper)`` Jacobian (two with momentum).
    ``J`` is warm-started from the previous outer iteration together with ``w``.

    Parameters
    ----------
    max_iter : int or None, default=None
        Unroll exactly this many iterations (from the warm start); None runs the solver to
        its own stopping rule.
    record_jacobians : bool, default=False
        Return every ``J_k`` in ``HypergradResult.jacobians`` (to plot their convergence).

    Attributes
    ----------
    solver_requires : tuple of str
        ``run``: an unrollable solver (``ProximalGradient``, ``FISTA``), which checks the
        problem itself (``derivative_requires``).
    differentiates_iterations : bool
        True.
    """

    solver_requires = ("run",)
    differentiates_iterations = True

    def __init__(self, max_iter=None, record_jacobians=False):
        if max_iter is not None and (isinstance(max_iter, bool) or int(max_iter) < 1):
            raise ValueError(f"max_iter must be a positive integer or None, got {max_iter!r}")
        self.max_iter, self.record_jacobians = max_iter, record_jacobians

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Run the solver with the derivative iterates; return value and hypergradient."""
        self._check(problem, solver)
        warm = warm_start or WarmStart()
        if not with_grad:
            return _value_only(problem, criterion, theta, solver, warm, self.max_iter)
        w0 = problem.init_params() if warm.w is None else warm.w
        J0 = warm.jacobian
        if warm.w is None or J0 is None or J0.shape != (w0.numel(), theta.numel()):
            J0 = w0.new_zeros(w0.numel(), theta.numel())
        sol, J = solver.run(problem, theta, w0, J0, n_iter=self.max_iter,
                            record=True if self.record_jacobians else None)
        w = sol.w.detach()
        grad = criterion.grad_theta(w, theta) + J.t() @ criterion.grad_w(w).reshape(-1)
        jacobians = [r["J"] for r in sol.history] if self.record_jacobians else None
        return HypergradResult(float(criterion.value(w)), grad, w, WarmStart(w, jacobian=J),
                               n_inner_iter=sol.n_iter, inner_converged=sol.converged,
                               jacobians=jacobians)


class ReverseMode(HypergradientMethod):
    """Autograd (backpropagation) through the unrolled iterations of a proximal solver.

    A first, untaped pass runs the solver to its stopping rule (``K`` iterations) and keeps
    the states before its last ``truncate`` steps; a second pass repeats those steps from the
    oldest kept state with ``theta`` attached, and one backward pass gives the hypergradient.
    Iterates before that state are constants (detached), so truncation is biased by the
    part of the derivative that the early iterations carry; the bias vanishes as the
    iterates converge. With ``truncate=None`` a single taped pass records all ``K`` steps.

    Memory: the graph holds ``O(T (n + d))`` numbers for ``T`` taped iterations of an
    ``(n, d)`` problem (each step saves its iterate, the residual or margins of the datafit
    and the prox's mask), plus ``T`` checkpointed states of size ``O(d)`` when truncating;
    the cost does not grow with the number of hyperparameters, unlike :class:`ForwardMode`.

    Parameters
    ----------
    truncate : int or None, default=None
        Number of final iterations differentiated; None differentiates all of them. With
        ``truncate >= K`` the result equals the untruncated one.

    Attributes
    ----------
    solver_requires : tuple of str
        ``run``: an unrollable solver (``ProximalGradient``, ``FISTA``).
    differentiates_iterations : bool
        True.
    """

    solver_requires = ("run",)
    differentiates_iterations = True

    def __init__(self, truncate=None):
        if truncate is not None and (isinstance(truncate, bool) or int(truncate) < 1):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        self.truncate = None if truncate is None else int(truncate)

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Solve, then backpropagate through the taped iterations."""
        self._check(problem, solver)
        warm = warm_start or WarmStart()
        if not with_grad:
            return _value_only(problem, criterion, theta, solver, warm)
        with torch.enable_grad():
            th = theta.detach().clone().requires_grad_(True)
            if self.truncate is None:
                sol, _ = solver.run(problem, th, warm.w, differentiable=True)
                n_total, converged = sol.n_iter, sol.converged
            else:
                kept = deque(maxlen=self.truncate)
                first, _ = solver.run(problem, theta, warm.w,
                                      callback=lambda w, st: kept.append((w, st)))
                w_start, state = kept[0]
                sol, _ = solver.run(problem, th, w_start, n_iter=len(kept),
                                    differentiable=True, state=state)
                n_total, converged = first.n_iter + len(kept), first.converged
            w_K = sol.w
            w = w_K.detach()
            grad = torch.zeros_like(theta)
            if w_K.requires_grad:
                (g,) = torch.autograd.grad(w_K, th, grad_outputs=criterion.grad_w(w),
                                           allow_unused=True)
                grad = grad if g is None else g.detach()
        grad = grad + criterion.grad_theta(w, theta)
        return HypergradResult(float(criterion.value(w)), grad, w, WarmStart(w),
                               n_inner_iter=n_total, inner_converged=converged)
