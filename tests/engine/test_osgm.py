"""OSGM-Best (``variant="osgm-best"``) and the sampled smoothness start.

Oracles: a numpy transcription of OSGM-Best's rules (Chu, Gao, Ye, Udell, "Gradient methods
with online scaling II", 2025: P from 0 with lr 1/L, beta_lr min(1, L), P <= 1e5/L, the
curvature re-estimate, then the Armijo lookahead), the Armijo condition itself, and the
eigenvalues of a quadratic for the smoothness estimate.
"""

import math

import numpy as np
import pytest
import torch

from skbilevel.engine.hdm import (hdm_config, hdm_init_state, hdm_lookahead, hdm_step,
                                  hdm_wants_lookahead)
from skbilevel.engine.inner import InnerProblem
from skbilevel.engine.linalg import sample_smoothness
from skbilevel.engine.solvers import HDMSolver
from skbilevel.optim import HDM

F64 = torch.float64


class Smooth(InnerProblem):
    """``1/2 w^T A w - b^T w`` or, with ``X``, an L2 logistic loss (theta unused)."""

    def __init__(self, w0, A=None, b=None, X=None, y=None, lam=0.0):
        self.w0, self.A, self.b, self.X, self.y, self.lam = w0, A, b, X, y, lam

    def init_params(self):
        return self.w0.clone()

    def objective(self, w, theta):
        if self.X is None:
            return 0.5 * w @ (self.A @ w) - self.b @ w
        return (torch.nn.functional.softplus(-self.y * (self.X @ w)).sum()
                + 0.5 * self.lam * w @ w)

    def grad(self, w, theta):
        if self.X is None:
            return self.A @ w - self.b
        return -self.X.T @ (self.y * torch.sigmoid(-self.y * (self.X @ w))) + self.lam * w


