"""The logistic Hessian formed directly (``support_hessian``) and the Newton polish it serves."""

import pytest
import torch

from skbilevel.engine.inner import L2, ProximalProblem
from skbilevel.engine.solvers import LBFGS


def _problem(fit_intercept, seed=0, n=300, d=7, separation=0.3):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (X[:, 0] + separation * torch.randn(n, generator=gen, dtype=torch.float64) > 0)
    weights = torch.rand(n, generator=gen, dtype=torch.float64)
    return ProximalProblem.logistic(X, y.double(), L2(), weights, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_support_hessian_is_the_hessian_of_the_products(fit_intercept):
    """The whole block (its fast path) and a masked one equal smooth_hvp of the identity."""
    problem = _problem(fit_intercept)
    rows = 7 + fit_intercept
    w = 0.3 * torch.randn(rows, 1, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    theta = torch.zeros(1, dtype=torch.float64)
    full = problem.smooth_hvp(w, theta, torch.eye(rows, dtype=torch.float64))
    everywhere = torch.ones_like(w, dtype=torch.bool)
    torch.testing.assert_close(problem.support_hessian(w, everywhere), full, rtol=1e-12,
                               atol=1e-14)
    mask = everywhere.clone()
    mask[2] = False
    keep = mask[:, 0]
    torch.testing.assert_close(problem.support_hessian(w, mask), full[keep][:, keep],
                               rtol=1e-12, atol=1e-14)


def test_newton_polish_with_the_direct_hessian_reaches_the_tolerance():
    """Nearly separable data and a weak penalty: L-BFGS alone stops short of 1e-12; the
    polish (Hessian formed directly) gets there, to the minimiser the products' polish finds."""
    problem = _problem(True, separation=0.05)
    theta = torch.tensor([-8.0], dtype=torch.float64)
    direct = LBFGS(tol=1e-12, max_iter=30, newton_max=0).solve(problem, theta)
    assert direct.residual <= 1e-12
    products = LBFGS(tol=1e-12, max_iter=30, newton_max=0)
    products.optional = ("variable_scale", "smooth_hvp", "penalty_hessian_diag")
    reference = products.solve(problem, theta)
    torch.testing.assert_close(direct.w, reference.w, rtol=1e-8, atol=1e-10)
