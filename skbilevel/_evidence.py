"""Type-II maximum likelihood (evidence) penalties: a starting point for per-feature ridge.

With the Gaussian prior ``w_j ~ N(0, sigma^2 / alpha_j)`` the ridge solution is the
posterior mean, and MacKay's fixed point maximises the marginal likelihood over the
``alpha_j`` (what ``sklearn.linear_model.ARDRegression`` does). It prunes irrelevant
features (``alpha_j -> inf``) where gradient steps on a flat CV surface barely move, so
the per-feature stage of :class:`~skbilevel.BilevelRidgeCV` offers it as one of its
starting candidates and lets the cross-validated objective decide.
"""

from __future__ import annotations

import torch

# A dense d x d inverse per iteration: beyond this many features the start is skipped.
MAX_FEATURES = 1000


def evidence_log_penalties(problem, theta_shared, groups, n_hyper, bounds, *, max_iter=50,
                           tol=1e-3):
    """MacKay fixed-point iterations for one penalty per group; returns ``log alpha``.

    Parameters
    ----------
    problem : RidgeProblem
        The problem on all tuning rows (its ``gram``, ``xty``, ``weighted_rss``, ``weight_sum``).
    theta_shared : torch.Tensor
        ``log alpha`` of the shared-penalty stage, the starting point.
    groups : torch.Tensor
        ``(d,)`` map from feature to penalty.
    n_hyper : int
        Number of penalties.
    bounds : tuple of float
        Bounds on ``log alpha``; the iterations stay inside them.
    max_iter : int
        Fixed-point iterations (each one ``O(d^3)``).
    tol : float
        Stop when no ``log alpha`` moves by more than ``tol``.

    Returns
    -------
    torch.Tensor or None
        ``(n_hyper,)`` log-penalties, or None if the problem is too large or degenerate.
    """
    gram, xty = problem.gram, problem.xty
    d, k = xty.shape
    if d > MAX_FEATURES or d == 0:
        return None
    counts = torch.bincount(groups, minlength=n_hyper).to(gram.dtype)
    theta = theta_shared.expand(n_hyper).clone()
    for _ in range(max_iter):
        alpha = torch.exp(theta)[groups]
        L, info = torch.linalg.cholesky_ex(gram + torch.diag(alpha))
        if int(info) != 0:
            return None
        w = torch.cholesky_solve(xty, L)
        # gamma_j in [0, 1]: how well feature j is determined by the data, not the prior.
        gamma = (1.0 - alpha * torch.cholesky_inverse(L).diagonal()).clamp(0.0, 1.0)
        dof = float(problem.weight_sum) - float(gamma.sum())
        if not dof > 0:
            return None
        sigma2 = problem.weighted_rss(w) / (dof * k)
        gamma_g = torch.zeros(n_hyper, dtype=gram.dtype, device=gram.device)
        gamma_g = gamma_g.index_add_(0, groups, gamma)
        w2_g = torch.zeros_like(gamma_g).index_add_(0, groups, (w ** 2).mean(1))
        # A group with no signal left (w = 0 or gamma = 0) goes to the upper bound.
        ratio = sigma2 * gamma_g.clamp_min(1e-300) / w2_g.clamp_min(1e-300 * counts)
        new = torch.log(ratio).clamp(bounds[0], bounds[1])
        if not bool(torch.isfinite(new).all()):
            return None
        done = float((new - theta).abs().max()) <= tol
        theta = new
        if done:
            break
    return theta
