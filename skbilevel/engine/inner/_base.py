"""The inner-problem interface: what is fitted for given hyperparameters.

An inner problem is ``w*(theta) in argmin_w g(w, theta)``. Solvers and hypergradient
methods only talk to it through the methods below; each problem states which optional
capabilities it has (``hvp``, ``prox``, ...) so a method can check them up front.
"""

from __future__ import annotations

import torch


class InnerProblem:
    """Base class of inner problems.

    Subclasses implement :meth:`objective` and :meth:`grad`; the defaults of
    :meth:`hvp` and :meth:`cross_vjp` differentiate :meth:`grad` with autograd, so a new
    smooth problem works with implicit differentiation as soon as its gradient is written.
    Closed forms may override them for speed.

    Attributes
    ----------
    n_hyper : int
        Length of the unconstrained hyperparameter vector ``theta``.
    smooth : bool
        Whether the objective is differentiable in ``w``, so that :meth:`grad` is its
        gradient (solvers for smooth problems, such as L-BFGS, read it).
    """

    n_hyper: int = 1
    smooth: bool = True

    def init_params(self) -> torch.Tensor:
        """Return the starting point of the inner solvers."""
        raise NotImplementedError

    def objective(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Return the inner objective ``g(w, theta)`` as a 0-d tensor."""
        raise NotImplementedError

    def grad(self, w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Return ``grad_w g(w, theta)``, the optimality residual of smooth problems."""
        raise NotImplementedError

    def value_and_grad(self, w: torch.Tensor, theta: torch.Tensor):
        """Return ``(objective(w, theta), grad(w, theta))``.

        Iterative solvers that need both at the same point (HDM) call this; a problem that
        shares work between the two (e.g. the residual of a least-squares fit) overrides it.
        """
        return self.objective(w, theta), self.grad(w, theta)

    def hvp(self, w: torch.Tensor, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Return ``grad^2_ww g(w, theta) @ v`` (autograd by default)."""
        with torch.enable_grad():
            w_ = w.detach().requires_grad_(True)
            g = self.grad(w_, theta)
            (out,) = torch.autograd.grad(g, w_, grad_outputs=v)
        return out

    def cross_vjp(self, w: torch.Tensor, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Return ``(d/dtheta grad_w g(w, theta))^T v``, shape ``theta.shape``.

        Implicit differentiation turns this into the hypergradient:
        ``dF/dtheta = explicit - cross_vjp(w*, theta, H^{-1} grad_w F)``.
        """
        with torch.enable_grad():
            theta_ = theta.detach().requires_grad_(True)
            g = self.grad(w.detach(), theta_)
            (out,) = torch.autograd.grad(g, theta_, grad_outputs=v)
        return out
