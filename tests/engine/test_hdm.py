"""HDM: the functional core, the inner solver and the outer optimizer.

Oracles: a numpy transcription of HDM-Best's update rules (ALGORITHMS.md 5.2), closed-form
minimisers (quadratics, ridge), the monotonicity that null steps guarantee, and the observed
rate (superlinear with a diagonal stepsize on a diagonal quadratic).
"""

import math
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.model_selection import KFold

from skbilevel import BilevelRidgeCV
from skbilevel.engine.hdm import hdm_config, hdm_init_state, hdm_trial_point, hdm_update
from skbilevel.engine.inner import InnerProblem, RidgeProblem
from skbilevel.engine.linalg import power_iteration, probe_smoothness
from skbilevel.engine.outer import OPTIMIZERS, OuterHDM, make_optimizer
from skbilevel.engine.solvers import HDMSolver

F64 = torch.float64
VARIANTS = ["hdm", "hdm-diag", "hdm-hb", "hdm-best", "osgm-best"]


class Quadratic(InnerProblem):
    """``1/2 w^T A w - b^T w`` (theta unused)."""

    def __init__(self, A, b, w0):
        self.A, self.b, self.w0 = A, b, w0

    def init_params(self):
        return self.w0.clone()

    def objective(self, w, theta):
        return 0.5 * w @ (self.A @ w) - self.b @ w

    def grad(self, w, theta):
        return self.A @ w - self.b

    def lipschitz(self, theta):
        return float(torch.linalg.eigvalsh(self.A).max())

    def solution(self):
        return torch.linalg.solve(self.A, self.b)


class Logistic(InnerProblem):
    """``sum_i log(1 + exp(-y_i x_i^T w)) + lam/2 ||w||^2`` with labels in {-1, 1}."""

    def __init__(self, X, y, lam, w0):
        self.X, self.y, self.lam, self.w0 = X, y, lam, w0

    def init_params(self):
        return self.w0.clone()

    def objective(self, w, theta):
        return torch.nn.functional.softplus(-self.y * (self.X @ w)).sum() + 0.5 * self.lam * w @ w

    def grad(self, w, theta):
        return -self.X.T @ (self.y * torch.sigmoid(-self.y * (self.X @ w))) + self.lam * w

    def lipschitz(self, theta):
        return float(torch.linalg.matrix_norm(self.X, 2)) ** 2 / 4 + self.lam


