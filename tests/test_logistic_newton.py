"""LogisticNewtonCD: proximal Newton for binary L1 logistic regression (_logistic_newton)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skbilevel import BilevelLogisticRegressionCV
from skbilevel._logistic_newton import LogisticNewtonCD
from skbilevel._logistic_problem import logistic_criterion, logistic_problem
from skbilevel.engine.hypergrad import ImplicitSupport
from skbilevel.engine.inner import L1, L2, WeightedL1

F64 = torch.float64


def _problem(X, y, penalty=None, sample_weight=None, fit_intercept=True):
    n = X.shape[0]
    sw = np.ones(n) if sample_weight is None else sample_weight
    Xt = torch.sparse_csr_tensor(torch.tensor(X.indptr), torch.tensor(X.indices),
                                 torch.tensor(X.data), X.shape, dtype=F64) \
        if sp.issparse(X) else torch.tensor(X, dtype=F64)
    return logistic_problem(Xt, torch.tensor(y), 2, torch.tensor(sw, dtype=F64),
                            L1() if penalty is None else penalty, fit_intercept)


def _theta(C):
    return torch.tensor([-np.log(C)], dtype=F64)


def _kkt(X, y, v, lam, sw, fit_intercept=True):
    """Largest violation of the optimality conditions of (1/S) sum s_i loss_i + lam |w|,
    computed here from scratch with numpy."""
    d = X.shape[1]
    w, b = v[:d], (v[d] if fit_intercept else 0.0)
    p = 1.0 / (1.0 + np.exp(-(X @ w + b)))
    g = X.T @ (sw * (p - y)) / sw.sum()
    viol = np.where(w != 0, np.abs(g + lam * np.sign(w)), np.maximum(np.abs(g) - lam, 0))
    return max(viol.max(), abs((sw * (p - y)).sum() / sw.sum()) if fit_intercept else 0.0)


def _cancer(n=200):
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:n], y[:n]


def _one_hot(n=400, seed=0):
    """Categorical features one-hot encoded: every group of columns adds up to 1, so the
    coefficients are not unique (the fitted probabilities are)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 6, size=(n, 5))
    effect = rng.standard_normal((5, 6))
    logit = effect[np.arange(5), codes].sum(1)
    y = (logit + rng.logistic(size=n) > 0).astype(int)
    return OneHotEncoder(sparse_output=False).fit_transform(codes), y


@pytest.mark.parametrize("C", [0.01, 0.3, 3.0])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_scikit_learn_l1_logistic_regression(C, fit_intercept):
    X, y = _cancer()
    sw = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    problem = _problem(X, y, sample_weight=sw, fit_intercept=fit_intercept)
    sol = LogisticNewtonCD(tol=1e-12).solve(problem, _theta(C))
    assert sol.converged and sol.residual <= 1e-12
    v = sol.w[:, 0].numpy()
    # C against the sum of the weighted losses: the mean-loss penalty is 1 / (C S).
    assert _kkt(X, y, v, 1.0 / (C * sw.sum()), sw, fit_intercept) < 1e-11
    # liblinear penalises its intercept, as a feature of value intercept_scaling: its
    # coefficients differ from ours by ~1 / intercept_scaling (1e-3 at 1e3, 1e-5 at 1e5);
    # without an intercept the objectives are the same.
    ref = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", tol=1e-12,
                             max_iter=100000, fit_intercept=fit_intercept,
                             intercept_scaling=1e5 if fit_intercept else 1.0)
    ref.fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(v[:X.shape[1]], ref.coef_[0],
                               atol=1e-4 if fit_intercept else 1e-7)
    assert np.array_equal(v[:X.shape[1]] != 0, ref.coef_[0] != 0)


@pytest.mark.filterwarnings("ignore:Sparse:UserWarning")
def test_one_hot_design_matches_saga_predictions_and_kkt():
    X, y = _one_hot()
    problem = _problem(X, y)
    ref = LogisticRegression(C=1.0, l1_ratio=1.0, solver="saga", tol=1e-12,
                             max_iter=1000000).fit(X, y)
    for Xs in (X, sp.csr_matrix(X)):  # dense and sparse designs, one solution
        v = LogisticNewtonCD(tol=1e-12).solve(_problem(Xs, y), _theta(1.0)).w[:, 0].numpy()
        # tol is per unit of each coordinate (the intercept's, 1, above the rare columns')
        assert _kkt(X, y, v, 1.0 / len(y), np.ones(len(y))) < 1e-10
        proba = 1.0 / (1.0 + np.exp(-(X @ v[:-1] + v[-1])))
        np.testing.assert_allclose(proba, ref.predict_proba(X)[:, 1], atol=1e-6)
    # Warm starts from other values of C (the grid and the search) land on it too.
    solver = LogisticNewtonCD(tol=1e-12)
    for C in (0.01, 100.0, 1.0):
        sol = solver.solve(problem, _theta(C))
    assert sol.converged and sol.n_iter <= 10


