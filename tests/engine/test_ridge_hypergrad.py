"""Hypergradients of the ridge validation error against independent oracles.

Oracles: central finite differences of a numpy re-implementation of the validation error,
the closed form of the derivative for one shared ``alpha`` (eigendecomposition of the Gram),
agreement between every solver path, scikit-learn's ``Ridge`` for the inner solution and
the autograd defaults of :class:`InnerProblem` for the hand-written Hessian products.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose
from scipy.optimize import minimize_scalar
from sklearn.linear_model import Ridge

from skbilevel.engine.hypergrad import ImplicitDifferentiation
from skbilevel.engine.inner import InnerProblem, RidgeProblem
from skbilevel.engine.linalg import make_linear_solver
from skbilevel.engine.outer import HeldOutMSE
from skbilevel.engine.solvers import ClosedFormSolver, ConjugateGradientSolver
from skbilevel.utils._tensor import to_numpy, to_tensor

CPU = torch.device("cpu")
F64 = torch.float64
N_FEATURES = 8


def T(a):
    return to_tensor(a, F64, CPU)


def _paths():
    """Every (inner solver, hypergradient method) pair, exact ones first."""
    paths = {"closed_form": (ClosedFormSolver(), ImplicitDifferentiation(None))}
    for name in ("cg", "minres", "recycled_minres"):
        paths[f"cg+{name}"] = (ConjugateGradientSolver(rtol=1e-12),
                               ImplicitDifferentiation(make_linear_solver(name, rtol=1e-12)))
    paths["cg+dense"] = (ConjugateGradientSolver(rtol=1e-12),
                         ImplicitDifferentiation(make_linear_solver("dense")))
    return paths


PATHS = _paths()


def _groups(kind, d, rng):
    """Feature -> hyperparameter map: None (one alpha), one per feature, or 3 groups."""
    if kind == "scalar":
        return None
    if kind == "per_feature":
        return np.arange(d)
    return rng.permutation(np.arange(d) % 3)


class Split:
    """One train / validation split of a random problem, as numpy and as engine objects."""

    def __init__(self, make_data, seed, *, kind="scalar", sparse=False, fit_intercept=True,
                 sample_weight=False, n_targets=1, n_samples=60):
        rng = np.random.default_rng(seed + 1000)
        self.X, self.y, self.sw = make_data(
            seed, n_samples=n_samples, n_features=N_FEATURES, n_targets=n_targets,
            sparse=sparse, sample_weight=sample_weight)
        perm = rng.permutation(n_samples)
        self.train, self.val = perm[: 2 * n_samples // 3], perm[2 * n_samples // 3:]
        self.fit_intercept = fit_intercept
        self.groups = _groups(kind, N_FEATURES, rng)
        self.n_hyper = 1 if self.groups is None else int(self.groups.max()) + 1
        Y = self.y.reshape(n_samples, -1)
        sw_tr = None if self.sw is None else T(self.sw[self.train])
        sw_va = None if self.sw is None else T(self.sw[self.val])
        groups = None if self.groups is None else torch.as_tensor(self.groups)
        self.problem = RidgeProblem(T(self.X[self.train]), T(Y[self.train]), sw_tr,
                                    groups=groups, fit_intercept=fit_intercept)
        self.criterion = HeldOutMSE.for_problem(self.problem, T(self.X[self.val]),
                                                T(Y[self.val]), sw_va)
        scale = np.log(_scale(self))
        # Penalties spread around the data's natural scale, where the gradient is not tiny.
        self.theta = scale + rng.uniform(-1.5, 1.5, self.n_hyper)

    def alpha(self, theta):
        theta = np.asarray(theta, dtype=np.float64)
        return np.exp(theta)[self.groups] if self.groups is not None else np.exp(theta[0])

    def ref_value(self, ridge_ref, theta):
        return ridge_ref.split_value(self.X, self.y, self.sw, self.alpha(theta), self.train,
                                     self.val, self.fit_intercept)

    def ref_grad_fd(self, ridge_ref, theta, step=1e-5):
        """Central finite differences of the numpy validation error in ``theta``."""
        grad = np.empty(self.n_hyper)
        for j in range(self.n_hyper):
            e = np.zeros(self.n_hyper)
            e[j] = step
            grad[j] = (self.ref_value(ridge_ref, theta + e)
                       - self.ref_value(ridge_ref, theta - e)) / (2 * step)
        return grad

    def engine(self, path, theta, warm_start=None):
        solver, method = PATHS[path]
        return method.compute(self.problem, self.criterion, torch.as_tensor(theta, dtype=F64),
                              solver=solver, warm_start=warm_start)


def _scale(split):
    sw = None if split.sw is None else split.sw[split.train]
    X = split.X[split.train]
    X = X.toarray() if sp.issparse(X) else X
    s = np.ones(X.shape[0]) if sw is None else sw
    Xc = X - s @ X / s.sum() if split.fit_intercept else X
    return float(np.mean(s @ Xc ** 2))


def _rel_err(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


CONFIGS = [
    pytest.param(dict(kind=kind, sparse=sparse, fit_intercept=fi, sample_weight=swt,
                      n_targets=k),
                 id=f"{kind}-{'sparse' if sparse else 'dense'}-{'icpt' if fi else 'noicpt'}"
                    f"-{'sw' if swt else 'nosw'}-k{k}")
    for kind in ("scalar", "per_feature", "grouped")
    for sparse in (False, True)
    for fi in (True, False)
    for swt in (False, True)
    for k in (1, 2)
]


@pytest.mark.parametrize("config", CONFIGS)
def test_hypergradient_matches_finite_differences(config, make_data, global_random_seed,
                                                  ridge_ref, request):
    split = Split(make_data, global_random_seed, **config)
    fd = split.ref_grad_fd(ridge_ref, split.theta)
    assert np.linalg.norm(fd) > 1e-8 * split.ref_value(ridge_ref, split.theta)  # not trivial
    for path in PATHS:
        res = split.engine(path, split.theta)
        assert res.grad.shape == (split.n_hyper,)
        assert res.inner_converged
        assert_allclose(res.value, split.ref_value(ridge_ref, split.theta), rtol=1e-10)
        assert _rel_err(to_numpy(res.grad), fd) < 1e-5, path


def _closed_form_scalar(split, alpha):
    """``dF/dlog(alpha)`` for one shared alpha, from the eigendecomposition of the Gram."""
    X = split.X.toarray() if sp.issparse(split.X) else split.X
    Y = split.y.reshape(X.shape[0], -1)
    s = np.ones(X.shape[0]) if split.sw is None else split.sw
    tr, va = split.train, split.val
    s_tr, s_va = s[tr], s[va]
    if split.fit_intercept:
        xm, ym = s_tr @ X[tr] / s_tr.sum(), s_tr @ Y[tr] / s_tr.sum()
    else:
        xm, ym = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
    Xc, Yc = X[tr] - xm, Y[tr] - ym
    lam, Q = np.linalg.eigh(Xc.T @ (s_tr[:, None] * Xc))
    c = Xc.T @ (s_tr[:, None] * Yc)
    w = Q @ ((Q.T @ c) / (lam + alpha)[:, None])
    dw = -Q @ ((Q.T @ c) / ((lam + alpha) ** 2)[:, None])
    Xv, Yv = X[va] - xm, Y[va] - ym
    r = Yv - Xv @ w
    scale = 1.0 / (s_va.sum() * Y.shape[1])
    grad_w = -2.0 * scale * Xv.T @ (s_va[:, None] * r)
    value = scale * float((s_va[:, None] * r ** 2).sum())
    return value, alpha * float((grad_w * dw).sum())


SCALAR_CONFIGS = [c for c in CONFIGS if c.values[0]["kind"] == "scalar"]


@pytest.mark.parametrize("config", SCALAR_CONFIGS)
def test_scalar_hypergradient_matches_closed_form(config, make_data, global_random_seed,
                                                  request):
    split = Split(make_data, global_random_seed, **config)
    for shift in (-3.0, 0.0, 3.0):  # small, natural and large penalties
        theta = split.theta + shift
        value, grad = _closed_form_scalar(split, float(np.exp(theta[0])))
        for path in PATHS:
            res = split.engine(path, theta)
            assert_allclose(res.value, value, rtol=1e-10)
            assert_allclose(float(res.grad[0]), grad, rtol=1e-8, err_msg=path)


@pytest.mark.parametrize("config", CONFIGS)
def test_all_paths_agree(config, make_data, global_random_seed, request):
    split = Split(make_data, global_random_seed, **config)
    ref = split.engine("closed_form", split.theta)
    for path in PATHS:
        res = split.engine(path, split.theta)
        assert _rel_err(to_numpy(res.grad), to_numpy(ref.grad)) < 1e-8, path
        assert _rel_err(to_numpy(res.w), to_numpy(ref.w)) < 1e-9, path


@pytest.mark.parametrize("path", list(PATHS))
def test_warm_started_sequence_agrees_with_cold_solves(path, make_data, global_random_seed):
    """Warm starts and recycle spaces handed along a path of theta change nothing."""
    split = Split(make_data, global_random_seed, kind="per_feature", sparse=True,
                  sample_weight=True)
    warm = None
    rng = np.random.default_rng(global_random_seed)
    for step in range(4):
        theta = split.theta + 0.3 * step * rng.standard_normal(split.n_hyper)
        res = split.engine(path, theta, warm_start=warm)
        cold = split.engine("closed_form", theta)
        assert _rel_err(to_numpy(res.grad), to_numpy(cold.grad)) < 1e-8
        warm = res.warm_start
        assert warm.w is res.w


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("sample_weight", [False, True], ids=["nosw", "sw"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["icpt", "noicpt"])
@pytest.mark.parametrize("n_targets", [1, 2])
def test_inner_solution_matches_sklearn_ridge(sparse, sample_weight, fit_intercept, n_targets,
                                              make_data, global_random_seed, request):
    split = Split(make_data, global_random_seed, sparse=sparse, sample_weight=sample_weight,
                  fit_intercept=fit_intercept, n_targets=n_targets)
    alpha = float(np.exp(split.theta[0]))
    X = split.X[split.train]
    X = X.toarray() if sp.issparse(X) else X
    sw = None if split.sw is None else split.sw[split.train]
    ridge = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="cholesky")
    ridge.fit(X, split.y[split.train], sample_weight=sw)
    coef_ref = ridge.coef_.reshape(n_targets, -1).T
    for path in ("closed_form", "cg+cg"):
        solver = PATHS[path][0]
        sol = solver.solve(split.problem, torch.as_tensor(split.theta, dtype=F64))
        assert sol.converged
        assert_allclose(to_numpy(sol.w), coef_ref, rtol=1e-8, atol=1e-10 * np.abs(
            coef_ref).max())
        intercept = to_numpy(split.problem.intercept(sol.w))
        assert_allclose(intercept, np.broadcast_to(ridge.intercept_, (n_targets,)), rtol=1e-8,
                        atol=1e-10)
        # the optimality residual the solvers stop on is small at the solution
        residual = split.problem.grad(sol.w, torch.as_tensor(split.theta))
        assert float(torch.linalg.vector_norm(residual)) <= 1e-9 * float(split.problem.xty.norm())


@pytest.mark.parametrize("kind", ["scalar", "per_feature", "grouped"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("sample_weight", [False, True], ids=["nosw", "sw"])
def test_closed_form_products_match_autograd(kind, sparse, sample_weight, make_data,
                                             global_random_seed, request):
    split = Split(make_data, global_random_seed, kind=kind, sparse=sparse,
                  sample_weight=sample_weight, n_targets=2)
    gen = torch.Generator().manual_seed(global_random_seed)
    shape = split.problem.init_params().shape
    w = torch.randn(shape, generator=gen, dtype=F64)
    v = torch.randn(shape, generator=gen, dtype=F64)
    theta = torch.as_tensor(split.theta, dtype=F64)
    cross = split.problem.cross_vjp(w, theta, v)
    cross_auto = InnerProblem.cross_vjp(split.problem, w, theta, v)
    assert cross.shape == theta.shape
    assert_allclose(to_numpy(cross), to_numpy(cross_auto), rtol=1e-10,
                    atol=1e-12 * float(cross_auto.abs().max()))
    hv = split.problem.hvp(w, theta, v)
    hv_auto = InnerProblem.hvp(split.problem, w, theta, v)
    assert_allclose(to_numpy(hv), to_numpy(hv_auto), rtol=1e-10,
                    atol=1e-12 * float(hv_auto.abs().max()))
    # and both equal the dense Hessian (X_c^T S X_c + diag(alpha)) applied to v
    X = split.X[split.train]
    X = X.toarray() if sp.issparse(X) else X
    s = np.ones(X.shape[0]) if split.sw is None else split.sw[split.train]
    Xc = X - s @ X / s.sum()
    alpha = np.broadcast_to(split.alpha(split.theta), (X.shape[1],))
    H = Xc.T @ (s[:, None] * Xc) + np.diag(alpha)
    assert_allclose(to_numpy(hv), H @ to_numpy(v), rtol=1e-10, atol=1e-10 * np.abs(H).max())


@pytest.mark.parametrize("path", ["closed_form", "cg+recycled_minres"])
@pytest.mark.parametrize("sample_weight", [False, True], ids=["nosw", "sw"])
def test_hypergradient_vanishes_at_cv_optimum(path, sample_weight, make_data, global_random_seed,
                                              ridge_ref):
    """At the alpha minimising the 3-fold CV error (found from values only) the engine's
    fold-averaged hypergradient is zero, relative to its size one e-fold away."""
    n = 90
    X, y, sw = make_data(global_random_seed, n_samples=n, n_features=N_FEATURES,
                                    noise=1.5, sample_weight=sample_weight)
    folds = np.array_split(np.random.default_rng(global_random_seed).permutation(n), 3)
    splits = [(np.concatenate([f for j, f in enumerate(folds) if j != i]), folds[i])
              for i in range(3)]
    log_scale = np.log(ridge_ref.gram_scale(X, sw))
    lo, hi = log_scale - 12, log_scale + 8

    def cv(t):
        return ridge_ref.cv_value(X, y, sw, np.exp(t), splits)

    opt = minimize_scalar(cv, bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10, "maxiter": 500})
    assert lo + 1 < opt.x < hi - 1, "the test problem must have an interior CV optimum"

    solver, method = PATHS[path]
    problems = []
    for tr, va in splits:
        s_tr = None if sw is None else T(sw[tr])
        s_va = None if sw is None else T(sw[va])
        p = RidgeProblem(T(X[tr]), T(y[tr, None]), s_tr)
        problems.append((p, HeldOutMSE.for_problem(p, T(X[va]), T(y[va, None]), s_va)))

    def grad(t):
        theta = torch.tensor([t], dtype=F64)
        return float(np.mean([float(method.compute(p, c, theta, solver=solver).grad[0])
                              for p, c in problems]))

    away = max(abs(grad(opt.x - 1.0)), abs(grad(opt.x + 1.0)))
    assert away > 0
    assert abs(grad(opt.x)) < 1e-4 * away
    # and the sign pattern of a minimum: descending before, ascending after
    assert grad(opt.x - 1.0) < 0 < grad(opt.x + 1.0)
