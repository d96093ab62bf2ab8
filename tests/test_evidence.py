"""The evidence (type-II maximum likelihood) start of the per-feature ridge stage."""

import numpy as np
import torch
from sklearn.linear_model import ARDRegression

from skbilevel._evidence import MAX_FEATURES, evidence_log_penalties
from skbilevel.engine.inner import RidgeProblem


def _problem(seed, n=300, d=12, n_relevant=5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:n_relevant] = rng.uniform(1.0, 3.0, n_relevant) * rng.choice([-1, 1], n_relevant)
    y = X @ coef + 1.0 + rng.standard_normal(n)
    T = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return X, y, RidgeProblem(T(X), T(y[:, None]), None), n_relevant


def test_evidence_penalties_match_ard(global_random_seed):
    X, y, problem, k = _problem(global_random_seed)
    d = X.shape[1]
    groups = torch.arange(d)
    theta = evidence_log_penalties(problem, torch.zeros(1, dtype=torch.float64), groups, d,
                                   (-30.0, 30.0), max_iter=300, tol=1e-8)
    # ARD's precisions over its noise precision are the same penalties in ridge units.
    ard = ARDRegression(max_iter=1000, tol=1e-10, threshold_lambda=1e30).fit(X, y)
    ref = np.log(ard.lambda_ / ard.alpha_)
    # Relevant features agree up to ARD's weak gamma hyper-priors; irrelevant ones are
    # pushed toward pruning by both (the fixed point sends them to infinity, slowly).
    np.testing.assert_allclose(theta[:k].numpy(), ref[:k], atol=0.05)
    assert theta[k:].min() > theta[:k].max() + np.log(20)
    assert ref[k:].min() > ref[:k].max() + np.log(20)


def test_evidence_groups_share_a_penalty():
    X, y, problem, k = _problem(0)
    groups = torch.as_tensor([0] * k + [1] * (X.shape[1] - k))
    theta = evidence_log_penalties(problem, torch.zeros(1, dtype=torch.float64), groups, 2,
                                   (-30.0, 30.0))
    assert theta.shape == (2,) and theta[1] > theta[0] + np.log(100)


def test_evidence_respects_bounds_and_size_limit():
    X, y, problem, _ = _problem(0)
    d = X.shape[1]
    theta = evidence_log_penalties(problem, torch.zeros(1, dtype=torch.float64),
                                   torch.arange(d), d, (-1.0, 2.0))
    assert theta.min() >= -1.0 and theta.max() <= 2.0
    big = RidgeProblem(torch.zeros(5, MAX_FEATURES + 1, dtype=torch.float64),
                       torch.ones(5, 1, dtype=torch.float64), None)
    assert evidence_log_penalties(big, torch.zeros(1, dtype=torch.float64),
                                  torch.arange(MAX_FEATURES + 1), MAX_FEATURES + 1,
                                  (-1.0, 1.0)) is None