def test_weighted_l1_satisfies_its_kkt_conditions():
    X, y = _cancer(150)
    penalty = WeightedL1(X.shape[1])
    theta = torch.tensor(np.random.default_rng(1).uniform(-3.0, -1.0, X.shape[1]), dtype=F64)
    sol = LogisticNewtonCD(tol=1e-12).solve(_problem(X, y, penalty), theta)
    v = sol.w[:, 0].numpy()
    assert 0 < np.count_nonzero(v[:-1]) < X.shape[1]
    # The mean-loss strengths exp(theta_j) / S (the Shifted wrapper of C).
    assert _kkt(X, y, v, np.exp(theta.numpy()) / len(y), np.ones(len(y))) < 1e-11


def test_hypergradient_on_the_support_matches_finite_differences():
    X, y = _one_hot(300, seed=2)
    train, val = np.arange(200), np.arange(200, 300)
    problem = _problem(X[train], y[train])
    criterion = logistic_criterion(problem, torch.tensor(X[val], dtype=F64),
                                   torch.tensor(y[val]))
    solver = LogisticNewtonCD(tol=1e-13)
    theta = _theta(0.5)
    out = ImplicitSupport().compute(problem, criterion, theta, solver=solver)

    def value(t):
        return float(criterion.value(solver.solve(problem, t).w))

    eps = 1e-5
    fd = (value(theta + eps) - value(theta - eps)) / (2 * eps)
    assert abs(float(out.grad[0])) > 1e-3  # not a flat stretch
    np.testing.assert_allclose(float(out.grad[0]), fd, rtol=1e-5)


def test_supports_binary_l1_only():
    X, y = _cancer(60)
    assert LogisticNewtonCD.supports(_problem(X, y))
    assert not LogisticNewtonCD.supports(_problem(X, y, L2()))
    with pytest.raises(TypeError, match="binary logistic"):
        LogisticNewtonCD().solve(_problem(X, y, L2()), _theta(1.0))
    with pytest.raises(ValueError, match="max_iter"):
        LogisticNewtonCD(max_iter=0)


def test_estimator_takes_it_for_binary_l1_and_fista_for_more_classes():
    X, y = _one_hot(300, seed=3)
    newton = BilevelLogisticRegressionCV(cv=3, penalty="l1").fit(X, y)
    fista = BilevelLogisticRegressionCV(cv=3, penalty="l1", solver="fista").fit(X, y)
    assert newton.solver_ == "newton-cd" and fista.solver_ == "fista"
    np.testing.assert_allclose(newton.C_, fista.C_, rtol=1e-3)
    np.testing.assert_allclose(newton.best_cv_error_, fista.best_cv_error_, rtol=1e-6)
    y3 = np.arange(len(y)) % 3
    assert BilevelLogisticRegressionCV(cv=3, penalty="l1", max_iter=2).fit(X, y3) \
        .solver_ == "fista"
    with pytest.raises(ValueError, match="solver='newton-cd' needs a binary problem"):
        BilevelLogisticRegressionCV(cv=3, penalty="l1", solver="newton-cd").fit(X, y3)


@pytest.mark.parametrize("kernel", ["direct", "enet_path"])
def test_gram_lasso_solve_matches_enet_path_on_the_data(kernel, monkeypatch):
    """The Newton models' Lasso, given by its moments, is scikit-learn's Lasso on the data
    behind them, whether the Cython kernel is called directly or through enet_path."""
    from sklearn.linear_model import Lasso

    import skbilevel._coordinate_descent as cd
    if kernel == "enet_path":
        monkeypatch.setattr(cd, "_cd_gram", None)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((80, 12))
    A[:, 3] = A[:, 2] + 1e-3 * rng.standard_normal(80)  # nearly collinear, as one-hot
    b = A[:, :4] @ [1.0, -2.0, 0.5, 0.0] + 0.1 * rng.standard_normal(80)
    alpha = 0.05  # of the mean squared error: sum-scaled moments take 80 * alpha
    ref = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=100000).fit(A, b)
    u = cd.enet_gram_solve(A.T @ A, A.T @ b, float(b @ b), 80 * alpha,
                           np.zeros(12), tol=1e-14, max_iter=100000)
    np.testing.assert_allclose(u, ref.coef_, atol=1e-9)
    assert 0 < np.count_nonzero(u) < 12
    start = rng.standard_normal(12)
    warm = cd.enet_gram_solve(A.T @ A, A.T @ b, float(b @ b), 80 * alpha, start.copy(),
                              tol=1e-14, max_iter=100000)
    np.testing.assert_allclose(warm, ref.coef_, atol=1e-9)  # from a warm start too
    kept = start.copy()
    cd.enet_gram_solve(A.T @ A, A.T @ b, float(b @ b), 80 * alpha, start, tol=1e-3,
                       max_iter=3)
    assert np.array_equal(start, kept)  # the caller's start is not overwritten


