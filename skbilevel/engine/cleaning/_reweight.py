"""Learning to reweight (Ren et al., 2018): the one-step look-ahead, a cheap baseline.

At the current parameters ``y``, perturb the training weights by ``eps`` and take one
gradient step ``y' = y - lr (1/n) sum_i eps_i b_i grad_y l_i(y)``. To first order the
trusted loss moves by

    d f(y') / d eps_i = -(lr / n) b_i <grad_y l_i(y), grad_y f(y)>,

so a sample whose loss gradient points along the trusted set's gradient (``a_i =
<grad_y l_i, grad_y f> > 0``) helps, one pointing against it hurts. Learning to reweight
takes ``w_i = max(0, a_i)``, normalised, as the weights of the next step of ``y``; the
per-sample products ``a_i`` are one Jacobian-vector product of the per-sample losses
against ``grad_y f`` (never the sum over samples repeated for every sample, which leaves
every weight identical).

The weights of one step are myopic (they describe the current ``y`` only), so the learned
weight of a sample *accumulates* them: the logit ``x_i`` is the running mean over the steps
of ``a_i / mean_j |a_j|`` (each step's products in units of their mean size, so that early
steps with large gradients do not outweigh late ones). ``sigmoid(x_i) < 1/2`` exactly when
the sample's look-ahead gradient pointed against the trusted set on average. ``y`` itself
follows learning to reweight: a gradient step on the training loss weighted by that
step's ``max(0, a_i)`` (times the base weights), normalised to mean one, with a
backtracking (Armijo) step size. The method runs ``max_iter`` steps; it has no stopping
rule of its own (``converged`` is False).
"""

from __future__ import annotations


import torch

from ._base import CleaningMethod, CleaningResult
from ._shared import new_history, record

__all__ = ["ReweightCleaning"]


class ReweightCleaning(CleaningMethod):
    """One-step look-ahead reweighting (learning to reweight) as a cleaning method.

    Parameters
    ----------
    lr0 : float, default=1.0
        First trial step size of ``y``; each step starts from twice the last accepted one
        and halves it until the weighted training loss decreases enough (Armijo).

    Notes
    -----
    History: ``outer_value`` is ``f(y)``; ``sqrt_h`` is ``||grad_y g(x, y)||`` at the
    learned weights (``y`` follows the per-step weights, so it is not zero at the end);
    ``stationarity`` is the norm of the look-ahead weight gradient ``(1/n) b_i a_i`` per
    unit step size; ``lambda`` is NaN (no multiplier).
    """

    name = "reweight"

    def __init__(self, lr0: float = 1.0):
        self.lr0 = float(lr0)

    def run(self, problem, *, max_iter, x0=None, y0=None, generator=None, callback=None):
        history, start = new_history()
        x, y = self.start(problem, x0, y0, generator)
        # The running mean of the normalised products; a given x0 counts as one earlier step.
        total, count = x.clone(), 0 if x0 is None else 1
        lr = self.lr0
        for k in range(1, int(max_iter) + 1):
            align = self.alignment(problem, y)
            scale = align.abs().mean()
            step = align / scale if scale > 0 else torch.zeros_like(align)
            total, count = total + step, count + 1
            x = total / count
            weights = self.step_weights(problem, align)
            y, lr = self.descend(problem, weights, y, lr)
            record(history, start, callback,
                   outer_value=problem.outer_value(y.detach()),
                   sqrt_h=problem.inner_grad(x, y).norm(),
                   stationarity=(problem.base * align).norm() / problem.n, lam=float("nan"))
        return CleaningResult(x=x.detach(), y=y.detach(), history=history,
                              n_iter=int(max_iter),
                              kkt_residual=history["stationarity"][-1] if max_iter else
                              float("nan"), converged=False)

    @staticmethod
    def alignment(problem, y):
        """``a_i = <grad_y l_i(y), grad_y f(y)>`` for every training sample: one JVP of
        the per-sample losses in the direction ``grad_y f``."""
        v = problem.outer_grad(y)
        _, a = torch.func.jvp(problem.sample_losses, (y.detach(),), (v,))
        return a.detach()

    @staticmethod
    def step_weights(problem, align):
        """``b_i max(0, a_i)`` normalised to mean one; uniform (``b``) if none is positive."""
        w = problem.base * align.clamp(min=0)
        total = w.sum()
        if not total > 0:
            return problem.base.clone()
        return w * (problem.n / total)

    @staticmethod
    def descend(problem, weights, y, lr):
        """One gradient step on ``(1/n) sum_i w_i l_i(y) + reg/2 ||y||^2`` with an Armijo
        backtracking from ``2 lr``; returns the new ``y`` and the accepted step size."""
        def loss(y):
            return weights @ problem.sample_losses(y) / problem.n + 0.5 * problem.reg * (y @ y)

        y = y.detach().requires_grad_(True)
        value = loss(y)
        grad = torch.autograd.grad(value, y)[0]
        y, value = y.detach(), float(value.detach())
        g2 = float(grad @ grad)
        lr = 2.0 * lr
        with torch.no_grad():
            for _ in range(60):
                trial = y - lr * grad
                if float(loss(trial)) <= value - 0.5 * lr * g2:
                    return trial, lr
                lr *= 0.5
        return y, lr  # no decrease at any step size: a stationary point of the step
