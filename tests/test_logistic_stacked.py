"""BilevelLogisticRegressionCV with its folds solved side by side (large dense L2 problems)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import StratifiedKFold

from skbilevel import BilevelLogisticRegressionCV
from skbilevel import _logistic_stacked


@pytest.fixture(params=[120, 510])
def problem(request):
    # 121 coefficients a fold: L-BFGS in the variable of a Hessian sketch, block by block;
    # 511: above sketch_max, the diagonal scaling.
    rng = np.random.default_rng(0)
    n, d = 900, request.param
    X = rng.standard_normal((n, d))
    coef = rng.standard_normal(d) * (rng.random(d) < 0.05)
    y = (X @ coef + rng.logistic(size=n) > 0).astype(int)
    sw = rng.uniform(0.5, 2.0, n)
    return X, y, sw, list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))


def _fit(X, y, sw, splits, stacked, monkeypatch):
    calls = []
    real = _logistic_stacked.SideBySideFolds

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_logistic_stacked, "STACK_MIN_ENTRIES", 0 if stacked else 10 ** 12)
    monkeypatch.setattr("skbilevel._logistic_cv.SideBySideFolds", spy)
    est = BilevelLogisticRegressionCV(cv=splits, inner_tol=1e-9).fit(X, y, sample_weight=sw)
    assert len(calls) == int(stacked)
    return est


def test_side_by_side_folds_give_the_per_fold_fit(problem, monkeypatch):
    X, y, sw, splits = problem
    ref = _fit(X, y, sw, splits, False, monkeypatch)
    est = _fit(X, y, sw, splits, True, monkeypatch)
    # The same search on the same CV curve: the same C to the search's resolution.
    np.testing.assert_allclose(est.C_, ref.C_, rtol=1e-3)
    np.testing.assert_allclose(est.best_cv_error_, ref.best_cv_error_, rtol=1e-6)
    assert est.scores_.shape[0] == 5 and est.coefs_paths_.shape[:2] == (5, 1)
    assert est.coefs_paths_.shape[3:] == ref.coefs_paths_.shape[3:]
    # Each fold's score at each evaluated C, and its path coefficients, are that fold's
    # LogisticRegression at that C (the grid's at the grid's looser tolerance).
    last = int(np.flatnonzero(est.history_["phase"] != "grid")[-1])
    C = float(est.Cs_[last])
    for k, (tr, va) in enumerate(splits):
        fold = LogisticRegression(C=C, tol=1e-12, max_iter=10000).fit(X[tr], y[tr], sw[tr])
        np.testing.assert_allclose(-est.scores_[k, 0, last],
                                   log_loss(y[va], fold.predict_proba(X[va]),
                                            sample_weight=sw[va]), rtol=1e-7)
        np.testing.assert_allclose(est.coefs_paths_[k, 0, last, 0, :-1], fold.coef_[0],
                                   rtol=1e-4, atol=1e-6)
    # best_score_: the folds' weighted accuracy at C_, as the per-fold path computes it.
    accuracies = [accuracy_score(y[va], LogisticRegression(C=est.C_, tol=1e-12,
                                                           max_iter=10000)
                                 .fit(X[tr], y[tr], sw[tr]).predict(X[va]),
                                 sample_weight=sw[va]) for tr, va in splits]
    np.testing.assert_allclose(est.best_score_, np.mean(accuracies), atol=2e-3)
    whole = LogisticRegression(C=est.C_, tol=1e-12, max_iter=10000).fit(X, y, sw)
    np.testing.assert_allclose(est.coef_, whole.coef_, rtol=1e-5, atol=1e-7)


def test_which_problems_go_side_by_side():
    import scipy.sparse as sp

    solver, layout = "lbfgs", object()  # a K-fold layout (contiguous_folds found one)
    X = np.zeros((4000, 600))  # 2.4e6 entries

    def applies(X=X, layout=layout, held=None, classes=2, solver=solver, **params):
        est = BilevelLogisticRegressionCV(**params)
        est.classes_ = np.arange(classes)
        return _logistic_stacked.stack_applies(est, X, solver, layout, held)

    assert applies()
    assert not applies(layout=None)  # folds that do not partition the rows
    assert not applies(held=np.arange(10))  # an early-stopping holdout
    assert not applies(classes=3)
    assert not applies(penalty="l1")
    assert not applies(C_per_feature=True)
    assert not applies(hypergradient="forward")
    assert not applies(solver="fista")
    assert not applies(X=sp.csr_matrix(X))
    assert not applies(X=np.zeros((3000, 600)))  # below STACK_MIN_ENTRIES


def test_screening_in_float32_and_a_search_of_its_own_tolerance(problem, monkeypatch):
    from skbilevel.engine.inner import LinearDesign

    X, y, sw, splits = problem
    seen = []
    real = LinearDesign._operands

    def spy(self, v):
        seen.append(self.in_low_precision)
        return real(self, v)

    monkeypatch.setattr(LinearDesign, "_operands", spy)
    monkeypatch.setattr(_logistic_stacked, "STACK_MIN_ENTRIES", 0)
    est = BilevelLogisticRegressionCV(cv=splits, verbose=0).fit(X, y, sample_weight=sw)
    assert any(seen) and not all(seen)  # the grid's solves and CG in float32, not all
    monkeypatch.setattr(_logistic_stacked, "STACK_MIN_ENTRIES", 10 ** 12)
    ref = BilevelLogisticRegressionCV(cv=splits, inner_tol=1e-9).fit(X, y, sample_weight=sw)
    # The search's solves to STACK_AUTO_TOL: the same C to the search's resolution.
    np.testing.assert_allclose(est.C_, ref.C_, rtol=1e-2)
    assert est.best_cv_error_ <= ref.best_cv_error_ * (1 + 1e-5)


@pytest.mark.parametrize("inner_tol", [_logistic_stacked.STACK_AUTO_TOL, None])
def test_search_solves_in_float32_then_float64(problem, inner_tol):
    import torch

    from skbilevel.engine.inner import L2
    from skbilevel.engine.solvers import LBFGS

    X, y, sw, splits = problem
    T = torch.as_tensor
    stack = _logistic_stacked.SideBySideFolds(T(X), T(y), T(sw), splits, L2(), True,
                                              inner_tol=inner_tol)
    tol = 1e-5
    exact = LBFGS(tol=tol, max_iter=500)
    solver = stack.search_solver(exact)
    if inner_tol is None or X.shape[1] + 1 <= exact.sketch_max:
        # A user's tolerance, or a sketched L-BFGS: float64 alone.
        assert solver is exact
        return
    problem_, theta = stack.fold.problem, torch.tensor([np.log(10.0)], dtype=torch.float64)
    design = stack.datafit.design
    precisions = []
    real = design.matvec

    def spy(v):
        precisions.append(design.in_low_precision)
        return real(v)

    design.matvec = spy
    solution = solver.solve(problem_, theta)
    stages = list(precisions)
    reference = exact.solve(problem_, theta)
    assert any(stages) and not all(stages)  # float32 first, then float64
    assert stages.index(False) > stages.count(False)  # mostly float32
    assert stages.count(False) <= 3  # a float64 check, or a short finish
    assert solution.converged and solution.residual <= tol  # measured in float64
    assert solution.n_func_eval > stages.count(False)  # both stages counted
    np.testing.assert_allclose(solution.w, reference.w, rtol=0, atol=1e-3 * float(
        reference.w.abs().max()))
    assert solver.tol == exact.tol  # what the caller reads is the float64 solver's
    # The float32 stage: the same tolerance, short line searches (it stops where rounding
    # stalls them); the float64 solver keeps its own.
    assert solver.solver.tol == exact.tol
    assert solver.solver.max_line_search == _logistic_stacked.LOW_PRECISION_LINE_SEARCH
    assert exact.max_line_search == 20