def random_quadratic(seed, d=50, cond=100.0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    A = Q @ torch.diag(torch.logspace(0, math.log10(cond), d, dtype=F64)) @ Q.T
    b, w0 = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
    return Smooth(w0, A=0.5 * (A + A.T), b=b)


def random_logistic(seed, n=200, d=20, lam=1.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    y = torch.sign(X @ torch.randn(d, generator=g, dtype=F64)
                   + 0.5 * torch.randn(n, generator=g, dtype=F64))
    return Smooth(torch.randn(d, generator=g, dtype=F64), X=X, y=y, lam=lam)


def _reference_osgm_best(f, grad, x, L_est, max_iter):
    """numpy transcription of OSGM-Best (convex, diagonal P, scalar beta, omega = 0).

    Returns the iterates, the number of lookaheads and the final L estimate.
    """
    lr, beta_lr = 1.0 / L_est, min(1.0, L_est)
    P, G, beta, Gb = np.zeros_like(x), np.zeros_like(x), 0.95, 0.0
    x_prev, fx, gx = x.copy(), f(x), grad(x)
    samples, monotone, guessed, n_look = [], 0, False, 0
    path = [x]
    for n_iter in range(1, max_iter):
        m = x - x_prev
        xt = x - P * gx + beta * m
        ft, gt = f(xt), grad(xt)
        x_look, f_look, g_look = xt, ft, gt
        if guessed and np.linalg.norm(gt) > 2.0 * np.linalg.norm(gx):
            n_look += 1
            d, eta = P * gt, 1.0
            while eta > 1e-6:
                z = xt - eta * d
                if f(z) <= ft - 0.5 * eta * gt @ d:
                    x_look, f_look, g_look = z, f(z), grad(z)
                    break
                eta *= 0.8
        D = gx @ gx + (0.25 * L_est ** 2 * m @ m if guessed else 1e-12)
        r, rb = -gt * gx / D, gt @ m / D
        G, Gb = G + r * r, Gb + rb * rb
        P = np.clip(P - lr * r / (np.sqrt(G) + 1e-12), 0.0, 1e5 / L_est)
        beta = min(max(beta - beta_lr * rb / (np.sqrt(Gb) + 1e-12), 0.0), 0.9995)
        if n_iter % 50 == 49 and not guessed:
            lr = max(0.8 * lr, 1e-3 / L_est)
        x_prev = x
        if f_look < fx:
            if np.linalg.norm(xt - x) > 1e-3:
                samples.append(np.linalg.norm(gt - gx) / np.linalg.norm(xt - x))
            x, fx, gx, monotone = x_look, f_look, g_look, monotone + 1
        else:
            monotone = max(0, monotone - 2)
        if monotone > max(min(max_iter / 4, 200), 20) and not guessed:
            L_est = np.mean(samples)
            lr, beta_lr, G, guessed = 1.0 / L_est, min(1.0, L_est), G * 0.0, True
        path.append(x)
    return path, n_look, L_est


def test_osgm_best_matches_numpy_transcription_lookahead_included():
    # Minimiser at 0: f keeps its relative precision, no exact ties in f.
    problem = random_quadratic(4, d=30, cond=1000.0)
    problem.b = torch.zeros_like(problem.b)

    def f(x):
        return float(problem.objective(torch.from_numpy(x), None))

    def grad(x):
        return problem.grad(torch.from_numpy(x), None).numpy()

    max_iter, L0 = 120, 50.0  # re-estimate after 31 net accepted steps
    path, n_look, L_ref = _reference_osgm_best(f, grad, problem.w0.numpy(), L0, max_iter)
    assert n_look >= 1  # the path under test runs the lookahead
    solver = HDMSolver("osgm-best", tol=0.0, max_iter=max_iter, smoothness=L0)
    w = problem.init_params()
    state = solver.init_state(problem, w, None)
    assert torch.equal(state.hdm.P, torch.zeros_like(w))  # P starts at 0
    assert state.hdm.lr == 1.0 / L0 and state.hdm.beta_lr == 1.0
    for k in range(1, max_iter):
        w, state = solver.step(problem, w, None, state)
        err = np.linalg.norm(w.numpy() - path[k]) / np.linalg.norm(path[k])
        assert err < 1e-9, k
    core = state.hdm
    assert core.reestimated and core.L_est == pytest.approx(L_ref, rel=1e-9)
    assert core.lr == pytest.approx(1.0 / L_ref) and core.beta_lr == min(1.0, L_ref)
    assert float(core.P.max()) <= 1e5 / core.L_est
    # The lookahead's objective-only evaluations are counted apart from the gradients.
    assert state.n_func_eval > state.n_grad_eval >= max_iter


def test_lookahead_is_armijo_and_only_after_reestimate():
    problem = random_quadratic(0, d=10)
    x = problem.init_params()
    g = problem.grad(x, None)
    state = hdm_init_state(x, 1.0, hdm_config("osgm-best"))
    state = type(state)(**{**vars(state), "P": torch.full_like(x, 0.05)})
    x_trial = x - 3.0 * g  # overshoots: the gradient grows
    g_trial = problem.grad(x_trial, None)
    f_trial = float(problem.objective(x_trial, None))
    assert float(g_trial.norm()) > 2 * float(g.norm())
    assert not hdm_wants_lookahead(g, g_trial, state)  # not before the re-estimate
    state = type(state)(**{**vars(state), "reestimated": True})
    assert hdm_wants_lookahead(g, g_trial, state)
    assert not hdm_wants_lookahead(g, g, state)
    assert not hdm_wants_lookahead(g, g_trial, hdm_init_state(
        x, 1.0, hdm_config("hdm-best")))  # HDM-Best never looks ahead
    calls = []

    def value(z):
        calls.append(z)
        return float(problem.objective(z, None))

    (z, f_z, g_z), n = hdm_lookahead(x_trial, f_trial, g_trial, state, value)
    assert n == len(calls) >= 1 and g_z is None
    eta = 0.8 ** (n - 1)
    slope = float(g_trial @ (state.P * g_trial))
    assert torch.allclose(z, x_trial - eta * state.P * g_trial)
    assert f_z <= f_trial - 0.5 * eta * slope < f_trial  # the lookahead decreased f
    if n > 1:  # the previous eta failed the test
        z_prev = x_trial - eta / 0.8 * state.P * g_trial
        assert float(problem.objective(z_prev, None)) > f_trial - 0.5 * eta / 0.8 * slope


def test_null_steps_never_increase_with_lookahead():
    """Past the re-estimate (threshold 75 with max_iter=300) accepted values still decrease."""
    problem = random_logistic(0, lam=0.01)
    sol = HDMSolver("osgm-best", tol=0.0, max_iter=300, smoothness="sample",
                    record_history=True).solve(problem, None)
    f = np.array([r["objective"] for r in sol.history])
    assert sol.solver_state.hdm.reestimated
    # Never up, beyond the four roundings of f (plus the rounding of that sum) within
    # which the gradient norm decides (it does here: the run goes on to ||g|| ~ 1e-8).
    assert np.all(np.diff(f) <= 5 * np.finfo(float).eps * np.abs(f[:-1]))
    assert f[-1] < 0.1 * f[0]


def test_engine_and_torch_optimizer_agree_with_lookahead():
    problem = random_quadratic(4, d=30, cond=1000.0)
    problem.b = torch.zeros_like(problem.b)
    L0 = 50.0
    solver = HDMSolver("osgm-best", tol=0.0, max_iter=1000, smoothness=L0)
    w_engine = problem.init_params()
    state = solver.init_state(problem, w_engine, None)
    w = torch.nn.Parameter(problem.init_params())
    opt = HDM([w], variant="osgm-best", smoothness=L0, tol=0.0)

    def closure():
        opt.zero_grad()
        loss = problem.objective(w.detach(), None)
        w.grad = problem.grad(w.detach(), None)  # the very same arithmetic as the engine
        return loss

    for k in range(400):
        opt.step(closure)
        w_engine, state = solver.step(problem, w_engine, None, state)
        assert torch.allclose(w.detach(), w_engine, rtol=0, atol=1e-10), k
    assert state.hdm.reestimated
    # The engine's line search evaluates f alone, the closure always f and grad.
    assert state.n_func_eval > state.n_grad_eval and opt.n_func_evals == state.n_func_eval


@pytest.mark.parametrize("along_gradient", [False, True])
def test_sample_smoothness_within_documented_factor(along_gradient, global_random_seed):
    d = 40
    problem = random_quadratic(global_random_seed, d=d, cond=100.0)
    A = problem.A
    L = float(torch.linalg.eigvalsh(A).max())
    x = problem.init_params()
    g = problem.grad(x, None)
    calls = []

    def grad(z):
        calls.append(z)
        return problem.grad(z, None)

    est = sample_smoothness(grad, x, g, along_gradient=along_gradient)
    assert len(calls) == 3
    assert L / math.sqrt(d) <= est <= L * (1 + 1e-6)  # the documented range
    if along_gradient:
        assert est >= 0.5 * L  # -g sees the stiff directions
    # Deterministic, and each sample is ||A u|| exactly (radius 1e-4 * ||x||).
    assert est == sample_smoothness(grad, x, g, along_gradient=along_gradient)
    h = 1e-4 * max(1.0, float(x.norm()))
    norms = [float((A @ (z - x)).norm()) / h for z in calls[:3]]
    assert est == pytest.approx(max(norms), rel=1e-6)
    # A constant gradient (zero difference) falls back to 1.
    assert sample_smoothness(lambda z: g, x, g) == 1.0


def test_sample_start_is_counted():
    problem = random_logistic(2)
    sol = HDMSolver("osgm-best", smoothness="sample", tol=1e-6).solve(problem, None)
    assert sol.converged
    # Start + three samples, no lookahead here; the first trial point (P = 0) is the start.
    assert sol.n_grad_eval == sol.n_iter + 3
    with pytest.raises(ValueError, match="smoothness"):
        HDMSolver(smoothness="random")
    with pytest.raises(ValueError, match="beta_lr"):
        hdm_config("osgm-best", beta_lr=-1.0)
    x = problem.init_params()
    out = hdm_step(x, problem.objective(x, None), problem.grad(x, None),
                   hdm_init_state(x, 1.0, hdm_config("osgm-best")),
                   lambda z: (problem.objective(z, None), problem.grad(z, None)))
    # P = 0: the trial point is x itself, a null step that costs no evaluation.
    assert out[-2:] == (0, 0) and not out[3].accepted and float(out[3].P.min()) > 0


def test_osgm_best_decays_as_its_reference_even_if_nonconvex():
    # The reference OSGM-Best decays lr by 0.8 every 50 iterations whatever `convex` says
    # (HDM's reference code decays a non-convex run by 0.05).
    problem = random_logistic(1)
    x = problem.init_params()
    f, g = problem.objective(x, None), problem.grad(x, None)
    for variant, factor in (("osgm-best", 0.8), ("hdm-best", 0.05)):
        state = hdm_init_state(x, 10.0, hdm_config(variant, convex=False))
        z, fz, gz = x, f, g
        for _ in range(49):
            z, fz, gz, state, _, _ = hdm_step(
                z, fz, gz, state, lambda w: (problem.objective(w, None), problem.grad(w, None)))
        assert not state.reestimated and state.lr == pytest.approx(factor * state.lr0)
