"""Hypergradients through proximal solvers: forward / reverse mode and implicit on the support.

Oracles: central finite differences of the held-out criterion (float64, supports stable
under the perturbation), agreement between the three methods at convergence, and the
Mehmood & Ochs claim that the derivative iterates converge at the rate of the iterates.
"""

from functools import lru_cache

import numpy as np
import pytest
import torch

from skbilevel.engine import Fold, WarmStart, minimize_hyperparams
from skbilevel.engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
from skbilevel.engine.inner import L1, L2, ElasticNet, ProximalProblem, WeightedL1
from skbilevel.engine.outer import HeldOutLogLoss, HeldOutMSE, make_optimizer
from skbilevel.engine.solvers import FISTA, ProximalGradient

F64 = torch.float64
D = 20


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def oscillating(k):
    return 1.0 + 0.9 * np.sin(k)


def _data(seed, n=100, n_val=60, d=D, classification=False):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_val, d))
    coef = np.zeros(d)
    coef[:6] = rng.uniform(1, 3, 6) * rng.choice([-1, 1], 6)
    y = X @ coef + 2.0 + rng.standard_normal(n + n_val)
    if classification:
        y = (X @ coef / 3 + rng.standard_normal(n + n_val) > 0).astype(float)
    sw = rng.uniform(0.5, 2.0, n)
    return X[:n], y[:n], sw, X[n:], y[n:]


def _case(name, seed):
    """``(problem, criterion, theta)``; hyperparameters chosen inside a stable support."""
    logistic = name.endswith("logistic")
    X, y, sw, Xv, yv = _data(seed, classification=logistic)
    if logistic:
        penalty, theta = (L2(), [np.log(0.02)]) if name == "l2_logistic" else \
            (L1(), [np.log(0.03)])
        problem = ProximalProblem.logistic(T(X), T(y), penalty, T(sw))
        return problem, HeldOutLogLoss.for_problem(problem, T(Xv), T(yv)), T(theta)
    penalty, theta = {
        "l1": (L1(), [np.log(0.15)]),
        "elastic_net": (ElasticNet(), [np.log(0.2), 0.4]),
        "weighted_l1": (WeightedL1(D), np.log(np.linspace(0.05, 0.3, D))),
    }[name]
    problem = ProximalProblem.least_squares(T(X), T(y), penalty, T(sw))
    return problem, HeldOutMSE.for_problem(problem, T(Xv), T(yv[:, None])), T(theta)


CASES = ["l1", "elastic_net", "weighted_l1", "l2_logistic", "l1_logistic"]
SOLVER = FISTA(tol=1e-13, max_iter=50000)
METHODS = {"forward": ForwardMode, "reverse": ReverseMode, "implicit": ImplicitSupport}


def _directions(theta):
    """Coordinates for one or two hyperparameters; two fixed random directions otherwise."""
    p = theta.numel()
    if p <= 2:
        return torch.eye(p, dtype=F64)
    dirs = torch.as_tensor(np.random.default_rng(0).standard_normal((2, p)), dtype=F64)
    return dirs / torch.linalg.vector_norm(dirs, dim=1, keepdim=True)


@lru_cache(maxsize=None)
def _finite_differences(name, seed, h=1e-5):
    problem, criterion, theta = _case(name, seed)
    w = SOLVER.solve(problem, theta).w
    fd = []
    for e in _directions(theta):
        up, down = (SOLVER.solve(problem, theta + s * h * e, w).w for s in (1, -1))
        # the support must not move, or the derivative would not exist
        assert torch.equal(problem.support(up), problem.support(w))
        assert torch.equal(problem.support(down), problem.support(w))
        fd.append(float(criterion.value(up) - criterion.value(down)) / (2 * h))
    return np.array(fd)


