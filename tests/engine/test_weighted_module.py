"""WeightedModuleProblem's derivatives against central finite differences (float64), and the
per-sample hypergradient of hyper-cleaning (not the authors' sum-over-samples bug)."""

import pytest
import torch

from skbilevel.engine.inner import LinearModel, MLPModel, WeightedModuleProblem

F64 = torch.float64
EPS = 1e-6


def make_problem(kind, seed=0, n=12, n_val=8, d=3, n_classes=3, reg=1e-2):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=F64)
    X_val = torch.randn(n_val, d, generator=g, dtype=F64)
    t = torch.randint(0, n_classes, (n,), generator=g)
    t_val = torch.randint(0, n_classes, (n_val,), generator=g)
    model = (LinearModel(d, n_classes) if kind == "linear"
             else MLPModel(d, n_classes, hidden=(4,), activation="tanh"))
    base = 0.5 + torch.rand(n, generator=g, dtype=F64)
    problem = WeightedModuleProblem(X, t, X_val, t_val, model, reg=reg, base_weights=base)
    x = torch.randn(n, generator=g, dtype=F64)
    y = 0.5 * torch.randn(model.n_params, generator=g, dtype=F64)
    return problem, x, y, g


def fd_grad(fun, z):
    """Central differences of a scalar or vector function, one column per coordinate."""
    cols = []
    for i in range(z.numel()):
        e = torch.zeros_like(z)
        e[i] = EPS
        cols.append((torch.as_tensor(fun(z + e), dtype=F64)
                     - torch.as_tensor(fun(z - e), dtype=F64)) / (2 * EPS))
    return torch.stack(cols, -1)


def close(a, b, rtol=1e-6):
    return float((a - b).norm()) <= rtol * max(float(b.norm()), 1e-12)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_first_and_second_order_derivatives(kind):
    problem, x, y, g = make_problem(kind)
    inner = problem.inner_grad(x, y)
    assert close(inner, fd_grad(lambda yy: problem.inner_value(x, yy).item(), y))
    assert close(problem.outer_grad(y), fd_grad(lambda yy: problem.outer_value(yy).item(), y))

    h, hx, hy = problem.constraint(x, y)
    assert h == pytest.approx(float(inner @ inner), rel=1e-12)

    def h_of(xx, yy):
        v = problem.inner_grad(xx, yy)
        return float(v @ v)

    assert close(hx, fd_grad(lambda xx: h_of(xx, y), x), rtol=1e-5)
    assert close(hy, fd_grad(lambda yy: h_of(x, yy), y), rtol=1e-5)

    v = torch.randn(y.numel(), generator=g, dtype=F64)
    hvp_fd = (problem.inner_grad(x, y + EPS * v) - problem.inner_grad(x, y - EPS * v)) / (2 * EPS)
    assert close(problem.hvp(x, y, v), hvp_fd, rtol=1e-5)
    cross = problem.cross(x, y, v)
    assert cross.shape == (problem.n,)
    assert close(cross, fd_grad(lambda xx: float(problem.inner_grad(xx, y) @ v), x), rtol=1e-5)


def buggy_cross(problem, x, y, v):
    """The authors' analytic DHC cross derivative: the mean over samples, repeated."""
    return problem.cross(x, y, v).mean().expand(problem.n)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_cross_is_per_sample_at_uniform_weights(kind):
    """At x = 0 (uniform weights) the per-sample entries differ; the check that passes the
    real cross derivative rejects the authors' mean-repeated one."""
    problem, _, y, g = make_problem(kind)
    problem.base = torch.ones(problem.n, dtype=F64)
    x = torch.zeros(problem.n, dtype=F64)
    v = torch.randn(y.numel(), generator=g, dtype=F64)
    reference = fd_grad(lambda xx: float(problem.inner_grad(xx, y) @ v), x)
    cross = problem.cross(x, y, v)
    assert float(cross.std()) > 0.1 * float(cross.abs().mean())
    assert close(cross, reference, rtol=1e-5)
    assert not close(buggy_cross(problem, x, y, v), reference, rtol=0.1)


def inner_solution(problem, x, tol=1e-13):
    """Newton's method with the dense Hessian (the linear model's g is strongly convex)."""
    y = torch.zeros(problem.model.n_params, dtype=F64)
    for _ in range(50):
        grad = problem.inner_grad(x, y)
        if float(grad.norm()) < tol:
            return y
        H = torch.autograd.functional.hessian(lambda yy: problem.inner_value(x, yy), y)
        y = y - torch.linalg.solve(H, grad)
    raise AssertionError("Newton did not converge")


def test_implicit_per_sample_hypergradient():
    """-cross(x, y*, H^-1 grad f(y*)) at uniform weights against central differences of
    x -> f(y*(x)), y* solved by Newton to ||grad_y g|| < 1e-13."""
    problem, _, _, _ = make_problem("linear", n=10)
    problem.base = torch.ones(problem.n, dtype=F64)
    x = torch.zeros(problem.n, dtype=F64)
    y_star = inner_solution(problem, x)
    H = torch.autograd.functional.hessian(lambda yy: problem.inner_value(x, yy), y_star)
    adjoint = torch.linalg.solve(H, problem.outer_grad(y_star))
    torch.testing.assert_close(problem.hvp(x, y_star, adjoint), problem.outer_grad(y_star))
    hypergrad = -problem.cross(x, y_star, adjoint)
    assert float(hypergrad.std()) > 0.1 * float(hypergrad.abs().mean())
    for i in (0, 3, 7):
        e = torch.zeros_like(x)
        e[i] = 1e-4
        fd = (problem.outer_value(inner_solution(problem, x + e))
              - problem.outer_value(inner_solution(problem, x - e))) / 2e-4
        assert float(hypergrad[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-10)
