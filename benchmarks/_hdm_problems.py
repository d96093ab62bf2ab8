"""Problems and opponents of ``bench_hdm.py``: the HDM paper's protocol, deterministic.

Protocol (Chu, Gao, Ye, Udell 2025, reference code ``exp_logistic.py`` / ``exp_svm.py``):
unregularised *sum* losses with a bias column appended, start ``x0 = N(0, I) / ||.||`` drawn
with seed 20250128, a budget of 1,000 gradient evaluations, success when
``||grad f||_inf <= 1e-4``, smoothness estimate ``L = sigma_max(X)^2`` (here by a
deterministic power iteration instead of ARPACK's randomised ``svds``).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.optimize import minimize
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.preprocessing import StandardScaler

from skbilevel.engine.inner import InnerProblem
from skbilevel.engine.linalg import power_iteration
from skbilevel.engine.solvers import HDMSolver

TOL, BUDGET, SEED = 1e-4, 1000, 20250128


class SumLoss(InnerProblem):
    """``c * sum_i loss(y_i x_i^T w) + l2 / 2 ||w[:-1]||^2`` for labels in {-1, +1}.

    ``kind`` is "logistic" or "svm" (squared hinge, ``1/2 max(0, 1 - m)^2``). The paper's
    protocol is ``c = 1, l2 = 0`` (sum loss, no regularisation); the regularised variants
    use ``c = 1 / n, l2 = 1 / n`` (scikit-learn's objective at C=1; the bias, last column,
    is not penalised).
    """

    def __init__(self, X, y, kind, scale=1.0, l2=0.0):
        self.X = torch.as_tensor(X, dtype=torch.float64)
        self.y = torch.as_tensor(y, dtype=torch.float64)
        self.kind, self.scale, self.l2 = kind, scale, l2
        v = torch.ones(self.X.shape[1], dtype=torch.float64)
        self.L = scale * power_iteration(lambda u: self.X.T @ (self.X @ u), v, n_iter=100) + l2
        self.size = self.X.shape[1]

    def value_and_grad(self, w, theta=None):
        m = self.y * (self.X @ w)
        if self.kind == "logistic":
            value = torch.nn.functional.softplus(-m).sum()
            dm = -torch.sigmoid(-m)
        else:
            slack = torch.clamp(1.0 - m, min=0.0)
            value = 0.5 * (slack ** 2).sum()
            dm = -slack
        grad = self.scale * (self.X.T @ (self.y * dm))
        value = self.scale * value
        if self.l2:
            coef = w[:-1]
            value = value + 0.5 * self.l2 * (coef ** 2).sum()
            grad = grad + self.l2 * torch.cat([coef, coef.new_zeros(1)])
        return value, grad

    def objective(self, w, theta=None):
        return self.value_and_grad(w)[0]

    def grad(self, w, theta=None):
        return self.value_and_grad(w)[1]

    def lipschitz(self, theta=None):
        return self.L

    def numpy_fun(self, trace):
        """``x -> (f, g)`` on numpy arrays, appending ``(f, ||g||_inf)`` to ``trace``."""
        def fun(x):
            f, g = self.value_and_grad(torch.as_tensor(x))
            trace.append((float(f), float(g.abs().max())))
            return float(f), g.numpy().copy()
        return fun


class Multinomial(SumLoss):
    """scikit-learn's multinomial objective at C=1 on a flat variable (the engine's
    ``ProximalProblem.multinomial`` with an L2 penalty, as ``HDMLogisticRegression``
    builds it), for the digits set."""

    def __init__(self, X, y):
        from skbilevel.engine.inner import L2, ProximalProblem
        classes = np.unique(y)
        T = torch.as_tensor(X, dtype=torch.float64)
        self.problem = ProximalProblem.multinomial(
            T, torch.as_tensor(np.searchsorted(classes, y)), len(classes), L2())
        self.theta = torch.tensor([np.log(1.0 / len(y))], dtype=torch.float64)
        self.shape = self.problem.init_params().shape
        # HDMLogisticRegression's estimate (its _hdm_smoothness)
        self.L = self.problem.datafit.gram_norm() + float(torch.exp(self.theta[0]))
        self.size = int(np.prod(self.shape))

    def value_and_grad(self, w, theta=None):
        f, g = self.problem.value_and_grad(w.reshape(self.shape), self.theta)
        return f, g.reshape(-1)


def a1a_like(seed=1):
    """A one-hot design shaped like LIBSVM a1a: n=1605, 14 categorical variables, d=119.

    a1a is the Adult census data one-hot encoded: 14 attributes, 123 binary columns, exactly
    14 ones per row (~11% density). The one-hot blocks each sum to the bias column, so the
    unregularised problem has flat directions and is ill-conditioned, which is what makes
    it hard for first-order and limited-memory methods. Here: 14 variables with at least 3
    skewed (Dirichlet) categories each, labels from a noisy additive rule.
    """
    rng = np.random.default_rng(seed)
    n = 1605
    sizes = 3 + rng.multinomial(119 - 3 * 14, rng.dirichlet(np.ones(14)))  # 119 columns
    blocks, effect = [], np.zeros(n)
    for k in sizes:
        p = rng.dirichlet(np.full(k, 0.7))
        cat = rng.choice(k, n, p=p)
        blocks.append(np.eye(k)[cat])
        effect += rng.normal(0.0, 1.0, k)[cat]
    X = np.hstack(blocks)
    y = np.where(effect - np.median(effect) + 1.0 * rng.standard_normal(n) > 0, 1.0, -1.0)
    return X, y


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), np.where(y == 1, 1.0, -1.0)


def ill_conditioned(seed=2):
    """Dense Gaussian n=2000, d=100 with column scales spanning 1e4; noisy linear labels."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2000, 100)) * np.logspace(-2, 2, 100)
    y = np.where(X @ (rng.standard_normal(100) / np.logspace(-2, 2, 100))
                 + 0.5 * rng.standard_normal(2000) > 0, 1.0, -1.0)
    return X, y


