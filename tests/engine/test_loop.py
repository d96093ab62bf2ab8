"""The outer loop ``minimize_hyperparams`` on small K-fold ridge problems."""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize_scalar

from skbilevel.engine import Fold, OuterResult, minimize_hyperparams
from skbilevel.engine.hypergrad import ImplicitDifferentiation
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.linalg import make_linear_solver
from skbilevel.engine.outer import HeldOutMSE, make_optimizer
from skbilevel.engine.loop import Progress
from skbilevel.engine.solvers import ClosedFormSolver, ConjugateGradientSolver

F64 = torch.float64
HISTORY_KEYS = {"phase", "objective", "fold_objectives", "theta", "grad_norm", "time",
                "n_inner_iter", "n_linsys_iter", "n_matvec", "inner_converged"}


def T(a):
    return torch.as_tensor(np.asarray(a), dtype=F64)


def _engine(path):
    if path == "closed_form":
        return ClosedFormSolver(), ImplicitDifferentiation(None)
    return (ConjugateGradientSolver(rtol=1e-12),
            ImplicitDifferentiation(make_linear_solver(path, rtol=1e-12)))


class KFoldProblem:
    """A random regression problem cut into K folds (plus an optional holdout)."""

    def __init__(self, make_data, seed, *, n_samples=80, n_folds=4, groups=None,
                 holdout=False, sample_weight=False):
        self.X, self.y, self.sw = make_data(seed, n_samples=n_samples, noise=1.5,
                                            sample_weight=sample_weight)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(n_samples)
        self.held = np.sort(perm[: n_samples // 5]) if holdout else None
        rest = perm[n_samples // 5:] if holdout else perm
        parts = np.array_split(rest, n_folds)
        self.splits = [(np.concatenate([p for j, p in enumerate(parts) if j != i]), parts[i])
                       for i in range(n_folds)]
        self.groups = groups
        self.n_hyper = 1 if groups is None else int(np.max(groups)) + 1
        self.folds = [self._fold(tr, va) for tr, va in self.splits]
        self.holdout = self._fold(rest, self.held) if holdout else None

    def _fold(self, train, val):
        sw = self.sw
        groups = None if self.groups is None else torch.as_tensor(self.groups)
        p = RidgeProblem(T(self.X[train]), T(self.y[train, None]),
                         None if sw is None else T(sw[train]), groups=groups)
        c = HeldOutMSE.for_problem(p, T(self.X[val]), T(self.y[val, None]),
                                   None if sw is None else T(sw[val]))
        return Fold(p, c)

    def alpha(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        return np.exp(theta[0]) if self.groups is None else np.exp(theta)[self.groups]

    def cv(self, ridge_ref, theta):
        return ridge_ref.cv_value(self.X, self.y, self.sw, self.alpha(theta), self.splits)

    def holdout_value(self, ridge_ref, theta):
        rest = np.setdiff1d(np.arange(len(self.y)), self.held)
        return ridge_ref.split_value(self.X, self.y, self.sw, self.alpha(theta), rest,
                                     self.held)

    def log_scale(self, ridge_ref):
        return float(np.log(ridge_ref.gram_scale(self.X, self.sw)))

    def run(self, theta0, path="closed_form", optimizer="lbfgs", start_grid=None,
            bounds=None, n_jobs=None, verbose=0, **opt_params):
        solver, method = _engine(path)
        return minimize_hyperparams(
            self.folds, T(theta0), solver=solver, method=method,
            optimizer=make_optimizer(optimizer, **opt_params), bounds=bounds,
            start_grid=start_grid, holdout=self.holdout, n_jobs=n_jobs, verbose=verbose)


def _cv_optimum(problem, ridge_ref):
    """The CV-optimal log(alpha) of a one-alpha problem, from values only (Brent)."""
    ls = problem.log_scale(ridge_ref)
    opt = minimize_scalar(lambda t: problem.cv(ridge_ref, [t]), bounds=(ls - 12, ls + 8),
                          method="bounded", options={"xatol": 1e-10, "maxiter": 500})
    assert ls - 11 < opt.x < ls + 7, "the test problem must have an interior optimum"
    return opt.x, opt.fun


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "gd"])
@pytest.mark.parametrize("groups", [None, [0, 1, 2, 0, 1, 2, 0, 1]], ids=["one", "grouped"])
def test_never_worse_than_start_grid(optimizer, groups, make_data, global_random_seed,
                                     ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed, groups=groups)
    ls = problem.log_scale(ridge_ref)
    grid = T(ls + np.linspace(-6, 6, 7))[:, None].expand(-1, problem.n_hyper)
    theta0 = np.full(problem.n_hyper, ls + 9.0)  # a poor start: nearly all-zero coefficients
    # two outer steps at most: the safety grid has to do the work
    result = problem.run(theta0, optimizer=optimizer, start_grid=grid, max_iter=2,
                         bounds=(ls - 12, ls + 12))
    assert isinstance(result, OuterResult)
    grid_values = [problem.cv(ridge_ref, g) for g in grid.numpy()]
    start_value = problem.cv(ridge_ref, theta0)
    assert min(grid_values) < start_value  # the grid really is the better start
    assert result.value <= min(grid_values) * (1 + 1e-12)
    # the reported value is the CV error of the reported theta
    assert_allclose(result.value, problem.cv(ridge_ref, result.theta.numpy()), rtol=1e-10)
    # the grid phase is recorded first, with the independent values
    grid_records = [r for r in result.history if r["phase"] == "grid"]
    assert len(grid_records) == 1 + len(grid)
    assert_allclose([r["objective"] for r in grid_records], [start_value] + grid_values,
                    rtol=1e-10)


@pytest.mark.parametrize("holdout", [False, True], ids=["no_holdout", "holdout"])
@pytest.mark.parametrize("path", ["closed_form", "recycled_minres"])
def test_history_records(holdout, path, make_data, global_random_seed, ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed, holdout=holdout,
                           groups=np.arange(8) % 3)
    ls = problem.log_scale(ridge_ref)
    grid = T(ls + np.linspace(-4, 4, 5))[:, None].expand(-1, 3)
    result = problem.run(np.full(3, ls), path=path, start_grid=grid, max_iter=20)
    expected = HISTORY_KEYS | ({"holdout_objective"} if holdout else set())
    phases = [r["phase"] for r in result.history]
    assert phases == ["grid"] * 6 + ["optimize"] * (len(phases) - 6)
    assert len(phases) > 6
    times = [r["time"] for r in result.history]
    assert np.all(np.diff(times) >= 0)
    for rec in result.history:
        assert set(rec) == expected
        assert rec["theta"].shape == (3,)
        assert_allclose(rec["objective"], problem.cv(ridge_ref, rec["theta"]), rtol=1e-9)
        # each fold's criterion, against a direct fit of that split; the mean is objective
        folds = [ridge_ref.split_value(problem.X, problem.y, problem.sw,
                                       problem.alpha(rec["theta"]), tr, va)
                 for tr, va in problem.splits]
        assert_allclose(rec["fold_objectives"], folds, rtol=1e-9)
        assert_allclose(np.mean(rec["fold_objectives"]), rec["objective"], rtol=1e-12)
        if holdout:
            assert_allclose(rec["holdout_objective"],
                            problem.holdout_value(ridge_ref, rec["theta"]), rtol=1e-9)
        assert rec["inner_converged"] is True
        if rec["phase"] == "grid":
            assert np.isnan(rec["grad_norm"])
            assert rec["n_linsys_iter"] == 0
        else:
            assert np.isfinite(rec["grad_norm"]) and rec["grad_norm"] >= 0
            if path == "closed_form":
                assert rec["n_inner_iter"] == rec["n_linsys_iter"] == rec["n_matvec"] == 0
            else:
                # recycled MINRES may deflate the whole (small) space: 0 Krylov iterations,
                # but the pairing of the recycle space still costs operator applications
                assert rec["n_inner_iter"] > 0
                assert 0 <= rec["n_linsys_iter"] <= rec["n_matvec"]
                assert rec["n_matvec"] > 0
    if path != "closed_form":
        first = next(r for r in result.history if r["phase"] == "optimize")
        assert first["n_linsys_iter"] > 0  # the first adjoint solves have nothing to recycle
    # the gradient norms recorded are those of the fold-averaged hypergradient
    rec = next(r for r in result.history if r["phase"] == "optimize")
    step = 1e-5
    fd = [(problem.cv(ridge_ref, rec["theta"] + step * e)
           - problem.cv(ridge_ref, rec["theta"] - step * e)) / (2 * step) for e in np.eye(3)]
    assert_allclose(rec["grad_norm"], np.linalg.norm(fd), rtol=1e-5)


@pytest.mark.parametrize("path", ["closed_form", "cg"])
def test_holdout_selects_argmin_of_holdout_objective(path, make_data, global_random_seed,
                                                     ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed, holdout=True,
                           groups=np.arange(8))
    ls = problem.log_scale(ridge_ref)
    grid = T(ls + np.linspace(-4, 4, 5))[:, None].expand(-1, 8)
    result = problem.run(np.full(8, ls), path=path, start_grid=grid, max_iter=30)
    holdout = np.array([r["holdout_objective"] for r in result.history])
    best = int(np.argmin(holdout))
    assert_array_equal(result.theta.numpy(), result.history[best]["theta"])
    assert result.value == result.history[best]["objective"]
    assert_allclose(holdout[best], problem.holdout_value(ridge_ref, result.theta.numpy()),
                    rtol=1e-9)
    assert np.all(holdout >= holdout[best])
    # without the holdout, the same run returns the argmin of the CV objective instead
    problem.holdout = None
    plain = problem.run(np.full(8, ls), path=path, start_grid=grid, max_iter=30)
    objective = np.array([r["objective"] for r in plain.history])
    assert plain.value == objective.min()
    assert_array_equal(plain.theta.numpy(), plain.history[int(np.argmin(objective))]["theta"])


OPTIMIZERS = {"lbfgs": dict(max_iter=100, tol=1e-9),
              "adam": dict(max_iter=400, tol=1e-7),
              "gd": dict(max_iter=200, tol=1e-9)}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_outer_optimizers_reach_the_cv_optimum(optimizer, make_data, global_random_seed,
                                               ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed)
    theta_star, value_star = _cv_optimum(problem, ridge_ref)
    ls = problem.log_scale(ridge_ref)
    result = problem.run([theta_star + 2.0], optimizer=optimizer, bounds=(ls - 12, ls + 8),
                         **OPTIMIZERS[optimizer])
    # no start grid: every evaluation is an optimizer step
    assert all(r["phase"] == "optimize" for r in result.history)
    assert result.n_iter >= 1
    assert abs(float(result.theta[0]) - theta_star) < 1e-4
    assert result.value <= value_star * (1 + 1e-10)


def test_bounds_are_respected(make_data, global_random_seed, ridge_ref):
    """With the optimum outside the box, every optimizer stops on the nearest bound."""
    problem = KFoldProblem(make_data, global_random_seed)
    theta_star, _ = _cv_optimum(problem, ridge_ref)
    low, high = theta_star + 1.0, theta_star + 3.0
    for name, params in OPTIMIZERS.items():
        result = problem.run([theta_star + 2.0], optimizer=name, bounds=(low, high), **params)
        thetas = np.array([r["theta"][0] for r in result.history])
        assert np.all((thetas >= low) & (thetas <= high)), name
        assert_allclose(float(result.theta[0]), low, atol=1e-6, err_msg=name)


def test_start_grid_is_clipped_to_bounds(make_data, global_random_seed, ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed)
    theta_star, _ = _cv_optimum(problem, ridge_ref)
    low, high = theta_star + 1.0, theta_star + 3.0
    grid = T(theta_star + np.linspace(-4, 4, 9))[:, None]
    result = problem.run([theta_star], start_grid=grid, bounds=(low, high))
    thetas = np.array([r["theta"][0] for r in result.history])
    assert np.all((thetas >= low) & (thetas <= high))
    assert_allclose(float(result.theta[0]), low, atol=1e-6)


@pytest.mark.parametrize("path", ["closed_form", "recycled_minres"])
def test_n_jobs_gives_the_same_result(path, make_data, global_random_seed, ridge_ref):
    problem = KFoldProblem(make_data, global_random_seed, groups=np.arange(8) % 3,
                           holdout=True)
    ls = problem.log_scale(ridge_ref)
    grid = T(ls + np.linspace(-4, 4, 5))[:, None].expand(-1, 3)
    results = [problem.run(np.full(3, ls), path=path, start_grid=grid, n_jobs=n_jobs,
                           max_iter=15) for n_jobs in (1, 2)]
    _assert_same_result(*results)


@pytest.mark.parametrize("path", ["closed_form", "cg", "minres", "recycled_minres"])
def test_same_inputs_twice_same_output(path, make_data, global_random_seed, ridge_ref):
    """No state survives on the engine objects: one set of objects, two identical runs."""
    problem = KFoldProblem(make_data, global_random_seed, groups=np.arange(8))
    ls = problem.log_scale(ridge_ref)
    solver, method = _engine(path)
    optimizer = make_optimizer("lbfgs", max_iter=15)
    runs = [minimize_hyperparams(problem.folds, T(np.full(8, ls)), solver=solver,
                                 method=method, optimizer=optimizer) for _ in range(2)]
    _assert_same_result(*runs)


@pytest.mark.parametrize("strength", [0.0, 0.01, 1.0])
def test_penalty_is_added_in_the_optimisation_only(strength, make_data, global_random_seed,
                                                   ridge_ref):
    """``penalty(theta) -> (value, grad)`` (here a pull of log alpha toward their mean) is
    minimised with the CV error but left out of the recorded objective and value."""
    problem = KFoldProblem(make_data, global_random_seed, groups=np.arange(8))
    ls = problem.log_scale(ridge_ref)

    def penalty(theta):
        centred = theta - theta.mean()
        return strength * (centred ** 2).mean(), 2.0 * strength * centred / centred.numel()

    rng = np.random.default_rng(global_random_seed)
    theta0 = ls + rng.uniform(-2, 2, 8)
    solver, method = _engine("closed_form")
    result = minimize_hyperparams(problem.folds, T(theta0), solver=solver, method=method,
                                  optimizer=make_optimizer("lbfgs", max_iter=200, tol=1e-9),
                                  penalty=penalty)
    for rec in result.history[::5]:
        assert_allclose(rec["objective"], problem.cv(ridge_ref, rec["theta"]), rtol=1e-9)
    theta = result.theta.numpy()
    assert_allclose(result.value, problem.cv(ridge_ref, theta), rtol=1e-9)

    def total(t):
        return problem.cv(ridge_ref, t) + strength * np.var(t)

    assert total(theta) < total(theta0)
    # a stationary point of the penalised objective (central differences)
    step = 1e-5
    fd = np.array([(total(theta + step * e) - total(theta - step * e)) / (2 * step)
                   for e in np.eye(8)])
    fd0 = np.array([(total(theta0 + step * e) - total(theta0 - step * e)) / (2 * step)
                    for e in np.eye(8)])
    assert np.linalg.norm(fd) < 1e-3 * np.linalg.norm(fd0)
    if strength == 1.0:  # a strong pull leaves the log-alphas nearly equal
        assert np.std(theta) < 0.5 * np.std(theta0)


def _assert_same_result(a, b):
    assert_array_equal(a.theta.numpy(), b.theta.numpy())
    assert a.value == b.value
    assert a.n_iter == b.n_iter
    assert len(a.history) == len(b.history)
    for ra, rb in zip(a.history, b.history):
        assert set(ra) == set(rb)
        for key in ra:
            if key != "time":
                assert_array_equal(ra[key], rb[key], err_msg=key)


def test_verbose_prints_one_line_per_evaluation(make_data, capsys, ridge_ref):
    # Every evaluation, the grid's included, as it is made; verbose=2 adds the counts.
    problem = KFoldProblem(make_data, 0)
    ls = problem.log_scale(ridge_ref)
    grid = T(ls + np.linspace(-4, 4, 5))[:, None]
    for verbose in (0, 1, 2):
        result = problem.run([ls], start_grid=grid, verbose=verbose, max_iter=5)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == (len(result.history) if verbose else 0)
        assert all(line.startswith("[skbilevel]") for line in lines)
        for k, (line, rec) in enumerate(zip(lines, result.history), start=1):
            assert f"eval {k:3d} {rec['phase']:>8}" in line
            assert f"cv={rec['objective']:.6g}" in line
            assert f"theta={rec['theta'][0]:.4g}" in line  # the engine knows theta only
            assert ("krylov=" in line) == (verbose == 2)


def test_progress_hook_describes_and_numbers_across_calls(make_data, capsys, ridge_ref):
    # One Progress over two searches (stages of a fit): numbered as one, described in
    # the caller's units, the callback seeing every record in order.
    problem = KFoldProblem(make_data, 0)
    ls = problem.log_scale(ridge_ref)
    seen = []
    progress = Progress(1, describe=lambda t: f"lam={np.exp(t[0]):.4g}", prefix="[me]",
                        callback=lambda k, rec: seen.append((k, rec)))
    solver, method = _engine("closed_form")
    results = [minimize_hyperparams(problem.folds, T([ls]), solver=solver, method=method,
                                    optimizer=make_optimizer("lbfgs", max_iter=3),
                                    start_grid=T(ls + np.array([-2.0, 2.0]))[:, None],
                                    progress=progress) for _ in range(2)]
    history = results[0].history + results[1].history
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(history) == len(seen) == progress.count
    assert [k for k, _ in seen] == list(range(1, len(history) + 1))
    assert all(a is b for (_, a), b in zip(seen, history))
    times = [float(line.split("t=")[1].split("s")[0]) for line in lines]
    assert times == sorted(times)
    for line, rec in zip(lines, history):
        assert line.startswith("[me] eval") and f"lam={np.exp(rec['theta'][0]):.4g}" in line
