"""Sample-weighted classification with a torch model: the inner problem of hyper-cleaning.

One weight per training sample is the hyperparameter, and it lives in the *datafit*:

    g(x, y) = (1/n) sum_i b_i sigmoid(x_i) l(m_y(X_i), t_i) + (reg / 2) ||y||^2,
    f(y)    = (1/n_val) sum_j l(m_y(X_val_j), t_val_j),

with ``y`` the model's parameters as one flat vector, ``x`` the weights' logits (the weight
of sample ``i`` is ``sigmoid(x_i)`` in [0, 1], times the user's base weight ``b_i``), ``l``
the multinomial log-loss of the model's scores and ``m_y`` a linear model or a small MLP
(nonconvex in ``y``). Every derivative a bilevel method needs comes from torch autograd on
these two functions:

* ``outer_grad(y)``: ``grad_y f`` (f does not depend on ``x``);
* ``inner_grad(x, y)``: ``grad_y g``;
* ``constraint(x, y)``: ``h = ||grad_y g||^2`` and its gradient in both blocks with ONE
  Hessian-vector product of ``g`` against ``grad_y g`` (PGD-CQA's constraint);
* ``hvp(x, y, v)``: ``grad_yy g v``; ``cross(x, y, v)``: ``grad_xy g v``, one entry per
  sample, ``(1/n) b_i sigmoid'(x_i) <grad_y l_i(y), v>``, computed as a Jacobian-vector
  product of the per-sample losses (the per-sample inner products, never the sum over
  samples repeated for every sample: that bug leaves every weight identical).

Models are functional: ``scores(y, X)`` on a flat parameter vector, so the derivatives above
need no module state. :class:`ModuleModel` adapts any ``torch.nn.Module``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class LinearModel:
    """Multinomial logistic scores ``X W + b`` with ``y = [vec(W); b]`` (``K`` columns)."""

    nonconvex = False

    def __init__(self, n_features: int, n_classes: int):
        self.d, self.K = int(n_features), int(n_classes)
        self.n_params = (self.d + 1) * self.K

    def init(self, generator=None, dtype=torch.float64, device=None):
        return torch.zeros(self.n_params, dtype=dtype, device=device)

    def scores(self, y, X):
        W = y[:self.d * self.K].reshape(self.d, self.K)
        return X @ W + y[self.d * self.K:]


class MLPModel:
    """A small MLP on a flat parameter vector: ``X -> act(X W1 + b1) -> (more layers) ->
    scores``.

    Parameters
    ----------
    n_features, n_classes : int
    hidden : tuple of int, default=(32,)
        Widths of the hidden layers.
    activation : {"tanh", "softplus"}, default="tanh"
        Smooth activations only: PGD-CQA differentiates the inner gradient once more.
    """

    nonconvex = True

    def __init__(self, n_features, n_classes, hidden=(32,), activation="tanh"):
        if activation not in ("tanh", "softplus"):
            raise ValueError(f"activation must be 'tanh' or 'softplus', got {activation!r}")
        self.sizes = [int(n_features), *map(int, hidden), int(n_classes)]
        self.activation = torch.tanh if activation == "tanh" else F.softplus
        self.shapes = [(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        self.n_params = sum(a * b + b for a, b in self.shapes)

    def init(self, generator=None, dtype=torch.float64, device=None):
        """Glorot-uniform weights and zero biases, drawn from ``generator``."""
        parts = []
        for a, b in self.shapes:
            bound = math.sqrt(6.0 / (a + b))
            W = torch.rand(a * b, generator=generator, dtype=dtype) * 2 * bound - bound
            parts += [W, torch.zeros(b, dtype=dtype)]
        return torch.cat(parts).to(device)

    def scores(self, y, X):
        out, start = X, 0
        for layer, (a, b) in enumerate(self.shapes):
            W = y[start:start + a * b].reshape(a, b)
            bias = y[start + a * b:start + a * b + b]
            start += a * b + b
            out = out @ W + bias
            if layer < len(self.shapes) - 1:
                out = self.activation(out)
        return out


class ModuleModel:
    """Any ``torch.nn.Module`` mapping ``X`` to scores, on a flat parameter vector (through
    :func:`torch.func.functional_call`); ``nonconvex`` is assumed."""

    nonconvex = True

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.names = [n for n, _ in module.named_parameters()]
        self.shapes = [p.shape for _, p in module.named_parameters()]
        self.n_params = sum(p.numel() for p in module.parameters())

    def init(self, generator=None, dtype=torch.float64, device=None):
        flat = torch.cat([p.detach().reshape(-1) for p in self.module.parameters()])
        return flat.to(dtype=dtype, device=device).clone()

    def scores(self, y, X):
        params, start = {}, 0
        for name, shape in zip(self.names, self.shapes):
            size = math.prod(shape)
            params[name] = y[start:start + size].reshape(shape)
            start += size
        return torch.func.functional_call(self.module, params, (X,))


class WeightedModuleProblem:
    """The hyper-cleaning bilevel problem (see the module docstring).

    Parameters
    ----------
    X, t : torch.Tensor
        Training features ``(n, d)`` and class indices ``(n,)`` (int64, in ``[0, K)``).
    X_val, t_val : torch.Tensor
        The trusted set.
    model : LinearModel, MLPModel or ModuleModel
    reg : float, default=1e-4
        L2 penalty on ``y`` (it makes the linear inner problem strongly convex).
    base_weights : torch.Tensor or None
        The user's sample weights ``b_i`` (default 1).
    """

    def __init__(self, X, t, X_val, t_val, model, *, reg=1e-4, base_weights=None):
        self.X, self.t, self.X_val, self.t_val = X, t, X_val, t_val
        self.model, self.reg = model, float(reg)
        self.n = X.shape[0]
        self.base = (torch.ones(self.n, dtype=X.dtype, device=X.device)
                     if base_weights is None else base_weights)

    # -- values ---------------------------------------------------------------------------
    def weights(self, x):
        """The samples' weights ``b_i sigmoid(x_i)``."""
        return self.base * torch.sigmoid(x)

    def sample_losses(self, y):
        """``l(m_y(X_i), t_i)`` for every training sample."""
        return F.cross_entropy(self.model.scores(y, self.X), self.t, reduction="none")

    def inner_value(self, x, y):
        return (self.weights(x) @ self.sample_losses(y)) / self.n + 0.5 * self.reg * (y @ y)

    def outer_value(self, y):
        return F.cross_entropy(self.model.scores(y, self.X_val), self.t_val)

    # -- first order ----------------------------------------------------------------------
    def outer_grad(self, y):
        """``grad_y f`` (``grad_x f = 0``)."""
        y = y.detach().requires_grad_(True)
        return torch.autograd.grad(self.outer_value(y), y)[0]

    def inner_grad(self, x, y, create_graph=False):
        """``grad_y g(x, y)``; with ``create_graph`` it stays differentiable in x and y."""
        if not create_graph:
            y = y.detach().requires_grad_(True)
            return torch.autograd.grad(self.inner_value(x.detach(), y), y)[0]
        return torch.autograd.grad(self.inner_value(x, y), y, create_graph=True)[0]

    # -- second order, matrix-free ----------------------------------------------------------
    def constraint(self, x, y):
        """``(h, grad_x h, grad_y h)`` with ``h = ||grad_y g||^2``: one Hessian-vector
        product of ``g`` against ``v = grad_y g`` gives ``grad_x h = 2 grad_xy g v`` and
        ``grad_y h = 2 grad_yy g v``."""
        x = x.detach().requires_grad_(True)
        y = y.detach().requires_grad_(True)
        v = self.inner_grad(x, y, create_graph=True)
        gx, gy = torch.autograd.grad(v, (x, y), grad_outputs=2 * v.detach())
        return float(v.detach() @ v.detach()), gx, gy

    def hvp(self, x, y, v):
        """``grad_yy g(x, y) v``."""
        y = y.detach().requires_grad_(True)
        grad = self.inner_grad(x.detach(), y, create_graph=True)
        return torch.autograd.grad(grad, y, grad_outputs=v)[0]

    def cross(self, x, y, v):
        """``grad_xy g(x, y) v``: per sample ``(1/n) b_i sigmoid'(x_i) <grad_y l_i, v>``."""
        _, directional = torch.func.jvp(self.sample_losses, (y.detach(),), (v,))
        s = torch.sigmoid(x)
        return self.base * s * (1 - s) * directional / self.n

    # -- prediction -----------------------------------------------------------------------
    def scores(self, y, X):
        return self.model.scores(y, X)