def _with_bias(X):
    return np.column_stack([X, np.ones(len(X))])


def protocol_problems(quick=False):
    """``{name: problem}``: the paper's unregularised sum losses, then regularised variants.

    Regularised: scikit-learn's objective at C=1 (mean loss + ||w||^2 / (2 n)) for logistic
    regression and the squared-hinge SVM on every set, digits as a multinomial problem and
    a dense n=100,000, d=500 logistic problem (n=20,000 with ``quick``).
    """
    data = {"a1a-like": a1a_like(), "breast-cancer": breast_cancer(),
            "ill-conditioned": ill_conditioned()}
    if quick:
        data.pop("ill-conditioned")
    out = {}
    for loss in ("svm", "logistic"):
        for name, (X, y) in data.items():
            out[f"{loss} {name} (unregularised)"] = SumLoss(_with_bias(X), y, loss)
    for loss in ("svm", "logistic"):
        for name, (X, y) in data.items():
            n = len(y)
            out[f"{loss} {name} (C=1)"] = SumLoss(_with_bias(X), y, loss, 1.0 / n, 1.0 / n)
    X, y = load_digits(return_X_y=True)
    out["multinomial digits (C=1)"] = Multinomial(StandardScaler().fit_transform(X), y)
    rng = np.random.default_rng(0)
    n_big = 20000 if quick else 100000
    X = rng.standard_normal((n_big, 500))
    y = np.where(rng.random(n_big) < 1 / (1 + np.exp(-X @ rng.standard_normal(500) / 10)),
                 1.0, -1.0)
    out[f"logistic dense n={n_big} d=500 (C=1)"] = SumLoss(_with_bias(X), y, "logistic",
                                                           1.0 / n_big, 1.0 / n_big)
    return out


def start_point(d):
    x = np.random.RandomState(SEED).standard_normal(d)
    return x / np.linalg.norm(x)


def first_success(trace, f_star):
    """Evaluations to ``||g||_inf <= TOL`` and to relative gap 1e-8 (None if never)."""
    to_tol = next((i + 1 for i, (_, g) in enumerate(trace) if g <= TOL), None)
    scale = max(abs(f_star), 1.0)
    to_gap = next((i + 1 for i, (f, _) in enumerate(trace) if f - f_star <= 1e-8 * scale),
                  None)
    return to_tol, to_gap


def reference_optimum(problem, x0):
    """A long, tight L-BFGS run: the ``f*`` of the relative gap."""
    res = minimize(problem.numpy_fun([]), x0, jac=True, method="L-BFGS-B",
                   options=dict(maxcor=20, gtol=1e-10, ftol=1e-30, maxiter=20000,
                                maxfun=40000))
    return float(res.fun)


def run_lbfgs(problem, x0, memory):
    trace = []
    start = time.perf_counter()
    minimize(problem.numpy_fun(trace), x0, jac=True, method="L-BFGS-B",
             options=dict(maxcor=memory, ftol=1e-25, gtol=TOL, maxiter=BUDGET,
                          maxfun=BUDGET))
    return trace[:BUDGET], time.perf_counter() - start, 2 * memory * len(x0)


def run_hdm(problem, x0, variant="hdm-best", lr="auto", beta_lr="auto", smoothness=None):
    """HDM from ``x0``; ``smoothness`` None is the paper's ``L = sigma_max(X)^2``, "sample"
    the three sampled finite differences (their evaluations open the trace)."""
    solver = HDMSolver(variant=variant, lr=lr, beta_lr=beta_lr, tol=TOL, max_iter=BUDGET,
                       smoothness=problem.L if smoothness is None else smoothness,
                       record_history=True)
    start = time.perf_counter()
    sol = solver.solve(problem, None, w0=torch.as_tensor(x0))
    seconds = time.perf_counter() - start
    trace = [(r["objective"], r["grad_inf_norm"]) for r in sol.history]
    # Evaluations the records do not show (samples, lookahead gradients) count first.
    trace = [trace[0]] * (sol.n_grad_eval - len(trace)) + trace
    state = sol.solver_state
    memory = sum(t.numel() for t in state.hdm.tensors()) + state.g.numel()
    return trace, seconds, memory


def run_torch(problem, x0, make_opt, n_state_vectors):
    """Full-batch torch optimizer for ``BUDGET`` evaluations (state: that many vectors)."""
    w = torch.tensor(x0, requires_grad=True)
    opt = make_opt([w])
    trace = []
    start = time.perf_counter()
    for _ in range(BUDGET):
        f, g = problem.value_and_grad(w.detach())
        trace.append((float(f), float(g.abs().max())))
        if trace[-1][1] <= TOL:
            break
        w.grad = g.clone()
        opt.step()
    return trace, time.perf_counter() - start, n_state_vectors * len(x0)
