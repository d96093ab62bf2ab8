"""skbilevel.optim.HDM, the torch optimizer, against the engine solver and on toy training."""

import dataclasses
import math

import pytest
import torch
from numpy.testing import assert_allclose

from skbilevel.engine.inner import InnerProblem
from skbilevel.engine.solvers import HDMSolver
from skbilevel.optim import HDM

F64 = torch.float64
VARIANTS = ["hdm", "hdm-diag", "hdm-hb", "hdm-best", "osgm-best"]


def spd(seed, d=30, cond=100.0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    A = Q @ torch.diag(torch.logspace(0, math.log10(cond), d, dtype=F64)) @ Q.T
    A = 0.5 * (A + A.T)
    return (A.to(dtype), torch.randn(d, generator=g, dtype=F64).to(dtype),
            torch.randn(d, generator=g, dtype=F64).to(dtype))


class Quadratic(InnerProblem):
    def __init__(self, A, b):
        self.A, self.b = A, b

    def objective(self, w, theta):
        return 0.5 * w @ (self.A @ w) - self.b @ w

    def grad(self, w, theta):
        return self.A @ w - self.b

    def lipschitz(self, theta):
        return float(torch.linalg.eigvalsh(self.A).max())


def quadratic_closure(opt, w, problem):
    def closure():
        opt.zero_grad()
        loss = problem.objective(w.detach(), None)
        w.grad = problem.grad(w.detach(), None)  # the very same arithmetic as the engine
        return loss
    return closure


def state_numel(state):
    """numel of every tensor in an optimizer state, dicts and dataclasses walked through."""
    total = 0
    for value in state.values():
        stack = [value]
        while stack:
            v = stack.pop()
            if torch.is_tensor(v):
                total += v.numel()
            elif isinstance(v, dict):
                stack.extend(v.values())
            elif dataclasses.is_dataclass(v):
                stack.extend(getattr(v, f.name) for f in dataclasses.fields(v))
    return total


@pytest.mark.parametrize("variant", VARIANTS)
def test_same_iterates_as_engine_solver(variant, global_random_seed):
    A, b, w0 = spd(global_random_seed)
    problem = Quadratic(A, b)
    L = problem.lipschitz(None)
    solver = HDMSolver(variant, smoothness=L)
    w_engine = w0.clone()
    state = solver.init_state(problem, w_engine, None)

    w = torch.nn.Parameter(w0.clone())
    opt = HDM([w], variant=variant, smoothness=L, tol=0.0)
    closure = quadratic_closure(opt, w, problem)
    n_accepted = 0
    for k in range(150):
        opt.step(closure)
        w_engine, state = solver.step(problem, w_engine, None, state)
        n_accepted += state.hdm.accepted
        assert torch.allclose(w.detach(), w_engine, rtol=0, atol=1e-12), k
    assert n_accepted > 20  # the iterates moved
    # 150 iterations and the start, less the first trial point (x itself when P = 0).
    assert opt.n_func_evals == opt.n_grad_evals == 150 == state.n_grad_eval
    assert opt.state[w]["n_func_evals"] == 150


def test_same_iterates_with_several_parameters_and_autograd(global_random_seed):
    """Flattening: a linear model's (W, b) against the engine on their concatenation."""
    g = torch.Generator().manual_seed(global_random_seed)
    X, Y = torch.randn(40, 5, generator=g, dtype=F64), torch.randn(40, 3, generator=g, dtype=F64)
    W0, c0 = torch.randn(5, 3, generator=g, dtype=F64), torch.zeros(3, dtype=F64)

    def loss_of(W, c):
        return ((X @ W + c - Y) ** 2).mean() + 0.1 * (W ** 2).sum()

    class Flat(InnerProblem):
        def objective(self, w, theta):
            return loss_of(w[:15].view(5, 3), w[15:])

        def grad(self, w, theta):
            with torch.enable_grad():
                w_ = w.detach().requires_grad_(True)
                return torch.autograd.grad(self.objective(w_, theta), w_)[0]

    W, c = torch.nn.Parameter(W0.clone()), torch.nn.Parameter(c0.clone())
    opt = HDM([W, c], smoothness=5.0, tol=0.0)

    def closure():
        opt.zero_grad()
        loss = loss_of(W, c)
        loss.backward()
        return loss

    solver = HDMSolver(smoothness=5.0)
    w = torch.cat([W0.reshape(-1), c0])
    state = solver.init_state(Flat(), w, None)
    for _ in range(100):
        opt.step(closure)
        w, state = solver.step(Flat(), w, None, state)
    assert_allclose(torch.cat([W.detach().reshape(-1), c.detach()]), w, rtol=0, atol=1e-12)
    assert float(state.f) < 0.5 * float(loss_of(W0, c0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_converges_with_estimated_smoothness(variant, global_random_seed):
    A, b, w0 = spd(global_random_seed)
    problem = Quadratic(A, b)
    w = torch.nn.Parameter(w0.clone())
    opt = HDM([w], variant=variant, tol=1e-6, max_iter=1000)
    loss = opt.step(quadratic_closure(opt, w, problem))
    assert float(w.grad.abs().max()) <= 1e-6
    assert_allclose(w.detach(), torch.linalg.solve(A, b), atol=1e-5)
    assert float(loss) == pytest.approx(float(problem.objective(w.detach(), None)))
    # One evaluation per iteration (plus OSGM-Best's lookahead) but the first (from P = 0
    # its trial point is the start), the start and the three smoothness samples. Plain
    # HDM's one scalar P can be clipped to 0 again: a trial point at x costs nothing.
    if variant == "osgm-best":
        assert opt.n_func_evals >= opt.state[w]["n_iter"] + 3
    elif variant == "hdm":
        assert opt.n_func_evals <= opt.state[w]["n_iter"] + 3
    else:
        assert opt.n_func_evals == opt.state[w]["n_iter"] + 3
    L_est = opt.state[w]["hdm"].L_est
    assert 1.0 <= L_est <= problem.lipschitz(None) * (1 + 1e-6)
    # Converged: a further step evaluates nothing.
    n = opt.n_func_evals
    opt.step(quadratic_closure(opt, w, problem))
    assert opt.n_func_evals == n


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_is_linear_in_parameters(variant):
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Tanh(), torch.nn.Linear(20, 1))
    n_params = sum(p.numel() for p in model.parameters())
    X, y = torch.randn(32, 10), torch.randn(32, 1)
    opt = HDM(model.parameters(), variant=variant)

    def closure():
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    numel = state_numel(opt.state)
    assert 3 * n_params <= numel <= 8 * n_params + 16


def test_trains_small_mlp_in_float32():
    torch.manual_seed(0)
    X = torch.linspace(-2, 2, 64).unsqueeze(1)
    y = torch.sin(2 * X) + 0.1 * X ** 2
    model = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt = HDM(model.parameters(), convex=False)

    def closure():
        opt.zero_grad()
        loss = ((model(X) - y) ** 2).mean()
        loss.backward()
        return loss

    start = float(closure().detach())
    losses = [float(opt.step(closure)) for _ in range(300)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # null steps: never worse
    assert losses[-1] < 0.2 * start
    assert next(model.parameters()).dtype == torch.float32
    # 300 steps but the first (P = 0: no evaluation), the start, three smoothness samples.
    assert opt.n_func_evals == 303


def test_float32_quadratic():
    A, b, w0 = spd(0, dtype=torch.float32)
    problem = Quadratic(A, b)
    w = torch.nn.Parameter(w0.clone())
    opt = HDM([w], tol=1e-4 * float(problem.grad(w0, None).abs().max()), max_iter=1000)
    opt.step(quadratic_closure(opt, w, problem))
    assert opt.state[w]["hdm"].P.dtype == torch.float32
    assert_allclose(w.detach().double(), torch.linalg.solve(A.double(), b.double()), atol=1e-2)


def test_parameters_changed_outside_are_re_evaluated():
    A, b, w0 = spd(1)
    problem = Quadratic(A, b)
    w = torch.nn.Parameter(w0.clone())
    opt = HDM([w], smoothness=problem.lipschitz(None), tol=0.0, max_iter=5)
    closure = quadratic_closure(opt, w, problem)
    opt.step(closure)
    assert opt.n_func_evals == 5  # the start, five iterations, the first free (P = 0)
    with torch.no_grad():
        w.mul_(0.5)
    loss = opt.step(closure)
    assert opt.n_func_evals == 11  # one re-evaluation at the new point, five iterations
    assert float(loss) == pytest.approx(float(problem.objective(w.detach(), None)))


def test_rejects_parameter_groups_and_bad_options():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="parameter groups"):
        HDM([{"params": [a]}, {"params": [b]}])
    with pytest.raises(ValueError, match="variant"):
        HDM([a], variant="adam")
    with pytest.raises(ValueError, match="smoothness"):
        HDM([a], smoothness=-1.0)
