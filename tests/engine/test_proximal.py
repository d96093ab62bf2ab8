"""Proximal inner problems (datafit x penalty) and the ISTA / FISTA solvers (issue 4)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import ElasticNet as SkElasticNet
from sklearn.linear_model import Lasso, LogisticRegression

from skbilevel.engine.hypergrad import ImplicitDifferentiation
from skbilevel.engine.inner import (L1, L2, ElasticNet, InnerProblem, LogisticDatafit,
                                    ProximalProblem, QuadraticDatafit, Shifted, WeightedL1)
from skbilevel.engine.outer import HeldOutLogLoss
from skbilevel.engine.solvers import FISTA, ProximalGradient
from skbilevel.utils._tensor import to_tensor

F64 = torch.float64


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def oscillating(k):
    return 1.0 + 0.9 * np.sin(k)


SOLVERS = {
    "ista-constant": lambda **kw: ProximalGradient(**kw),
    "ista-oscillating": lambda **kw: ProximalGradient(step=oscillating, **kw),
    "ista-backtracking": lambda **kw: ProximalGradient(step="backtracking", **kw),
    "fista": lambda **kw: FISTA(**kw),
    "fista-function-restart": lambda **kw: FISTA(restart="function", **kw),
    "fista-gradient-restart": lambda **kw: FISTA(restart="gradient", **kw),
}


def _regression(seed, n=100, d=20):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = np.zeros(d)
    coef[:5] = rng.uniform(1, 3, 5) * rng.choice([-1, 1], 5)
    y = X @ coef + 2.0 + rng.standard_normal(n)
    return X, y, rng.uniform(0.5, 2.0, n)


def _classification(seed, n=120, d=15):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    coef = rng.standard_normal(d)
    y = (X @ coef + 0.5 + rng.standard_normal(n) > 0).astype(float)
    return X, y, rng.uniform(0.5, 2.0, n)


# -- penalties ---------------------------------------------------------------------------
def _penalty_cases(d):
    rng = np.random.default_rng(0)
    return {"l1": (L1(), T([np.log(0.3)])),
            "weighted_l1": (WeightedL1(d), T(np.log(rng.uniform(0.1, 0.6, d)))),
            "elastic_net": (ElasticNet(), T([np.log(0.4), 0.7])),
            "elastic_net_linear": (ElasticNet(scale="linear"), T([np.log(0.4), 0.3])),
            "elastic_net_fixed": (ElasticNet(l1_ratio=0.6), T([np.log(0.4)])),
            "l2": (L2(), T([np.log(0.8)])),
            "l2_per_feature": (L2(d), T(np.log(rng.uniform(0.2, 2.0, d))))}


def _closed_form(name, z, s, theta):
    th = theta.numpy()
    if name in ("l1", "weighted_l1"):
        tau = s * np.exp(th) if name == "weighted_l1" else s * np.exp(th[0])
        return np.sign(z) * np.maximum(np.abs(z) - tau, 0)
    if name.startswith("elastic_net"):
        alpha, rho = np.exp(th[0]), {"elastic_net": lambda: 1 / (1 + np.exp(-th[1])),
                                     "elastic_net_linear": lambda: th[1],
                                     "elastic_net_fixed": lambda: 0.6}[name]()
        return np.sign(z) * np.maximum(np.abs(z) - s * alpha * rho, 0) / (1 + s * alpha * (1 - rho))
    lam = np.exp(th) if name == "l2_per_feature" else np.exp(th[0])
    return z / (1 + s * lam)


@pytest.mark.parametrize("name", list(_penalty_cases(8)))
def test_prox_closed_forms_and_derivatives(name):
    d, s = 8, 0.7
    penalty, theta = _penalty_cases(d)[name]
    z = T(np.linspace(-1.3, 1.25, d))[:, None]  # no entry at a kink of the threshold
    p = penalty.prox(z, s, theta)
    np.testing.assert_allclose(p.numpy()[:, 0], _closed_form(name, z.numpy()[:, 0], s, theta),
                               rtol=1e-14, atol=1e-15)
    # the prox is the minimiser: (z - p) / s is the penalty's gradient on the support and
    # within the subdifferential [-tau, tau] / s off it
    support = penalty.support(p)
    w = p.detach().requires_grad_(True)
    (grad_pen,) = torch.autograd.grad(penalty.value(w, theta), w)
    np.testing.assert_allclose(((z - p) / s)[support].numpy(), grad_pen[support].numpy(),
                               rtol=1e-12, atol=1e-14)
    if not support.all():
        strength = torch.exp(theta).reshape(-1, 1) if name == "weighted_l1" else \
            torch.exp(theta[0]) * penalty.split(theta)[1] if name.startswith("elastic_net") \
            else torch.exp(theta[0])
        bound = (strength * torch.ones_like(z))[~support]
        assert bool((z[~support].abs() <= s * bound + 1e-15).all())  # |z| <= tau
    # d prox / d z (diagonal) and d prox / d theta against autograd
    diag, d_theta = penalty.prox_jacobian(z, s, theta)
    Jz = torch.autograd.functional.jacobian(lambda zz: penalty.prox(zz, s, theta), z)
    np.testing.assert_allclose(torch.diagonal(Jz.reshape(d, d)).numpy(), diag.numpy()[:, 0],
                               atol=1e-14)
    Jt = torch.autograd.functional.jacobian(lambda th: penalty.prox(z, s, th), theta)
    np.testing.assert_allclose(d_theta.numpy(), Jt.reshape(d, -1).numpy(), atol=1e-14)
    # on the support: the penalty's Hessian diagonal and d grad / d theta, against autograd
    H = torch.autograd.functional.hessian(lambda ww: penalty.value(ww, theta), w.detach())
    np.testing.assert_allclose(torch.diagonal(H.reshape(d, d)).numpy()[support.numpy()[:, 0]],
                               penalty.hessian_diag(w.detach(), theta)[support].numpy(),
                               atol=1e-14)
    cross = torch.autograd.functional.jacobian(
        lambda th: torch.autograd.grad(penalty.value(w, th), w, create_graph=True)[0], theta)
    np.testing.assert_allclose(penalty.cross_jacobian(w.detach(), theta).numpy(),
                               cross.reshape(d, -1).numpy(), atol=1e-14)


# -- solutions against scikit-learn ------------------------------------------------------
@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["icpt", "noicpt"])
def test_lasso_and_elastic_net_equal_sklearn(solver, fit_intercept, global_random_seed):
    X, y, sw = _regression(global_random_seed)
    make = SOLVERS[solver]
    lasso = ProximalProblem.least_squares(T(X), T(y), L1(), T(sw), fit_intercept)
    sol = make(tol=1e-12, max_iter=20000).solve(lasso, T([np.log(0.1)]))
    # scikit-learn rescales sample_weight to sum to n: the same 1/(2S) sum s_i r_i^2
    ref = Lasso(alpha=0.1, fit_intercept=fit_intercept, tol=1e-14, max_iter=100000)
    ref.fit(X, y, sample_weight=sw)
    assert sol.converged and sol.residual <= 1e-12
    np.testing.assert_allclose(sol.w.numpy()[:, 0], ref.coef_, atol=1e-8)
    np.testing.assert_allclose(float(lasso.intercept(sol.w)[0]),
                               ref.intercept_ if fit_intercept else 0.0, atol=1e-8)
    enet = ProximalProblem.least_squares(T(X), T(y), ElasticNet(), None, fit_intercept)
    sol = make(tol=1e-12, max_iter=20000).solve(enet, T([np.log(0.2), np.log(0.3 / 0.7)]))
    ref = SkElasticNet(alpha=0.2, l1_ratio=0.3, fit_intercept=fit_intercept, tol=1e-14,
                       max_iter=100000).fit(X, y)
    np.testing.assert_allclose(sol.w.numpy()[:, 0], ref.coef_, atol=1e-8)


@pytest.mark.parametrize("solver", ["ista-constant", "ista-backtracking", "fista",
                                    "fista-gradient-restart"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["icpt", "noicpt"])
def test_l2_logistic_equals_sklearn(solver, fit_intercept, global_random_seed):
    """``LogisticRegression(C)`` minimises ``1/2 ||w||^2 + C sum_i s_i loss_i``; divided by
    ``C S`` that is the mean weighted loss plus ``lambda / 2 ||w||^2``, ``lambda = 1/(C S)``."""
    X, y, sw = _classification(global_random_seed)
    C = 0.3
    problem = ProximalProblem.logistic(T(X), T(y), L2(), T(sw), fit_intercept)
    sol = SOLVERS[solver](tol=1e-12, max_iter=50000).solve(problem,
                                                          T([-np.log(C * sw.sum())]))
    ref = LogisticRegression(C=C, fit_intercept=fit_intercept, solver="newton-cg", tol=1e-14,
                             max_iter=1000).fit(X, y, sample_weight=sw)
    assert sol.converged
    np.testing.assert_allclose(problem.coef(sol.w).numpy()[:, 0], ref.coef_[0], atol=1e-9)
    np.testing.assert_allclose(float(problem.intercept(sol.w)[0]),
                               ref.intercept_[0] if fit_intercept else 0.0, atol=1e-9)


def test_sparse_design_gives_the_dense_solution():
    X, y, sw = _regression(3)
    X[np.abs(X) < 0.8] = 0.0
    theta = T([np.log(0.05)])
    Xs = to_tensor(sp.csr_matrix(X), F64, torch.device("cpu"))
    for make in (ProximalProblem.least_squares, ProximalProblem.logistic):
        target = y if make is ProximalProblem.least_squares else (y > 2).astype(float)
        dense = make(T(X), T(target), L1(), T(sw))
        sparse = make(Xs, T(target), L1(), T(sw))
        assert abs(dense.lipschitz() - sparse.lipschitz()) <= 1e-10 * dense.lipschitz()
        a = FISTA(tol=1e-12).solve(dense, theta)
        b = FISTA(tol=1e-12).solve(sparse, theta)
        np.testing.assert_allclose(a.w.numpy(), b.w.numpy(), atol=1e-10)


# -- the problem's invariants ------------------------------------------------------------
def test_lipschitz_residual_support_and_logistic_intercept():
    X, y, sw = _regression(0)
    problem = ProximalProblem(QuadraticDatafit(T(X), T(y), T(sw)), L1())
    Xc = X - sw @ X / sw.sum()
    H = (Xc * sw[:, None]).T @ Xc / sw.sum()
    np.testing.assert_allclose(problem.lipschitz(), np.linalg.eigvalsh(H)[-1], rtol=1e-10)
    theta = T([np.log(0.3)])
    sol = FISTA(tol=1e-12).solve(problem, theta)
    assert problem.optimality_residual(sol.w, theta) <= 1e-12
    assert problem.optimality_residual(sol.w * 1.01, theta) > 1e-4
    np.testing.assert_array_equal(problem.support(sol.w).numpy(), sol.w.numpy() != 0)
    # logistic: the intercept row is unpenalised (never thresholded, always in the support)
    Xl, yl, _ = _classification(0)
    logistic = ProximalProblem(LogisticDatafit(T(Xl), T(yl)), L1())
    theta = T([np.log(5.0)])  # so large that every coefficient is 0
    w = FISTA(tol=1e-12).solve(logistic, theta).w
    assert w.shape == (Xl.shape[1] + 1, 1) and float(w[:-1].abs().max()) == 0.0
    np.testing.assert_allclose(float(w[-1, 0]), np.log(yl.mean() / (1 - yl.mean())),
                               atol=1e-10)
    assert logistic.support(w).numpy()[:, 0].tolist() == [False] * Xl.shape[1] + [True]
    z = T(np.ones((Xl.shape[1] + 1, 1)))
    assert float(logistic.prox(z, 1.0, theta)[-1, 0]) == 1.0


@pytest.mark.parametrize("solver", ["ista-backtracking", "fista-function-restart"])
def test_update_api_reproduces_solve_and_records(solver):
    X, y, _ = _regression(1)
    problem = ProximalProblem.least_squares(T(X), T(y), ElasticNet())
    theta = T([np.log(0.1), 0.0])
    algo = SOLVERS[solver](tol=1e-11, max_iter=5000, record=True)
    sol = algo.solve(problem, theta)
    assert sol.converged and len(sol.history) == sol.n_iter
    w = problem.init_params()
    state = algo.init_state(problem, w, theta)
    for rec in sol.history:
        w, _, state, _ = algo.update(problem, w, theta, state)
        assert torch.equal(w, rec["w"]) and state.step == rec["step"]
    assert state.k == sol.n_iter
    # warm start at the solution: converged after one step
    again = algo.solve(problem, theta, sol.w)
    assert again.n_iter == 1 and again.converged


def test_bad_arguments():
    with pytest.raises(ValueError, match="step"):
        ProximalGradient(step="armijo")
    with pytest.raises(ValueError, match="restart"):
        FISTA(restart="adaptive")
    with pytest.raises(ValueError, match="momentum"):
        ProximalGradient(restart="function")
    with pytest.raises(ValueError, match="max_iter"):
        FISTA(max_iter=0)
    with pytest.raises(TypeError, match="prox"):
        ProximalGradient().solve(object(), T([0.0]))


@pytest.mark.parametrize("newton_max", [0, 64], ids=["lbfgs-only", "newton-finish"])
def test_lbfgs_solver_equals_sklearn_with_and_without_the_newton_finish(newton_max,
                                                                         global_random_seed):
    # 16 variables: with newton_max=64 L-BFGS stops at 1e4 * tol and Newton steps finish;
    # the answer must not change, and the finish must cost fewer gradient evaluations.
    from skbilevel.engine.solvers import LBFGS

    X, y, sw = _classification(global_random_seed)
    C = 0.3
    problem = ProximalProblem.logistic(T(X), T(y), L2(), T(sw), True)
    theta = T([-np.log(C * sw.sum())])
    sol = LBFGS(tol=1e-11, newton_max=newton_max).solve(problem, theta)
    ref = LogisticRegression(C=C, solver="newton-cg", tol=1e-14, max_iter=1000).fit(
        X, y, sample_weight=sw)
    assert sol.converged and sol.residual <= 1e-11
    np.testing.assert_allclose(problem.coef(sol.w).numpy()[:, 0], ref.coef_[0], atol=1e-9)
    plain = LBFGS(tol=1e-11, newton_max=0, sketch_max=0).solve(problem, theta)
    if newton_max:
        assert sol.n_grad_eval < plain.n_grad_eval


def test_lbfgs_in_the_sketched_variable_equals_sklearn_and_takes_fewer_gradients(
        global_random_seed):
    # 41 variables over 400 rows, correlated (mixed) columns, 10 of them in units 1000
    # times larger. Warm-started from the solution at 1.5 C (a step of a search on C),
    # L-BFGS in the Cholesky variable of the Hessian sketched from every 2nd row reaches
    # LogisticRegression's solution in fewer than half the gradient evaluations of the
    # diagonal scaling (16 against 72-84), and hands its factor on as the preconditioner
    # of the adjoint.
    from skbilevel.engine.solvers import LBFGS

    X, y, sw = _classification(global_random_seed, n=400, d=40)
    rng = np.random.default_rng(global_random_seed)
    X = X @ (np.eye(40) + rng.standard_normal((40, 40)) / 3)
    X[:, :10] *= 1e3
    C = 0.05
    problem = ProximalProblem.logistic(T(X), T(y), L2(), T(sw), True)
    theta = T([-np.log(C * sw.sum())])
    ref = LogisticRegression(C=C, solver="newton-cg", tol=1e-14, max_iter=1000).fit(
        X, y, sample_weight=sw)
    sketched = LBFGS(tol=1e-8, newton_max=0, polish_max=0)
    plain = LBFGS(tol=1e-8, newton_max=0, polish_max=0, sketch_max=0)
    w0 = plain.solve(problem, theta - np.log(1.5)).w
    sol, diag = sketched.solve(problem, theta, w0), plain.solve(problem, theta, w0)
    assert sol.converged and sol.residual <= 1e-8 and sol.preconditioner is not None
    coef = problem.coef(sol.w).numpy()[:, 0]
    np.testing.assert_allclose(coef, ref.coef_[0], rtol=1e-5, atol=1e-7 * np.abs(coef).max())
    assert 2 * sol.n_grad_eval < diag.n_grad_eval
    # A warm start that is already a solution costs one gradient and no sketch.
    again = sketched.solve(problem, theta, sol.w)
    assert again.n_grad_eval == 1 and again.preconditioner is None
    # The preconditioner approximates the inverse Hessian: M^{-1} H is near the identity.
    H = problem.hvp(sol.w, theta, torch.eye(41, dtype=torch.float64))
    eig = torch.linalg.eigvals(sol.preconditioner(H)).real
    assert 0.3 < float(eig.min()) and float(eig.max()) < 3.0


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")
def test_lbfgs_without_a_sketch_costs_what_the_diagonal_scaling_costs():
    # 81 variables over 300 rows: above newton_max, but a sparse design has no sketch.
    # The gradient at w0 that decided to try one is scipy's first evaluation, not an
    # extra one: the same iterates and count as sketch_max=0.
    from skbilevel.engine.solvers import LBFGS

    X, y, sw = _classification(0, n=300, d=80)
    X[np.abs(X) < 1.0] = 0.0  # about a third of the entries kept
    problem = ProximalProblem.logistic(T(X).to_sparse_csr(), T(y), L2(), T(sw), True)
    theta = T([np.log(0.01)])
    tried = LBFGS(tol=1e-8).solve(problem, theta)
    plain = LBFGS(tol=1e-8, sketch_max=0).solve(problem, theta)
    assert tried.converged
    assert tried.n_grad_eval == plain.n_grad_eval
    torch.testing.assert_close(tried.w, plain.w, rtol=0, atol=0)


# -- smooth penalties: the whole objective is differentiable ---------------------------
def _smooth_cases():
    X, y, sw = _classification(3, n=60, d=6)
    labels = np.digitize(X[:, 0] + X[:, 1], [-0.5, 0.5])  # three classes
    Xr, yr, swr = _regression(3, n=60, d=6)
    return {
        "logistic-l2": ProximalProblem.logistic(T(X), T(y), L2(), T(sw)),
        "logistic-l2-per-feature": ProximalProblem.logistic(T(X), T(y), L2(6), T(sw)),
        "multinomial-shifted-l2": ProximalProblem.multinomial(
            T(X), torch.as_tensor(labels), 3, Shifted(L2(), -np.log(sw.sum())), T(sw)),
        "least-squares-l2": ProximalProblem.least_squares(T(Xr), T(yr), L2(), T(swr)),
    }


@pytest.mark.parametrize("name", list(_smooth_cases()))
def test_smooth_penalty_derivatives_are_the_objective_s(name):
    problem = _smooth_cases()[name]
    rng = np.random.default_rng(1)
    theta = T(rng.uniform(-1, 0, problem.n_hyper))
    w = T(0.3 * rng.standard_normal(problem.init_params().shape))
    v = T(rng.standard_normal(w.shape))
    w_ = w.clone().requires_grad_(True)
    (g_auto,) = torch.autograd.grad(problem.objective(w_, theta), w_)
    np.testing.assert_allclose(problem.grad(w, theta).numpy(), g_auto.numpy(), atol=1e-13)
    for V in (v, v[:, 0], torch.cat([v, 2 * v], dim=1)):  # (rows, 1), (rows,), (rows, 2)
        auto = torch.stack([InnerProblem.hvp(problem, w, theta, col.reshape(w.shape))[:, 0]
                            for col in V.reshape(w.shape[0], -1).T], dim=1)
        np.testing.assert_allclose(problem.hvp(w, theta, V).numpy(),
                                   auto.reshape(V.shape).numpy(), atol=1e-13)
    np.testing.assert_allclose(problem.cross_vjp(w, theta, v).numpy(),
                               InnerProblem.cross_vjp(problem, w, theta, v).numpy(), atol=1e-13)


def test_nonsmooth_penalty_has_no_objective_gradient():
    X, y, _ = _regression(0)
    problem = ProximalProblem.least_squares(T(X), T(y), L1())
    w, theta = problem.init_params(), T([0.0])
    for call in (lambda: problem.grad(w, theta), lambda: problem.hvp(w, theta, w),
                 lambda: problem.cross_vjp(w, theta, w)):
        with pytest.raises(TypeError, match="L1.*smooth_grad"):
            call()


@pytest.mark.parametrize("n_classes, per_feature", [(2, False), (2, True), (3, False)],
                         ids=["binary", "binary-per-feature", "multinomial"])
def test_implicit_differentiation_on_l2_logistic_matches_finite_differences(n_classes,
                                                                            per_feature):
    # grad / hvp / cross_vjp of an L2 ProximalProblem are the objective's, so the generic
    # implicit differentiation (adjoint by CG on hvp) applies; oracle: central differences.
    from skbilevel.engine.solvers._lbfgs import LBFGS

    X, y, sw = _classification(4, n=160, d=5)
    if n_classes == 3:
        y = np.digitize(X[:, 0] - X[:, 2], [-0.6, 0.6]).astype(float)
    tr, va = slice(0, 100), slice(100, None)
    penalty = L2(5) if per_feature else L2()
    if n_classes == 2:
        problem = ProximalProblem.logistic(T(X[tr]), T(y[tr]), penalty, T(sw[tr]))
    else:
        problem = ProximalProblem.multinomial(T(X[tr]), torch.as_tensor(y[tr]), 3, penalty,
                                              T(sw[tr]))
    criterion = HeldOutLogLoss.for_problem(problem, T(X[va]), torch.as_tensor(y[va]),
                                           T(sw[va]))
    solver = LBFGS(tol=1e-13, newton_max=0)
    theta = T(np.log(np.linspace(0.02, 0.2, problem.n_hyper)))
    res = ImplicitDifferentiation().compute(problem, criterion, theta, solver=solver)
    h, fd = 1e-4, []
    for j in range(problem.n_hyper):
        e = torch.zeros_like(theta)
        e[j] = h
        up, down = (float(criterion.value(solver.solve(problem, theta + s * e).w))
                    for s in (1, -1))
        fd.append((up - down) / (2 * h))
    assert abs(res.value - float(criterion.value(solver.solve(problem, theta).w))) < 1e-12
    np.testing.assert_allclose(res.grad.numpy(), fd, rtol=1e-5, atol=1e-9)
