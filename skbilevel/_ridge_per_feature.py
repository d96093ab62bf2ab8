"""BilevelRidgeCV's several penalties: the feature -> penalty map, the starting points of
the per-feature stage and the shrinkage prior on ``log(alpha)``."""

from __future__ import annotations

import numpy as np
import torch

from ._evidence import evidence_log_penalties
from ._ridge_folds import one_shot


def feature_groups(spec, d):
    """Map every feature to its entry of theta (``alpha_per_feature`` = ``spec``);
    returns (groups, n_hyper)."""
    if isinstance(spec, (bool, np.bool_)):
        groups = np.arange(d) if spec else np.zeros(d, dtype=np.int64)
    else:
        labels = np.asarray(spec)
        if labels.shape != (d,):
            raise ValueError(f"alpha_per_feature as group labels must have shape "
                             f"(n_features,)=({d},), got {labels.shape}")
        groups = np.unique(labels, return_inverse=True)[1].ravel()
    return groups.astype(np.int64), int(groups.max()) + 1 if d else 1


def per_feature_starts(problem, groups, n_hyper, theta_shared, solver, bounds):
    """Starting candidates for several penalties, best first by the caller's grid.

    The shared optimum broadcast to every group, and the Gaussian-prior ridge
    ``alpha_g = sigma^2 / mean_{j in g} w_j^2`` at three scales, with ``w`` and the
    noise level ``sigma^2`` from the shared-alpha fit. The latter matters where the CV
    surface is flat around the shared optimum (small alpha, n >> d), where gradient
    steps from the broadcast point barely move.
    """
    w = one_shot(solver).solve(problem, theta_shared).w
    sigma2 = problem.weighted_rss(w) / (problem.weight_sum * w.shape[1])
    tau2 = torch.zeros(n_hyper, dtype=w.dtype, device=w.device).index_add_(
        0, groups, (w ** 2).mean(1)) / torch.bincount(groups, minlength=n_hyper)
    tau2 = tau2.clamp_min(1e-12 * float(tau2.max()) + 1e-300)
    prior = torch.log(sigma2 / tau2)
    starts = [theta_shared.expand(n_hyper)] + [prior + np.log(c) for c in (0.1, 1.0, 10.0)]
    evidence = evidence_log_penalties(problem, theta_shared, groups, n_hyper, bounds)
    if evidence is not None:
        starts.append(evidence)
    return torch.stack(starts).clamp(bounds[0], bounds[1])


def shrinkage_penalty(strength, reference):
    """``theta -> strength * reference * var(theta)`` and its gradient (None if off)."""
    if strength == 0:
        return None
    weight = strength * abs(reference)

    def penalty(theta):
        centred = theta - theta.mean()
        return weight * (centred ** 2).mean(), 2.0 * weight * centred / centred.numel()

    return penalty
