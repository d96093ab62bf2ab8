"""Hypergradients by reverse-mode differentiation (backpropagation) through the solver."""

from __future__ import annotations

import torch

from .._results import HypergradResult, WarmStart


class ReverseMode:
    """Autograd through the unrolled iterations of a proximal solver.

    A first pass finds how many iterations ``K`` the solver needs from the warm start; a
    second pass repeats them with autograd recording the last ``truncate`` of them (all of
    them when None), and one backward pass gives the hypergradient of the *algorithm*.
    Memory: the graph holds ``O(T d)`` numbers for ``T`` recorded iterations (a few
    vectors of size ``d`` per iteration); truncation bounds it at the price of a bias that
    vanishes as the iterations converge. The cost does not grow with the number of
    hyperparameters, unlike :class:`ForwardMode`.

    Parameters
    ----------
    truncate : int or None
        Number of final iterations differentiated; None differentiates all of them.
    """

    def __init__(self, truncate=None):
        if truncate is not None and (isinstance(truncate, bool) or int(truncate) < 1):
            raise ValueError(f"truncate must be a positive integer or None, got {truncate!r}")
        self.truncate = truncate

    def compute(self, problem, criterion, theta, *, solver, warm_start=None,
                with_grad=True) -> HypergradResult:
        """Solve, then backpropagate through the recorded iterations."""
        warm = warm_start or WarmStart()
        sol, _ = solver.run(problem, theta, warm.w)
        if not with_grad:
            return HypergradResult(float(criterion.value(sol.w)), None, sol.w,
                                   WarmStart(sol.w), n_inner_iter=sol.n_iter,
                                   inner_converged=sol.converged)
        K = sol.n_iter
        T = K if self.truncate is None else min(self.truncate, K)
        w_start = warm.w
        if K > T:  # the untaped prefix
            w_start = solver.run(problem, theta, warm.w, n_iter=K - T)[0].w
        with torch.enable_grad():
            th = theta.detach().clone().requires_grad_(True)
            w_K = solver.run(problem, th, w_start, n_iter=T, differentiable=True)[0].w
            w_leaf = w_K.detach().requires_grad_(True)
            value = criterion.value(w_leaf)
            (g_w,) = torch.autograd.grad(value, w_leaf)
            (grad,) = torch.autograd.grad(w_K, th, grad_outputs=g_w)
        grad = grad + criterion.grad_theta(w_K.detach(), theta)
        return HypergradResult(float(value), grad.detach(), w_K.detach(),
                               WarmStart(w_K.detach()), n_inner_iter=2 * K,
                               inner_converged=sol.converged)