def random_quadratic(seed, d=50, cond=100.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    A = Q @ torch.diag(torch.logspace(0, math.log10(cond), d, dtype=F64)) @ Q.T
    A = 0.5 * (A + A.T)
    b, w0 = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
    return Quadratic(A.to(dtype), b.to(dtype), w0.to(dtype))


def random_logistic(seed, n=200, d=20, lam=1.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.sign(X @ torch.randn(d, generator=g, dtype=F64)
                   + 0.5 * torch.randn(n, generator=g, dtype=F64))
    return Logistic(X.to(dtype), y.to(dtype), lam, torch.randn(d, generator=g, dtype=F64).to(dtype))


# -- the inner solver on convex problems ------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("make", [random_quadratic, random_logistic], ids=["quad", "logistic"])
def test_every_variant_converges(variant, make, global_random_seed):
    problem = make(global_random_seed)
    sol = HDMSolver(variant=variant, tol=1e-6, max_iter=1000).solve(problem, None)
    g = problem.grad(sol.w, None)
    assert sol.converged
    assert float(g.abs().max()) <= 1e-6
    assert sol.n_grad_eval <= 1000
    # One objective and one gradient per trial point, plus the start, less the first
    # trial point: from P = 0 it is w0 itself, whose f and gradient are known.
    assert sol.n_func_eval == sol.n_grad_eval == sol.n_iter
    assert sol.residual == pytest.approx(float(torch.linalg.vector_norm(g)))
    if isinstance(problem, Quadratic):
        assert_allclose(sol.w, problem.solution(), atol=1e-5)


@pytest.mark.parametrize("variant", ["hdm-hb", "hdm-best"])
def test_momentum_beats_no_momentum_on_ill_conditioned_quadratic(variant):
    """The learned heavy ball pays on a condition-100 quadratic (about 3x fewer gradients)."""
    runs = {v: HDMSolver(variant=v).solve(random_quadratic(0), None).n_grad_eval
            for v in ("hdm-diag", variant)}
    assert runs[variant] < 0.7 * runs["hdm-diag"]


def test_diagonal_stepsize_is_superlinear_on_diagonal_quadratic(global_random_seed):
    """With P diagonal and a diagonal Hessian, P -> H^-1: the contraction factor keeps falling.

    Minimiser at 0 (no cancellation in f) and a start far away, so that the run spans ten
    decades of gradient and the asymptotic regime shows. Gradient descent with the best
    fixed step contracts by (kappa - 1) / (kappa + 1) = 0.98 per step here.
    """
    g = torch.Generator().manual_seed(global_random_seed)
    h = torch.logspace(0, 2, 50, dtype=F64)
    problem = Quadratic(torch.diag(h), torch.zeros(50, dtype=F64),
                        1e4 * torch.randn(50, generator=g, dtype=F64))
    sol = HDMSolver(variant="hdm-diag", tol=1e-6, max_iter=300,
                    record_history=True).solve(problem, None)
    assert sol.converged and sol.n_grad_eval < 40
    norms = [r["grad_inf_norm"] for r in sol.history if r["accepted"]]
    ratios = np.array(norms[1:]) / np.array(norms[:-1])
    # Skip the transient (first accepted steps, where the stiff coordinates are settled).
    late = ratios[3:]
    assert late.min() < 0.1
    assert late.min() < 0.3 * ratios[3]
    # The learned stepsizes approach the inverse curvatures on the stiff coordinates.
    P = sol.solver_state.hdm.P
    assert_allclose(P[-10:] * h[-10:], 1.0, atol=0.05)


@pytest.mark.parametrize("variant", VARIANTS)
def test_null_steps_keep_accepted_objective_non_increasing(variant, global_random_seed):
    problem = random_logistic(global_random_seed)
    sol = HDMSolver(variant=variant, record_history=True).solve(problem, None)
    f = np.array([r["objective"] for r in sol.history])
    accepted = np.array([r["accepted"] for r in sol.history])
    assert np.all(np.diff(f) <= 0)
    assert np.all(np.diff(f)[accepted[1:]] < 0)  # accepted means strictly better
    assert np.all(np.diff(f)[~accepted[1:]] == 0)  # a null step stays put
    assert (~accepted[1:]).sum() >= 1  # the first step (P = 0) is always a null step
    for r in sol.history:
        assert 0 <= r["P_min"] <= r["P_mean"] <= r["P_max"]
        assert 0 <= r["beta"] <= 0.9995


def test_null_step_still_learns():
    """A rejected trial point leaves x alone but shrinks P and resets the momentum memory."""
    x = torch.tensor([1.0, -2.0], dtype=F64)
    g = torch.tensor([1.0, 1.0], dtype=F64)
    state = hdm_init_state(x, 1.0, hdm_config("hdm-best"))
    state = type(state)(**{**vars(state), "P": torch.full((2,), 0.5, dtype=F64)})
    trial = hdm_trial_point(x, g, state)
    assert_allclose(trial, x - 0.5 * g)
    g_trial = -g  # overshoot: the gradient flipped
    x_new, f_new, g_new, new = hdm_update(x, 1.0, g, trial, 2.0, g_trial, state)
    assert not new.accepted and x_new is x and f_new == 1.0 and g_new is g
    # r = -g~ * g / ||g||^2 = +0.5 per entry; AdaGrad: P -= lr * r / |r| = lr = 10 / L.
    assert_allclose(new.P, 0.0)  # 0.5 - 10 clipped at 0
    assert new.monotone == 0 and new.n_iter == 1
    assert torch.equal(new.x_prev, x)


def test_overflowing_trial_point_is_rejected_and_halves_P():
    x, g = torch.ones(3, dtype=F64), torch.ones(3, dtype=F64)
    state = hdm_init_state(x, 1.0, hdm_config("hdm-diag"))
    state = type(state)(**{**vars(state), "P": torch.full((3,), 4.0, dtype=F64)})
    trial = hdm_trial_point(x, g, state)
    for f_trial, g_trial in [(math.inf, g), (0.0, torch.full((3,), math.nan, dtype=F64))]:
        x_new, f_new, _, new = hdm_update(x, 1.0, g, trial, f_trial, g_trial, state)
        assert not new.accepted and x_new is x and f_new == 1.0
        assert_allclose(new.P, 2.0)


def _reference_hdm_best(f, grad, x, L_est, max_iter, tol):
    """numpy transcription of ALGORITHMS.md 5.2 (HDM-Best, convex settings)."""
    lr = lr0 = 10.0 / L_est
    P, G = np.zeros_like(x), np.zeros_like(x)
    beta, Gb = 0.95, 0.0
    x_prev, fx, gx = x.copy(), f(x), grad(x)
    samples, monotone, guessed, n_grad, n_iter = [], 0, False, 1, 0
    path = [x]
    while np.abs(gx).max() > tol and n_grad < max_iter:
        n_iter += 1
        xt = x - P * gx + beta * (x - x_prev)
        ft, gt = f(xt), grad(xt)
        n_grad += 1
        D = gx @ gx + (0.25 * L_est ** 2 * np.sum((x - x_prev) ** 2) if guessed else 1e-12)
        r = -gt * gx / D
        G += r ** 2
        P = np.clip(P - lr * r / (np.sqrt(G) + 1e-12), 0.0, 1e10 / L_est)
        rb = gt @ (x - x_prev) / D
        Gb += rb ** 2
        beta = min(max(beta - 10.0 * rb / (np.sqrt(Gb) + 1e-12), 0.0), 0.9995)
        if n_iter % 50 == 49 and not guessed:
            lr = max(0.8 * lr, 1e-3 * lr0)
        x_prev = x
        if ft < fx:
            if np.linalg.norm(xt - x) > 1e-3:
                samples.append(np.linalg.norm(gt - gx) / np.linalg.norm(xt - x))
            x, fx, gx, monotone = xt, ft, gt, monotone + 1
        else:
            monotone = max(0, monotone - 2)
        if monotone > max(min(max_iter / 4, 200), 20) and not guessed:
            L_est = np.mean(samples)
            lr = lr0 = 1.0 / L_est
            G, guessed = G * 0.0, True
        path.append(x)
    return path, guessed, L_est


def test_hdm_best_matches_numpy_transcription_of_the_paper():
    """Same iterates as a line-by-line numpy transcription, curvature re-estimate included.

    Minimiser at 0 so that f keeps its relative precision and no exact tie in f (where the
    engine adds a gradient-norm tie-break) can occur.
    """
    problem = random_quadratic(3, d=30, cond=1000.0)
    problem.b = torch.zeros_like(problem.b)

    def f(x):
        return float(problem.objective(torch.from_numpy(x), None))

    def grad(x):
        return problem.grad(torch.from_numpy(x), None).numpy()

    max_iter = 80  # re-estimate threshold max(min(20, 200), 20): 21 net accepted steps
    path, guessed, L_ref = _reference_hdm_best(f, grad, problem.w0.numpy(),
                                               problem.lipschitz(None), max_iter, 0.0)
    solver = HDMSolver("hdm-best", tol=0.0, max_iter=max_iter)
    w = problem.init_params()
    state = solver.init_state(problem, w, None)
    for k in range(1, max_iter):
        w, state = solver.step(problem, w, None, state)
        # Same iterates up to rounding (reductions are summed in another order).
        err = np.linalg.norm(w.numpy() - path[k]) / np.linalg.norm(path[k])
        assert err < 1e-10, k
    assert guessed and state.hdm.reestimated  # the path under test was taken
    assert state.hdm.L_est == pytest.approx(L_ref, rel=1e-9)
    assert state.hdm.lr == pytest.approx(1.0 / L_ref, rel=1e-9)
    assert f(path[-1]) < 1e-3 * f(path[0])


def test_solver_is_stateless_and_warm_startable():
    problem = random_logistic(1)
    solver = HDMSolver()
    first, again = solver.solve(problem, None), solver.solve(problem, None)
    assert torch.equal(first.w, again.w) and first.n_grad_eval == again.n_grad_eval
    warm = solver.solve(problem, None, w0=first.w, state=first.solver_state)
    assert warm.converged and warm.n_grad_eval == 1


def test_step_api_reproduces_solve():
    problem, solver = random_quadratic(2), HDMSolver("hdm-hb", max_iter=50)
    w = problem.init_params()
    state = solver.init_state(problem, w, None)
    for _ in range(50):  # the first step (from P = 0) evaluates nothing
        w, state = solver.step(problem, w, None, state)
    assert torch.equal(w, solver.solve(problem, None).w)
    assert state.n_grad_eval == 50 and state.hdm.n_iter == 50


def test_missing_capability_is_named():
    class NoLipschitz(InnerProblem):
        def init_params(self):
            return torch.zeros(3, dtype=F64)

        def objective(self, w, theta):
            return (w ** 2).sum()

        def grad(self, w, theta):
            return 2 * w

    with pytest.raises(TypeError, match="lipschitz"):
        HDMSolver().solve(NoLipschitz(), None)
    # The power iteration on the (autograd) Hessian replaces it on request.
    sol = HDMSolver(smoothness="power").solve(NoLipschitz(), None, w0=torch.ones(3, dtype=F64))
    assert sol.converged and sol.n_matvec == 30


@pytest.mark.parametrize("bad", [dict(variant="adam"), dict(lr=-1.0), dict(beta_init=1.5),
                                 dict(smoothness="guess")])
def test_invalid_parameters(bad):
    with pytest.raises(ValueError):
        HDMSolver(**bad)


def test_ridge_problem_matches_closed_form(make_data, ridge_ref, global_random_seed):
    X, y, sw = make_data(global_random_seed, n_samples=60, n_features=8, sample_weight=True)
    T = lambda a: torch.as_tensor(np.asarray(a), dtype=F64)  # noqa: E731
    problem = RidgeProblem(T(X), T(y[:, None]), T(sw))
    alpha = 3.0
    sol = HDMSolver(tol=1e-6).solve(problem, torch.tensor([np.log(alpha)], dtype=F64))
    coef, _ = ridge_ref.fit(X, y, sw, alpha)
    assert sol.converged and sol.w.shape == (8, 1)
    # ||w - w*|| <= ||g|| / lambda_min(H) with lambda_min(H) >= alpha = 3.
    assert_allclose(sol.w.numpy(), coef, rtol=0, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32(variant, global_random_seed):
    """float32 stays float32 and converges to its precision (a 1e-4 relative gradient)."""
    problem = random_logistic(global_random_seed, dtype=torch.float32)
    g0 = float(problem.grad(problem.w0, None).abs().max())
    sol = HDMSolver(variant, tol=1e-4 * g0).solve(problem, None)
    assert sol.converged and sol.w.dtype == torch.float32
    assert sol.solver_state.hdm.P.dtype == torch.float32
    ref = HDMSolver(variant, tol=1e-10).solve(random_logistic(global_random_seed), None).w
    assert_allclose(sol.w.double(), ref, atol=5e-3)


# -- smoothness estimates ---------------------------------------------------------------------
def test_power_iteration_is_deterministic_and_close():
    A = random_quadratic(0).A
    lam = float(torch.linalg.eigvalsh(A).max())
    est = power_iteration(lambda v: A @ v, torch.empty(50, dtype=F64), n_iter=200)
    assert est == power_iteration(lambda v: A @ v, torch.empty(50, dtype=F64), n_iter=200)
    assert 0.99 * lam <= est <= lam * (1 + 1e-12)
    # The constant vector lies in the kernel of a Laplacian; the start must not be constant.
    L = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=F64)
    assert power_iteration(lambda v: L @ v, torch.empty(2, dtype=F64)) == pytest.approx(2.0)


def test_probe_smoothness_on_quadratic():
    problem = random_quadratic(1)
    x = problem.w0
    g = problem.grad(x, None)
    L = probe_smoothness(lambda z: problem.grad(z, None), x, g)
    evals = torch.linalg.eigvalsh(problem.A)
    assert float(evals.min()) <= L <= float(evals.max()) * (1 + 1e-6)
    assert L > 0.3 * float(evals.max())  # the gradient leans on the stiff directions
    assert probe_smoothness(lambda z: z, x, torch.zeros_like(x)) == 1.0


# -- the outer optimizer ----------------------------------------------------------------------
def _shifted_quadratic():
    A, c = np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([1.0, -2.0])
    calls = []

    def fun(theta):
        calls.append(theta.copy())
        d = theta - c
        return 0.5 * d @ A @ d + 1.0, A @ d
    return fun, c, calls


def test_outer_hdm_minimises_shifted_quadratic():
    assert OPTIMIZERS["hdm"] is OuterHDM is type(make_optimizer("hdm"))
    fun, c, calls = _shifted_quadratic()
    out = make_optimizer("hdm", max_iter=200, tol=1e-8).run(fun, np.zeros(2))
    assert out.converged and out.n_iter < 150
    assert_allclose(out.theta, c, atol=1e-7)
    # The start and the smoothness probe; the first trial point (P = 0) is the start itself.
    assert len(calls) == out.n_iter + 1


def test_outer_hdm_respects_bounds():
    fun, c, calls = _shifted_quadratic()
    out = make_optimizer("hdm", max_iter=200, tol=1e-8).run(fun, np.zeros(2),
                                                            bounds=(-1.5, 0.5))
    assert out.converged
    # Minimiser over the box: theta_0 = 0.5 is active, theta_1 = c1 - (0.5 - c0)/2 = -1.75
    # lies outside, so both bounds bite.
    assert_allclose(out.theta, [0.5, -1.5], atol=1e-10)
    assert all(np.all((-1.5 <= t) & (t <= 0.5)) for t in calls)


@pytest.mark.parametrize("per_feature", [False, True], ids=["one_alpha", "per_feature"])
def test_bilevel_ridge_with_hdm_matches_lbfgs(per_feature, make_data, global_random_seed):
    """Same CV error as the default optimizer (early stopping off: it would make the answer
    depend on the optimisation path, which differs between optimizers by design)."""
    X, y, _ = make_data(global_random_seed, n_samples=80, n_features=8)
    scores = {}
    for optimizer in ("lbfgs", "hdm"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a convergence warning is not what is tested
            reg = BilevelRidgeCV(optimizer=optimizer, alpha_per_feature=per_feature,
                                 early_stopping=False, cv=KFold(5)).fit(X, y)
        scores[optimizer] = reg.best_cv_error_
    assert scores["hdm"] <= 1.01 * scores["lbfgs"]
    with pytest.raises(ValueError):
        BilevelRidgeCV(optimizer="newton").fit(X, y)