@pytest.mark.filterwarnings("ignore:Sparse:UserWarning")
def test_fold_arrays_are_cached_beside_the_problem_not_in_it():
    """The solver's float64 copies and warm starts live as long as the problem, outside
    it: a problem sent to a joblib worker (pickled) does not carry them."""
    import gc
    import pickle

    import skbilevel._logistic_newton as ln
    X, y = _one_hot(200, seed=4)
    for Xs in (X, sp.csr_matrix(X)):
        problem = _problem(Xs, y)
        size = len(pickle.dumps(problem))
        first = LogisticNewtonCD().solve(problem, _theta(1.0))
        # (the problem's own small caches of its scales grow it by ~0.5 kB; the solver's
        # copies of X, two for a sparse one, are 12-48 kB)
        assert len(pickle.dumps(problem)) - size < 4000
        # A second solver (the search's, after the grid's) finds the first one's arrays
        # and solution: handed that solution, it starts at it (one KKT check, no step).
        again = LogisticNewtonCD().solve(problem, _theta(1.0), first.w)
        assert again.n_iter == 0 and torch.equal(again.w, first.w)
        assert problem in ln._CACHE
        del problem
        gc.collect()
        assert len(ln._CACHE) == 0


@pytest.mark.parametrize("sparse", [False, True])
def test_gram_of_row_pairs_matches_blas_and_the_solutions_agree(sparse, monkeypatch):
    """On a one-hot design the Newton models' Gram matrices come from the products of each
    row's nonzeros (a sparse product, see _pair_matrix): the same matrices as BLAS's on
    any working set, ragged rows and weights included, and the same solutions."""
    import skbilevel._logistic_newton as ln
    X, y = _one_hot(300, seed=5)
    X[::7, :3] = 0.0  # rows of unequal length, a weighted entry
    X[1, 4] = 2.5
    Xs = sp.csr_matrix(X) if sparse else X
    data = ln._arrays(_problem(Xs, y))
    assert data.pairs(X.shape[1]) is not None
    h = np.random.default_rng(0).random(X.shape[0])
    for ws in (np.arange(X.shape[1]), np.array([0, 3, 4, 17, 29]), np.array([2])):
        np.testing.assert_allclose(ln._gram(data, ws, h), X[:, ws].T @ (h[:, None] * X[:, ws]),
                                   rtol=1e-13, atol=1e-13)
    solutions = []
    for pair_max in (ln._PAIR_MAX, 0):  # 0: never built, BLAS / scipy's product
        monkeypatch.setattr(ln, "_PAIR_MAX", pair_max)
        problem = _problem(Xs, y)
        solutions.append(LogisticNewtonCD(tol=1e-12).solve(problem, _theta(0.5)).w)
        assert (ln._arrays(problem).pairs(X.shape[1]) is None) == (pair_max == 0)
    torch.testing.assert_close(solutions[0], solutions[1], rtol=0, atol=1e-9)


@pytest.mark.parametrize("loose", [1e3, 1e12])
def test_models_solved_loosely_far_from_the_solution_reach_the_same_one(loose, monkeypatch):
    """Inexact Newton (_LOOSE): the models far from the solution are solved to a tolerance
    that shrinks with the squared KKT residual. Fewer coordinate-descent sweeps, the same
    solution to the tolerance; a forcing term so loose that Newton stalls (1e12: every
    model to _LOOSE_MAX) falls back to _SUB_TOL and still converges."""
    import skbilevel._coordinate_descent as cd
    import skbilevel._logistic_newton as ln
    X, y = _one_hot(400, seed=2)
    kernel = cd._cd_gram
    runs = {}
    for forcing in (0.0, loose):
        monkeypatch.setattr(ln, "_LOOSE", forcing)
        sweeps, tols = [], []

        def counting(*args, sweeps=sweeps, tols=tols):
            out = kernel(*args)
            sweeps.append(out[3])
            tols.append(args[7])
            return out

        monkeypatch.setattr(cd, "_cd_gram", counting)
        problem, solver = _problem(X, y), LogisticNewtonCD(tol=1e-11)
        for C in (0.05, 2.0):  # a cold start, then a warm one from far
            sol = solver.solve(problem, _theta(C))
            assert sol.converged
            assert _kkt(X, y, sol.w[:, 0].numpy(), 1.0 / (C * len(y)), np.ones(len(y))) < 1e-9
        runs[forcing] = sol.w, sum(sweeps), max(tols)
    assert runs[0.0][2] == ln._SUB_TOL and runs[loose][2] > 1e3 * ln._SUB_TOL
    assert runs[loose][1] < runs[0.0][1]
    proba = [1.0 / (1.0 + np.exp(-(X @ w[:-1, 0].numpy() + float(w[-1, 0]))))
             for w, _, _ in runs.values()]
    np.testing.assert_allclose(proba[0], proba[1], atol=1e-8)
