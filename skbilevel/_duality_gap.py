"""The duality gap of the Lasso-type refits, as scikit-learn reports it (``dual_gap_``)."""

from __future__ import annotations

import torch


def duality_gap(problem, w, theta):
    """scikit-learn's duality gap (``ElasticNet.dual_gap_``) of ``problem`` at ``w``.

    ``problem`` is least squares, ``f(w) = 1/(2S) sum_i s_i (y_i - x_i w - b)^2`` after the
    intercept's elimination, plus an L1-type penalty written as scikit-learn's elastic net
    ``alpha (rho ||c w||_1 + (1 - rho) / 2 ||c w||^2)`` (``enet_form``: ``c`` is 1, or the
    per-feature weights of a weighted Lasso). The dual point is scikit-learn's rescaled
    residual, so the gap is the one coordinate descent reports (formulation A of
    ``sklearn.linear_model._cd_fast``, divided by ``n``); written with ``f`` and its
    gradient only (``||r||^2 / n = 2 f``, ``X^T r / n = -grad f``, ``r^T y / n = 2 f - w.grad
    f``), so it needs no copy of the data and serves sparse designs too.

    Parameters
    ----------
    problem : ProximalProblem
        Least-squares datafit, penalty with ``enet_form`` (L1, WeightedL1, ElasticNet).
    w : torch.Tensor
        The coefficients, shape ``(n_features, 1)``.
    theta : torch.Tensor
        Hyperparameters.

    Returns
    -------
    float
        Primal minus dual objective: non-negative up to rounding, zero at the solution.
    """
    alpha, l1_ratio, weights = problem.penalty.enet_form(theta.detach())
    w = w.detach()
    f, g = float(problem.smooth_value(w)), problem.smooth_grad(w)
    c = torch.ones_like(w) if weights is None else weights.reshape(w.shape)
    v = c * w  # scikit-learn's coefficients (on the columns X_j / c_j)
    l1, l2 = alpha * l1_ratio, alpha * (1 - l1_ratio)
    v_l1, v_l2 = float(v.abs().sum()), float((v * v).sum())
    primal = f + l1 * v_l1 + 0.5 * l2 * v_l2
    # The residual scaled into the dual feasible set: ||X^T r / n - l2 v||_inf <= l1.
    dual_norm = float((-g / c - l2 * v).abs().max()) if w.numel() else 0.0
    scale = l1 / dual_norm if dual_norm > l1 else 1.0
    r_dot_y = 2 * f - float((w * g).sum())
    dual = -0.5 * scale ** 2 * (2 * f + l2 * v_l2) + scale * r_dot_y
    return primal - dual
