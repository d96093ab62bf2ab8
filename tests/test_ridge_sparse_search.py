"""BilevelRidgeCV on sparse X with a matrix-free solver: the grid, then a bracketing search.

The search's Krylov solves stop at a tenth of ``tol`` (not the refit's 1e-8), ``best_score_``
and the refit are warm-started from the folds' solutions, and the ridge problem's gradient
at zero (every Krylov solve's right-hand side) costs no product with X. Each test checks
the answer against dense numpy fits.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from skbilevel import BilevelRidgeCV
from skbilevel._ridge_folds import gram_scale
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.solvers import KrylovSolver
from skbilevel.utils._tensor import to_tensor


def _sparse_problem(seed, n=1000, d=300, density=0.02):
    # d**3 > 4000 * nnz: "auto" goes matrix-free (CG) and the search brackets one alpha.
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    coef = np.where(rng.random(d) < 0.1, rng.standard_normal(d), 0.0)
    return X, X @ coef + 3.0 + 0.5 * rng.standard_normal(n)


@pytest.mark.parametrize("seed", [0, 1])
def test_loose_search_never_stops_above_the_best_grid_point(seed, ridge_ref):
    X, y = _sparse_problem(seed)
    splits = list(KFold(5, shuffle=True, random_state=seed).split(X))
    reg = BilevelRidgeCV(cv=splits).fit(X, y)
    h = reg.history_
    grid = h["phase"] == "grid"
    assert np.sum(h["phase"] == "optimize") >= 1
    # Never worse than the grid's best point, by exact dense refits of both.
    best_alpha = h["alpha"][grid][np.argmin(h["objective"][grid])]
    cv_error = ridge_ref.cv_value(X, y, None, reg.alpha_, splits)
    assert cv_error <= ridge_ref.cv_value(X, y, None, best_alpha, splits) * (1 + 1e-9)


@pytest.mark.parametrize("tol, rtol", [(1e-5, 1e-6), (1e-3, 1e-6), (1e-10, 1e-8),
                                       (1e-7, 1e-8)])
def test_search_solves_to_a_tenth_of_tol(tol, rtol):
    X, _ = _sparse_problem(0)
    options = BilevelRidgeCV(tol=tol)._scalar_search(
        KrylovSolver(), X.shape[1], torch.float64, np.log(100.0), X.nnz)
    for part in (options["solver"], options["method"]):
        assert part.linear_solver.rtol == pytest.approx(rtol)
    assert options["grid_solver"].linear_solver.rtol == pytest.approx(1e-5)


def test_tiny_sparse_problems_keep_strict_search_solves():
    # Below 2,000 stored entries the search keeps 1e-8 (a product costs nothing there):
    # alpha_ then agrees to ~1e-9 between equivalent data, as the sample-weight
    # equivalence estimator check needs.
    X, _ = _sparse_problem(0, n=100, d=300, density=0.02)
    assert X.nnz < 2_000
    options = BilevelRidgeCV(tol=1e-5)._scalar_search(
        KrylovSolver(), X.shape[1], torch.float64, np.log(100.0), X.nnz)
    assert options["solver"].linear_solver.rtol == pytest.approx(1e-8)


def test_refit_is_solved_to_1e_12(ridge_ref):
    # The fitted coefficients are the exact ridge solution at alpha_ to ~1e-11, whatever
    # the refit's warm start (the mean of the folds' solutions).
    X, y = _sparse_problem(1)
    reg = BilevelRidgeCV().fit(X, y)
    coef, b = ridge_ref.fit(X, y, None, reg.alpha_)
    assert_allclose(reg.coef_, coef[:, 0], rtol=0, atol=1e-10 * np.abs(coef).max())
    assert_allclose(reg.intercept_, b[0], rtol=1e-10)


def test_loose_search_solves_still_give_the_cv_error_of_exact_fits(ridge_ref):
    # At the default tol the search stops its solves at a relative residual of 1e-6:
    # the reported CV error is that of exact dense fits at alpha_ to ~1e-7, best_score_
    # is the folds' mean R^2 and coef_ the exact refit (both solved again at 1e-8).
    X, y = _sparse_problem(2)
    splits = list(KFold(5, shuffle=True, random_state=2).split(X))
    reg = BilevelRidgeCV(cv=splits).fit(X, y)
    cv_error = ridge_ref.cv_value(X, y, None, reg.alpha_, splits)
    assert_allclose(reg.best_cv_error_, cv_error, rtol=1e-6)
    scores = []
    for train, val in splits:
        coef, b = ridge_ref.fit(X[train], y[train], None, reg.alpha_)
        scores.append(r2_score(y[val], X[val] @ coef[:, 0] + b[0]))
    assert_allclose(reg.best_score_, np.mean(scores), rtol=1e-8)
    coef, b = ridge_ref.fit(X, y, None, reg.alpha_)
    assert_allclose(reg.coef_, coef[:, 0], rtol=1e-6, atol=2e-8 * np.abs(coef).max())
    assert_allclose(reg.intercept_, b[0], rtol=1e-8)


def test_ridge_gradient_at_zero_needs_no_product_with_x():
    X, y = _sparse_problem(0, n=80, d=30, density=0.2)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    t = lambda a: to_tensor(a, torch.float64, "cpu")  # noqa: E731
    problem = RidgeProblem(t(X), t(y)[:, None], t(sw))
    calls = []
    matvec = problem.design.matvec
    problem.design.matvec = lambda v: calls.append(1) or matvec(v)
    theta = t([0.3])
    assert_allclose(problem.grad(problem.init_params(), theta), -problem.xty, rtol=0)
    assert not calls
    # Elsewhere the gradient is H w - X_c^T S y_c, from the dense weighted Gram.
    w = t(np.random.default_rng(2).standard_normal((30, 1)))
    Xd = X.toarray()
    Xc = Xd - sw @ Xd / sw.sum()
    H = Xc.T @ (sw[:, None] * Xc) + np.exp(0.3) * np.eye(30)
    expected = H @ w.numpy() - Xc.T @ (sw * (y - sw @ y / sw.sum()))[:, None]
    assert_allclose(problem.grad(w, theta), expected, rtol=1e-10)
    assert calls


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gram_scale_of_sparse_x_is_that_of_its_dense_copy(fit_intercept, ridge_ref):
    X, _ = _sparse_problem(3, n=50, d=20, density=0.3)
    sw = np.random.default_rng(0).uniform(0.1, 3.0, 50)
    expected = ridge_ref.gram_scale(X, sw, fit_intercept)
    assert_allclose(gram_scale(X, sw, fit_intercept), expected, rtol=1e-12)
    # A CSR matrix with duplicate entries (summed when densified): the square of the sum.
    data, indices, indptr = [], [], [0]
    for i in range(X.shape[0]):
        row = X.getrow(i)
        data += list(row.data) + list(0.5 * row.data[:1])  # the first entry twice
        indices += list(row.indices) + list(row.indices[:1])
        indptr.append(len(data))
    dup = sp.csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=X.shape)
    assert not dup.has_canonical_format
    assert_allclose(gram_scale(dup, sw, fit_intercept),
                    ridge_ref.gram_scale(dup.toarray(), sw, fit_intercept), rtol=1e-12)
