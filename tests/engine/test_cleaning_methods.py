"""The implicit and penalty hyper-cleaning methods: exact hypergradients against finite
differences, agreement with each other and with pgd-cqa on a convex instance, flipped
labels found, MINRES on the nonconvex MLP, and the history/reproducibility contract."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from skbilevel.engine.cleaning import (HISTORY_KEYS, METHODS, PGDCQA, ImplicitCleaning,
                                       PenaltyCleaning, make_cleaning_method)
from skbilevel.engine.inner import LinearModel, MLPModel, WeightedModuleProblem
from skbilevel.engine.linalg import CG, MINRES

# Outer iterations of the agreement runs (Adam step 0.2 on the logits for both). The
# penalty method's y and z lag behind x early on, so it gets twice the iterations (each is
# cheaper: no adjoint, no tight inner solve).
N_IMPLICIT, N_PENALTY, STEP = 80, 160, 0.2


def _instance(model="linear", n=150, n_val=40, d=5, K=3, flip=0.3, seed=0, reg=1e-2):
    """Gaussian blobs with a fraction ``flip`` of the training labels moved to another
    class, a clean trusted set, and the mask of flipped samples."""
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(K, d, generator=g, dtype=torch.float64)

    def draw(m):
        t = torch.randint(0, K, (m,), generator=g)
        return centers[t] + torch.randn(m, d, generator=g, dtype=torch.float64), t

    X, t = draw(n)
    X_val, t_val = draw(n_val)
    idx = torch.randperm(n, generator=g)[:int(flip * n)]
    noisy = t.clone()
    noisy[idx] = (t[idx] + torch.randint(1, K, (len(idx),), generator=g)) % K
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[idx] = True
    net = LinearModel(d, K) if model == "linear" else MLPModel(d, K, hidden=(16,))
    return WeightedModuleProblem(X, noisy, X_val, t_val, net, reg=reg), flipped


def _auroc(score, positive):
    """Probability that a positive outscores a negative (ties count half)."""
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


def _fit_value(problem, x, y0):
    """``f(y*(x))`` with the inner problem solved tightly."""
    y, norm, _ = _inner(problem, x, y0)
    assert norm < 1e-10
    return float(problem.outer_value(y))


def _inner(problem, x, y0):
    # The methods' own inner fit, reached through a run with no outer step.
    result = ImplicitCleaning(inner_tol=1e-12).run(problem, max_iter=0, x0=x, y0=y0)
    y = result.y
    return y, float(torch.linalg.vector_norm(problem.inner_grad(x, y))), 0


@pytest.fixture(scope="module")
def convex():
    return _instance()


@pytest.fixture(scope="module")
def runs(convex):
    problem, _ = convex
    implicit = ImplicitCleaning(step=STEP).run(problem, max_iter=N_IMPLICIT)
    penalty = PenaltyCleaning(step=STEP).run(problem, max_iter=N_PENALTY)
    return implicit, penalty


def test_implicit_hypergradient_matches_finite_differences(convex):
    problem, _ = convex
    x = 0.5 * torch.randn(problem.n, generator=torch.Generator().manual_seed(1),
                          dtype=torch.float64)
    y, norm, _ = _inner(problem, x, problem.model.init())
    grad, q, info = ImplicitCleaning().hypergradient(problem, x, y)
    assert info.converged and norm < 1e-10
    eps = 1e-4
    for i in (0, 5, 17, 42, 99):
        e = torch.zeros(problem.n, dtype=torch.float64)
        e[i] = eps
        fd = (_fit_value(problem, x + e, y) - _fit_value(problem, x - e, y)) / (2 * eps)
        # measured: relative error <= 1.6e-9 in these five coordinates
        assert abs(float(grad[i]) - fd) <= 1e-6 * abs(fd), (i, float(grad[i]), fd)
    # Per-sample entries, not one shared value (the authors' code's bug).
    assert float(grad.std() / grad.abs().mean()) > 0.5  # measured 1.33


def test_implicit_and_penalty_agree_on_convex_instance(convex, runs):
    problem, _ = convex
    implicit, penalty = runs
    f_imp = _fit_value(problem, implicit.x, implicit.y)
    f_pen = _fit_value(problem, penalty.x, penalty.y)
    start = implicit.history["outer_value"][0]
    print(f"f: start {start:.4f} implicit {f_imp:.4f} penalty {f_pen:.4f}")
    rho = spearmanr(implicit.x.numpy(), penalty.x.numpy()).statistic
    print(f"spearman {rho:.3f}")
    assert f_imp < 0.5 * start and f_pen < 0.5 * start
    assert abs(f_pen - f_imp) <= 0.1 * f_imp  # measured 0.0599 vs 0.0624 (4.2 %)
    assert rho > 0.6  # measured 0.714


def test_both_methods_downweight_flipped_labels(convex, runs):
    _, flipped = convex
    for result in runs:
        auc = _auroc(-result.x, flipped)
        print(f"auroc {auc:.4f}")
        assert auc > 0.95
        w = torch.sigmoid(result.x)
        assert float(w[flipped].mean()) < 0.5 * float(w[~flipped].mean())


def test_minres_path_on_the_mlp_decreases_f():
    problem, _ = _instance("mlp", seed=1)
    method = ImplicitCleaning(step=0.2, inner_tol=1e-6, inner_max_iter=300)
    assert isinstance(method._solver(problem), MINRES)  # "auto" on a nonconvex model
    result = method.run(problem, max_iter=6, generator=torch.Generator().manual_seed(0))
    f = result.history["outer_value"]
    print("mlp f", f)
    assert f[-1] < f[0]
    assert max(result.history["sqrt_h"]) <= 1e-6
    # The adjoint solve itself: MINRES reaches its tolerance on the (possibly indefinite)
    # Hessian of the fitted MLP.
    _, q, info = method.hypergradient(problem, result.x, result.y)
    assert info.converged
    residual = problem.hvp(result.x, result.y, q) - problem.outer_grad(result.y)
    assert float(residual.norm()) <= 1e-6 * float(problem.outer_grad(result.y).norm())


@pytest.mark.parametrize("name", ["implicit", "penalty"])
def test_history_and_reproducibility(name):
    problem, _ = _instance("mlp", n=60, n_val=20, seed=2)
    params = {"inner_tol": 1e-4, "inner_max_iter": 30} if name == "implicit" else {}
    method = make_cleaning_method(name, **params)
    assert isinstance(method, METHODS[name])
    runs = [method.run(problem, max_iter=3, generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    result = runs[0]
    assert set(result.history) == set(HISTORY_KEYS)
    assert all(len(v) == result.n_iter == 3 for v in result.history.values())
    assert result.kkt_residual == result.history["stationarity"][-1]
    lam = result.history["lambda"]
    assert all(math.isnan(v) for v in lam) if name == "implicit" else lam == [30.0] * 3
    assert torch.equal(runs[0].x, runs[1].x) and torch.equal(runs[0].y, runs[1].y)
    other = method.run(problem, max_iter=3, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(other.y, result.y)  # the generator draws the MLP's start


def test_cg_on_the_convex_model_and_bad_parameters(convex):
    problem, _ = convex
    assert isinstance(ImplicitCleaning()._solver(problem), CG)
    with pytest.raises(ValueError, match="linear_solver"):
        ImplicitCleaning(linear_solver="lu")
    with pytest.raises(ValueError, match="inner_solver"):
        PenaltyCleaning(inner_solver="adam")


# pgd-cqa's run for the agreement test: qp2 with the authors' constants (10, 10) in the
# default metric, K = 1000 steps. The estimator's defaults (1, 30) stop at sqrt(h) ~ 0.04
# on this instance, where y still overfits the trusted set (f 30 % off); (10, 10) enforces
# the constraint harder (sqrt(h) ~ 8e-3): it is the converged run that is compared.
CQA_RUN = dict(variant="qp2", c_alpha=10.0, c_eta=10.0)
N_CQA = 1000


def test_implicit_and_penalty_agree_with_pgd_cqa(convex, runs):
    """The issue's test: the double-loop (implicit), penalised (penalty) and single-loop
    constrained (pgd-cqa) methods reach the same solution of the convex instance."""
    problem, flipped = convex
    cqa = PGDCQA(**CQA_RUN).run(problem, max_iter=N_CQA)
    f_cqa = _fit_value(problem, cqa.x, cqa.y)
    w_cqa = torch.sigmoid(cqa.x)
    for result in runs:
        f_other = _fit_value(problem, result.x, result.y)
        rho = spearmanr(result.x.numpy(), cqa.x.numpy()).statistic
        gap = float((torch.sigmoid(result.x) - w_cqa).abs().mean())
        print(f"f {f_other:.4f} vs pgd-cqa {f_cqa:.4f}, spearman {rho:.3f}, mean |dw| "
              f"{gap:.3f}")
        # measured: f 0.0599 (implicit) / 0.0624 (penalty) vs 0.0655 (9.3 % / 5.0 %);
        # spearman 0.860 / 0.789; mean |dw| 0.163 / 0.166 (pgd-cqa's weights sit lower:
        # see PGDCQA's Notes). With lambda's sign flipped in cqa_direction: f 0.737,
        # spearman -0.345, mean |dw| 0.533.
        assert abs(f_cqa - f_other) <= 0.15 * f_other
        assert rho > 0.75
        assert gap < 0.25
    assert cqa.history["sqrt_h"][-1] < 0.02
    assert _auroc(-cqa.x, flipped) > 0.95