@lru_cache(maxsize=None)
def _hypergrad(name, seed, method):
    problem, criterion, theta = _case(name, seed)
    return METHODS[method]().compute(problem, criterion, theta, solver=SOLVER)


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", CASES)
def test_hypergradient_matches_finite_differences(name, method, global_random_seed):
    res = _hypergrad(name, global_random_seed, method)
    theta = _case(name, global_random_seed)[2]
    assert res.inner_converged and res.grad.shape == theta.shape
    fd = _finite_differences(name, global_random_seed)
    directional = (_directions(theta) @ res.grad).numpy()
    np.testing.assert_allclose(directional, fd, rtol=1e-5, atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("name", CASES)
def test_forward_reverse_implicit_agree_at_convergence(name, global_random_seed):
    grads = {m: _hypergrad(name, global_random_seed, m).grad.numpy() for m in METHODS}
    scale = np.abs(grads["implicit"]).max()
    for m in ("forward", "reverse"):
        np.testing.assert_allclose(grads[m], grads["implicit"], rtol=1e-6, atol=1e-9 * scale,
                                   err_msg=m)


# -- Mehmood & Ochs: the derivative iterates converge at the rate of the iterates -----------
SCHEDULES = {"ista-constant": dict(step="constant"), "ista-oscillating": dict(step=oscillating),
             "ista-backtracking": dict(step="backtracking"), "fista": None}


def _lasso_reference(problem, alpha):
    """``x*`` to machine precision and ``Dpsi = dx*/dlog(alpha)``.

    The objective is ``1/(2n) ||b - A x||^2 + alpha ||x||_1`` (``A``, ``b`` centred), so
    ``grad f(x) = H x - c`` with ``H = A^T A / n``, ``c = A^T b / n``. On the support ``S``
    the optimality condition ``H_SS x_S - c_S + alpha sign(x*_S) = 0`` is smooth in
    ``alpha`` (signs fixed), so ``dx_S/dalpha = -H_SS^{-1} sign(x*_S)
    = -n (A_S^T A_S)^{-1} sign(x*_S)``, and ``dalpha/dtheta = alpha`` for
    ``theta = log alpha``; off ``S``, ``x* = 0`` and ``Dpsi = 0``.
    """
    x = FISTA(tol=1e-13, max_iter=100000).solve(problem, T([np.log(alpha)])).w[:, 0].numpy()
    H = problem.smooth_hvp(None, None, torch.eye(D, dtype=F64)).numpy()
    c = problem.datafit.xty.numpy()[:, 0]
    S, sign = x != 0, np.sign(x)
    x_star = np.zeros(D)  # polish: solve the support equations exactly
    x_star[S] = np.linalg.solve(H[np.ix_(S, S)], c[S] - alpha * sign[S])
    assert np.array_equal(np.sign(x_star), sign)  # same signs
    assert np.abs(c - H @ x_star)[~S].max() < alpha * (1 - 1e-3)  # strict complementarity
    d_psi = np.zeros(D)
    d_psi[S] = -alpha * np.linalg.solve(H[np.ix_(S, S)], sign[S])
    return x_star, d_psi


def _logistic_reference(problem, lam):
    """``x*`` by Newton's method and ``Dpsi = -lam (hess l(x*) + lam I)^{-1} x*``.

    Differentiating ``grad l(x*) + lam x* = 0`` in ``lam`` gives
    ``(hess l(x*) + lam I) dx*/dlam = -x*``; ``dlam/dtheta = lam``.
    """
    x = problem.init_params()
    eye = torch.eye(x.shape[0], dtype=F64)
    for _ in range(30):
        g = problem.smooth_grad(x) + lam * x
        Hm = problem.smooth_hvp(x, None, eye) + lam * eye
        x = x - torch.linalg.solve(Hm, g)
    Hm = problem.smooth_hvp(x, None, eye) + lam * eye
    assert float(torch.linalg.vector_norm(problem.smooth_grad(x) + lam * x)) < 1e-14
    return x[:, 0].numpy(), (-lam * torch.linalg.solve(Hm, x))[:, 0].numpy()


def _slope(values):
    return np.polyfit(np.arange(len(values)), np.log(values), 1)[0]


def _rates(problem, theta, x_star, d_psi, schedule, n_iter):
    """Errors ``||x_k - x*||`` and ``||J_k - Dpsi||`` of forward-mode iterates from 0."""
    solver = FISTA(tol=0.0, max_iter=n_iter) if schedule is None else \
        ProximalGradient(tol=0.0, max_iter=n_iter, **schedule)
    J0 = torch.zeros(x_star.size, 1, dtype=F64)
    history = solver.run(problem, theta, None, J0, n_iter=n_iter, record=True)[0].history
    err_x = np.array([np.linalg.norm(r["w"].numpy()[:, 0] - x_star) for r in history])
    err_j = np.array([np.linalg.norm(r["J"].numpy()[:, 0] - d_psi) for r in history])
    supports = np.array([np.array_equal(r["w"].numpy()[:, 0] != 0, x_star != 0)
                         for r in history])
    identified = 0 if supports.all() else len(supports) - np.argmin(supports[::-1])
    return err_x, err_j, identified


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("model", ["lasso", "l2_logistic"])
def test_derivative_iterates_converge_at_the_rate_of_the_iterates(model, schedule,
                                                                  global_random_seed):
    X, y, _, _, _ = _data(global_random_seed, classification=model != "lasso")
    if model == "lasso":
        alpha = 0.15
        problem = ProximalProblem.least_squares(T(X), T(y), L1())
        x_star, d_psi = _lasso_reference(problem, alpha)
        theta = T([np.log(alpha)])
    else:
        lam = 0.05
        problem = ProximalProblem.logistic(T(X), T(y), L2(), fit_intercept=False)
        x_star, d_psi = _logistic_reference(problem, lam)
        theta = T([np.log(lam)])
    err_x, err_j, identified = _rates(problem, theta, x_star, d_psi, SCHEDULES[schedule], 800)
    assert identified < 300  # the support is found, and kept
    assert err_j[-1] < 1e-8 * err_j[0]  # J_k -> Dpsi
    # a window after identification, before the errors reach rounding level
    window = np.arange(identified + 5, len(err_x))
    window = window[(err_x[window] > 1e-11 * err_x[0]) & (err_j[window] > 1e-11 * err_j[0])]
    window = window[:300]
    assert len(window) >= 15
    sx, sj = _slope(err_x[window]), _slope(err_j[window])
    assert sx < 0 and abs(sj - sx) <= 0.2 * abs(sx), (sx, sj)


# -- the unrolled methods themselves -------------------------------------------------------
@pytest.mark.parametrize("solver", [FISTA(tol=0.0, max_iter=60, step=oscillating),
                                    ProximalGradient(tol=0.0, max_iter=60, step="backtracking"),
                                    FISTA(tol=0.0, max_iter=60, restart="gradient")],
                         ids=["fista-oscillating", "ista-backtracking", "fista-restart"])
def test_forward_mode_differentiates_the_algorithm(solver):
    """With a fixed number of iterations, forward mode is the derivative of ``w_K(theta)``
    (the unconverged algorithm), momentum, schedule and piecewise-constant steps included."""
    problem, criterion, theta = _case("elastic_net", 0)
    res = ForwardMode(max_iter=60).compute(problem, criterion, theta, solver=solver)
    h, fd = 1e-6, []
    for e in torch.eye(2, dtype=F64):
        up, down = (criterion.value(solver.run(problem, theta + s * h * e)[0].w)
                    for s in (1, -1))
        fd.append(float(up - down) / (2 * h))
    np.testing.assert_allclose(res.grad.numpy(), fd, rtol=1e-6)
    assert res.n_inner_iter == 60


def test_forward_mode_records_and_warm_starts():
    problem, criterion, theta = _case("l2_logistic", 0)
    res = ForwardMode(record_jacobians=True).compute(problem, criterion, theta, solver=SOLVER)
    assert len(res.jacobians) == res.n_inner_iter
    assert torch.equal(res.jacobians[-1], res.warm_start.jacobian)
    steps = [float(torch.linalg.vector_norm(b - a)) for a, b in zip(res.jacobians,
                                                                   res.jacobians[1:])]
    assert steps[-1] < 1e-8 * max(steps)
    again = ForwardMode().compute(problem, criterion, theta, solver=SOLVER,
                                  warm_start=res.warm_start)
    np.testing.assert_allclose(again.grad.numpy(), res.grad.numpy(), rtol=1e-8)
    assert isinstance(again.warm_start, WarmStart) and again.n_inner_iter < res.n_inner_iter
    value = ForwardMode().compute(problem, criterion, theta, solver=SOLVER, with_grad=False)
    assert value.grad is None and abs(value.value - res.value) < 1e-12


def test_reverse_truncation_and_memory():
    problem, criterion, theta = _case("l1", 0)
    solver = ProximalGradient(tol=1e-12, max_iter=50000)
    full = ReverseMode().compute(problem, criterion, theta, solver=solver)
    K = solver.solve(problem, theta).n_iter
    for T_ in (K, K + 10):
        same = ReverseMode(truncate=T_).compute(problem, criterion, theta, solver=solver)
        np.testing.assert_allclose(same.grad.numpy(), full.grad.numpy(), rtol=1e-12)
    short = ReverseMode(truncate=5).compute(problem, criterion, theta, solver=solver)
    assert abs(float(short.grad - full.grad)) > 1e-3 * abs(float(full.grad))

    # memory: the taped graph holds O(T (n + d)) numbers, linear in the truncation T
    def saved_numel(truncate):  # distinct storages only: X is saved by reference
        count, seen = [0], set()

        def pack(t):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                count[0] += t.untyped_storage().nbytes() // t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            ReverseMode(truncate=truncate).compute(problem, criterion, theta, solver=solver)
        return count[0]

    n, d = problem.datafit.design.shape
    saved = [saved_numel(t) for t in (10, 40, 70)]  # a constant (the data) plus b T
    per_iter = [(saved[1] - saved[0]) / 30, (saved[2] - saved[1]) / 30]
    assert abs(per_iter[1] - per_iter[0]) <= 0.05 * per_iter[0]
    assert per_iter[1] <= 4 * (n + d)
    with pytest.raises(ValueError, match="truncate"):
        ReverseMode(truncate=0)


def test_implicit_support_solvers_warm_start_and_empty_support():
    problem, criterion, theta = _case("weighted_l1", 0)
    dense = ImplicitSupport().compute(problem, criterion, theta, solver=SOLVER)
    for linear_solver in ("cg", "minres"):
        other = ImplicitSupport(linear_solver).compute(problem, criterion, theta,
                                                       solver=SOLVER)
        np.testing.assert_allclose(other.grad.numpy(), dense.grad.numpy(), rtol=1e-7,
                                   atol=1e-10 * float(dense.grad.abs().max()))
        assert other.n_linsys_iter > 0
    again = ImplicitSupport("cg").compute(problem, criterion, theta, solver=SOLVER,
                                          warm_start=dense.warm_start)
    np.testing.assert_allclose(again.grad.numpy(), dense.grad.numpy(), rtol=1e-8)
    assert again.n_linsys_iter <= 1
    huge = ImplicitSupport().compute(problem, criterion, theta + 10.0, solver=SOLVER)
    assert float(huge.w.abs().max()) == 0.0 and float(huge.grad.abs().max()) == 0.0


def test_capability_checks():
    problem, criterion, theta = _case("l1", 0)
    with pytest.raises(TypeError, match="run"):
        ForwardMode().compute(problem, criterion, theta, solver=object())
    with pytest.raises(TypeError, match="ImplicitSupport"):
        ImplicitSupport().compute(object(), criterion, theta, solver=SOLVER)
    with pytest.raises(ValueError, match="max_iter"):
        ForwardMode(max_iter=0)


def test_held_out_log_loss_gradients():
    rng = np.random.default_rng(0)
    X = T(rng.standard_normal((30, 4)))
    for n_classes in (2, 3):
        y = rng.integers(0, n_classes, 30)
        inner = ProximalProblem.logistic(X, T(y), L2()) if n_classes == 2 else \
            ProximalProblem.multinomial(X, torch.as_tensor(y), n_classes, L2())
        sw = T(rng.uniform(0.5, 2, 30))
        crit = HeldOutLogLoss.for_problem(inner, X, torch.as_tensor(y), sw)
        w = T(rng.standard_normal(inner.init_params().shape)).requires_grad_(True)
        (g,) = torch.autograd.grad(crit.value(w), w)
        np.testing.assert_allclose(crit.grad_w(w.detach()).numpy(), g.numpy(), atol=1e-14)
        # the same loss on the (d + 1, K) array, without raveling
        array = HeldOutLogLoss(X, torch.as_tensor(y), sw)
        W = w.detach().reshape(X.shape[1] + 1, -1)
        assert abs(float(array.value(W) - crit.value(w.detach()))) < 1e-14
        np.testing.assert_allclose(array.grad_w(W).numpy().reshape(-1, 1),
                                   crit.grad_w(w.detach()).numpy(), atol=1e-14)
    # the binary criterion equals the inner datafit on the same data (same layout, weights)
    problem, _, _ = _case("l2_logistic", 0)
    X, y, sw, _, _ = _data(0, classification=True)
    crit = HeldOutLogLoss.for_problem(problem, T(X), T(y), T(sw))
    w = T(rng.standard_normal((D + 1, 1)))
    assert abs(float(crit.value(w) - problem.smooth_value(w))) < 1e-14


def test_minimize_hyperparams_drives_the_unrolled_methods():
    problem, criterion, _ = _case("l1", 1)
    grid = np.log(np.geomspace(0.01, 1.0, 15))
    values = [float(criterion.value(SOLVER.solve(problem, T([g])).w)) for g in grid]
    for method in (ForwardMode(), ReverseMode(truncate=200)):
        res = minimize_hyperparams([Fold(problem, criterion)], T([grid[0]]),
                                   solver=FISTA(tol=1e-10, max_iter=20000), method=method,
                                   optimizer=make_optimizer("lbfgs", max_iter=30, tol=1e-8),
                                   bounds=(grid[0], grid[-1]))
        assert res.value <= min(values) + 1e-9
