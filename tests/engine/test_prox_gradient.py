"""Proximal solvers with time-varying steps and forward-mode hypergradients (issue 4, engine)."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import ElasticNet as SkElasticNet
from sklearn.linear_model import Lasso

from skbilevel.engine import WarmStart, quiet_sparse_beta
from skbilevel.engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
from skbilevel.engine.inner import L1, ElasticNet, ProximalProblem, WeightedL1
from skbilevel.engine.outer import HeldOutMSE
from skbilevel.engine.solvers import FISTA, ProximalGradient

F64 = torch.float64
SCHEDULES = {"constant": "constant", "oscillating": lambda k: 1.0 + 0.9 * np.sin(k),
             "backtracking": "backtracking"}


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def _data(seed, n=120, d=30, n_val=60):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_val, d))
    coef = np.zeros(d)
    coef[:6] = rng.uniform(1, 3, 6) * rng.choice([-1, 1], 6)
    y = X @ coef + 2.0 + rng.standard_normal(n + n_val)
    return X[:n], y[:n], X[n:], y[n:]


def _solvers():
    return [ProximalGradient(step=s, tol=1e-12, max_iter=20000) for s in SCHEDULES.values()] + \
        [FISTA(tol=1e-12, max_iter=20000), FISTA(restart="function", tol=1e-12, max_iter=20000)]


@pytest.mark.parametrize("solver", _solvers(), ids=list(SCHEDULES) + ["fista", "fista-restart"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["icpt", "noicpt"])
def test_solutions_equal_sklearn(solver, fit_intercept, global_random_seed):
    X, y, _, _ = _data(global_random_seed)
    sw = np.random.default_rng(global_random_seed).uniform(0.5, 2.0, len(y))
    lasso = ProximalProblem.least_squares(T(X), T(y[:, None]), L1(), T(sw), fit_intercept)
    sol = solver.solve(lasso, T([np.log(0.1)]))
    ref = Lasso(alpha=0.1, fit_intercept=fit_intercept, tol=1e-14, max_iter=100000)
    ref.fit(X, y, sample_weight=sw * len(y) / sw.sum())  # sklearn rescales weights to n
    assert sol.converged
    np.testing.assert_allclose(sol.w.numpy()[:, 0], ref.coef_, atol=1e-7)
    np.testing.assert_allclose(float(lasso.intercept(sol.w)[0]), ref.intercept_, atol=1e-7)
    enet = ProximalProblem.least_squares(T(X), T(y[:, None]), ElasticNet(), None, fit_intercept)
    sol = solver.solve(enet, T([np.log(0.2), np.log(0.3 / 0.7)]))
    ref = SkElasticNet(alpha=0.2, l1_ratio=0.3, fit_intercept=fit_intercept, tol=1e-14,
                       max_iter=100000).fit(X, y)
    np.testing.assert_allclose(sol.w.numpy()[:, 0], ref.coef_, atol=1e-7)


def _held_out(seed, penalty, theta):
    X, y, Xv, yv = _data(seed)
    problem = ProximalProblem.least_squares(T(X), T(y[:, None]), penalty)
    return problem, HeldOutMSE.for_problem(problem, T(Xv), T(yv[:, None])), T(theta)


CASES = {"l1": (L1(), [np.log(0.15)]),
         "elastic_net": (ElasticNet(), [np.log(0.2), 0.4]),
         "weighted_l1": (WeightedL1(30), list(np.log(np.linspace(0.05, 0.3, 30))))}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("solver", [ProximalGradient(tol=1e-13, max_iter=50000),
                                    FISTA(tol=1e-13, max_iter=50000)], ids=["pgd", "fista"])
def test_forward_mode_matches_finite_differences(case, solver, global_random_seed):
    penalty, theta0 = CASES[case]
    problem, criterion, theta = _held_out(global_random_seed, penalty, theta0)
    res = ForwardMode().compute(problem, criterion, theta, solver=solver)
    h = 1e-5
    fd = []
    for j in range(theta.numel()):
        e = torch.zeros_like(theta)
        e[j] = h
        up = criterion.value(solver.solve(problem, theta + e).w)
        down = criterion.value(solver.solve(problem, theta - e).w)
        fd.append(float(up - down) / (2 * h))
    np.testing.assert_allclose(res.grad.numpy(), fd, rtol=1e-4,
                               atol=1e-6 * np.abs(fd).max())
    # a warm start (iterates and Jacobian) gives the same hypergradient
    again = ForwardMode().compute(problem, criterion, theta, solver=solver,
                                  warm_start=res.warm_start)
    np.testing.assert_allclose(again.grad.numpy(), res.grad.numpy(), rtol=1e-6, atol=1e-12)
    assert isinstance(again.warm_start, WarmStart) and again.n_inner_iter < res.n_inner_iter


def _slope(values):
    k = np.arange(len(values))
    return np.polyfit(k, np.log(values), 1)[0]


# Backtracking now converges in a few tens of iterations, too short a window for this fit;
# tests/engine/test_unrolled.py covers it with a window fitted to its length.
@pytest.mark.parametrize("name", ["constant", "oscillating", "fista"])
def test_derivative_iterates_converge_at_the_rate_of_the_iterates(name, global_random_seed):
    """Mehmood & Ochs: ``||J_k - Dpsi||`` -> 0 at the linear rate of ``||x_k - x*||``."""
    X, y, _, _ = _data(global_random_seed)
    problem = ProximalProblem.least_squares(T(X), T(y[:, None]), L1())
    alpha = 0.15
    theta = T([np.log(alpha)])
    x_star = ProximalGradient(tol=1e-14, max_iter=100000).solve(problem, theta).w[:, 0]
    support = (x_star != 0).numpy()
    # On the support the optimality condition is H_SS x_S - (X^T y)_S / n + alpha sign = 0,
    # H = X_c^T X_c / n, so d x_S / d alpha = -H_SS^{-1} sign(x*_S) and, for
    # theta = log alpha, Dpsi_S = -alpha H_SS^{-1} sign(x*_S); Dpsi = 0 off the support.
    H = problem.smooth_hvp(None, None, torch.eye(X.shape[1], dtype=F64)).numpy()
    d_psi = np.zeros(X.shape[1])
    d_psi[support] = -alpha * np.linalg.solve(H[np.ix_(support, support)],
                                              np.sign(x_star.numpy()[support]))
    solver = FISTA(tol=0.0, max_iter=600, record=True) if name == "fista" else \
        ProximalGradient(step=SCHEDULES[name], tol=0.0, max_iter=600, record=True)
    sol, _ = solver.run(problem, theta, None, torch.zeros(X.shape[1], 1, dtype=F64))
    err_x = np.array([float(torch.linalg.vector_norm(r["w"][:, 0] - x_star))
                      for r in sol.history])
    err_j = np.array([np.linalg.norm(r["J"].numpy()[:, 0] - d_psi) for r in sol.history])
    supports = np.array([np.array_equal(r["w"].numpy()[:, 0] != 0, support)
                         for r in sol.history])
    identified = len(supports) - np.argmin(supports[::-1]) if not supports.all() else 0
    assert identified < 300  # the support is found, and kept
    assert err_j[-1] < 1e-6 * err_j[0]  # J_k -> Dpsi
    window = np.arange(identified + 5, len(err_x))
    window = window[(err_x[window] > 1e-11) & (err_j[window] > 1e-11)][:200]
    assert len(window) > 20
    sx, sj = _slope(err_x[window]), _slope(err_j[window])
    assert sx < 0 and abs(sj - sx) <= 0.2 * abs(sx), (sx, sj)


def test_bad_step():
    with pytest.raises(ValueError, match="step"):
        ProximalGradient(step="armijo")
    with pytest.raises(ValueError, match="restart"):
        FISTA(restart="sometimes")


@pytest.mark.parametrize("case", list(CASES))
def test_forward_reverse_implicit_agree_at_convergence(case, global_random_seed):
    penalty, theta0 = CASES[case]
    problem, criterion, theta = _held_out(global_random_seed, penalty, theta0)
    solver = FISTA(tol=1e-13, max_iter=50000)
    grads = {name: method.compute(problem, criterion, theta, solver=solver).grad.numpy()
             for name, method in [("forward", ForwardMode()), ("reverse", ReverseMode()),
                                  ("implicit", ImplicitSupport())]}
    scale = np.abs(grads["implicit"]).max()
    for name in ("forward", "reverse"):
        np.testing.assert_allclose(grads[name], grads["implicit"], rtol=1e-6,
                                   atol=1e-8 * scale, err_msg=name)


def test_reverse_truncation():
    problem, criterion, theta = _held_out(0, L1(), [np.log(0.15)])
    solver = ProximalGradient(tol=1e-12, max_iter=50000)
    full = ReverseMode().compute(problem, criterion, theta, solver=solver)
    K = solver.solve(problem, theta).n_iter
    same = ReverseMode(truncate=K + 10).compute(problem, criterion, theta, solver=solver)
    np.testing.assert_allclose(same.grad.numpy(), full.grad.numpy(), rtol=1e-12)
    short = ReverseMode(truncate=5).compute(problem, criterion, theta, solver=solver)
    # a few iterations only see part of the derivative: biased, but the same sign here
    assert abs(short.grad - full.grad) > 1e-3 * abs(full.grad)
    with pytest.raises(ValueError, match="truncate"):
        ReverseMode(truncate=0)


def test_implicit_support_warm_start_and_empty_support():
    problem, criterion, theta = _held_out(0, L1(), [np.log(0.15)])
    solver = FISTA(tol=1e-13, max_iter=50000)
    first = ImplicitSupport().compute(problem, criterion, theta, solver=solver)
    again = ImplicitSupport().compute(problem, criterion, theta, solver=solver,
                                      warm_start=first.warm_start)
    np.testing.assert_allclose(again.grad.numpy(), first.grad.numpy(), rtol=1e-8)
    assert again.n_linsys_iter <= 1
    huge = ImplicitSupport().compute(problem, criterion, T([np.log(1e3)]), solver=solver)
    assert float(huge.w.abs().max()) == 0.0 and float(huge.grad.abs().max()) == 0.0


def test_implicit_support_with_duplicated_features_matches_the_original():
    """Every column twice: the support system is exactly singular, and its minimum-norm
    solution gives the original problem's hypergradient (the fitted values, hence the
    validation error, are those of the original Lasso)."""
    X, y, Xv, yv = _data(3)
    theta = T([np.log(0.15)])
    grads = []
    for reps in (1, 2):
        problem = ProximalProblem.least_squares(T(np.tile(X, reps)), T(y[:, None]), L1())
        criterion = HeldOutMSE.for_problem(problem, T(np.tile(Xv, reps)), T(yv[:, None]))
        # FISTA from 0 splits each coefficient evenly, so both copies are on the support
        res = ImplicitSupport().compute(problem, criterion, theta,
                                        solver=FISTA(tol=1e-13, max_iter=50000))
        if reps == 2:
            w = res.w[:, 0]
            assert torch.equal(w[:30] != 0, w[30:] != 0) and bool((w != 0).any())
        grads.append(float(res.grad[0]))
    assert abs(grads[0]) > 1e-3  # a slope worth comparing
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_design_column_rms_dense_and_sparse():
    from skbilevel.engine.inner._design import LinearDesign

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 7)) * (rng.random((50, 7)) < 0.4)
    X[:, 3] = 0.0
    w = rng.uniform(0, 2, 50)
    expected = np.sqrt((w[:, None] * X ** 2).sum(0) / w.sum())
    dense = LinearDesign(T(X)).column_rms(T(w), chunk=16)  # several blocks of rows
    with quiet_sparse_beta():  # torch's beta notice, as the package's own conversion does
        X_csr = T(X).to_sparse_csr()
    sparse = LinearDesign(X_csr).column_rms(T(w))
    np.testing.assert_allclose(dense.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(sparse.numpy(), expected, rtol=1e-12)


def test_lbfgs_solution_does_not_depend_on_feature_units():
    """The logistic problem with a feature in units 1e6 larger is the same problem in
    other coordinates (its coefficient 1e6 smaller, its penalty weight set to match):
    L-BFGS in the diagonally scaled variable takes the same iterations on both (161
    evaluations instead of 12 on the second without the scaling) to the same model."""
    from skbilevel.engine.inner import L2
    from skbilevel.engine.solvers import LBFGS

    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 5))
    y = (X @ [1.0, -2.0, 0.5, 0.0, 1.0] + rng.standard_normal(80) > 0).astype(float)
    Xs = X.copy()
    Xs[:, 1] *= 1e6
    base = torch.full((5,), np.log(0.1), dtype=F64)
    scaled = base.clone()
    scaled[1] += 2 * np.log(1e6)  # lambda_1 w_1^2 with w_1 = v_1 * 1e6
    sols, evals = [], []
    for data, theta in ((X, base), (Xs, scaled)):
        problem = ProximalProblem.logistic(T(data), T(y), L2(5))
        sol = LBFGS(tol=1e-10, newton_max=0, polish_max=0).solve(problem, theta)  # L-BFGS only
        assert sol.converged
        sols.append(sol.w[:, 0].numpy())
        evals.append(sol.n_func_eval)
    assert abs(evals[1] - evals[0]) <= 1
    np.testing.assert_allclose(sols[1][1] * 1e6, sols[0][1], rtol=1e-6)
    np.testing.assert_allclose(np.delete(sols[1], 1), np.delete(sols[0], 1), rtol=1e-6,
                               atol=1e-9)


def test_fista_solve_runs_in_the_scaled_variable():
    """An L1 logistic problem with one feature in units 30 times larger: ``solve`` (in
    the diagonally scaled variable) reaches the solution that ``run`` (on ``w``, step
    1 / L set by that feature) reaches, in a fraction of the iterations."""
    from skbilevel.engine.inner import L1

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] + 0.5 * rng.standard_normal(60) > 0).astype(float)
    X[:, 1] *= 30.0
    problem = ProximalProblem.logistic(T(X), T(y), L1())
    theta = T([np.log(0.02)])
    solver = FISTA(tol=1e-9, max_iter=200000)
    scaled = solver.solve(problem, theta)
    plain, _ = solver.run(problem, theta)
    assert scaled.converged and plain.converged
    assert scaled.n_iter * 5 < plain.n_iter
    np.testing.assert_allclose(scaled.w.numpy(), plain.w.numpy(), atol=1e-6)
    assert problem.preconditioner() is not None
    lasso = ProximalProblem.least_squares(T(X), T(y[:, None]), L1())
    assert lasso.preconditioner() is None  # coordinate descent's problems are left alone
