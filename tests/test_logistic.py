"""HDMLogisticRegression: scikit-learn's L2 logistic regression, fitted by HDM."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import HDMLogisticRegression
from skbilevel.engine.inner import L2, ProximalProblem
from skbilevel.engine.solvers import HDMSolver


def _standardised(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("loader", [load_breast_cancer, load_digits], ids=["binary", "multi"])
def test_matches_sklearn_lbfgs_at_convergence(loader):
    X, y = _standardised(loader)
    ref = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(X, y)
    clf = HDMLogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(X, y)
    assert clf.history_["grad_inf_norm"][-1] <= 1e-8
    assert _rel(clf.coef_, ref.coef_) < 1e-4
    assert _rel(clf.intercept_, ref.intercept_) < 1e-4
    assert clf.coef_.shape == ref.coef_.shape and clf.intercept_.shape == ref.intercept_.shape
    assert_allclose(clf.predict_proba(X), ref.predict_proba(X), atol=1e-5)
    assert np.array_equal(clf.classes_, ref.classes_)


@pytest.mark.parametrize("C", [0.01, 100.0])
def test_objective_scaling_follows_C(C, global_random_seed):
    X, y = make_classification(200, 8, random_state=global_random_seed)
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=10000).fit(X, y)
    clf = HDMLogisticRegression(C=C, tol=1e-9, max_iter=20000).fit(X, y)
    assert _rel(clf.coef_, ref.coef_) < 1e-4


def test_weights_class_weight_and_sparse_input(global_random_seed):
    X, y = make_classification(150, 6, n_classes=3, n_informative=4,
                               random_state=global_random_seed)
    rng = np.random.default_rng(global_random_seed)
    sw = rng.uniform(0.5, 2.0, len(y))
    params = dict(tol=1e-7, max_iter=20000)
    weighted = HDMLogisticRegression(**params).fit(X, y, sample_weight=sw)
    ref = LogisticRegression(tol=1e-10, max_iter=10000).fit(X, y, sample_weight=sw)
    assert _rel(weighted.coef_, ref.coef_) < 1e-4
    # class_weight is a per-class sample weight
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    by_class = HDMLogisticRegression(class_weight=cw, **params).fit(X, y)
    by_sample = HDMLogisticRegression(**params).fit(X, y, sample_weight=np.vectorize(cw.get)(y))
    assert _rel(by_class.coef_, by_sample.coef_) < 1e-4
    # CSR input gives the dense result
    sparse = HDMLogisticRegression(**params).fit(sp.csr_matrix(X), y, sample_weight=sw)
    assert _rel(sparse.coef_, weighted.coef_) < 1e-4
    assert_allclose(sparse.predict_proba(sp.csr_matrix(X)), weighted.predict_proba(X),
                    atol=1e-5)


def test_probabilities_and_scores_are_consistent():
    X, y = _standardised(load_digits)
    clf = HDMLogisticRegression().fit(X, y)
    proba = clf.predict_proba(X)
    assert_allclose(proba.sum(1), 1.0)
    assert_allclose(clf.predict_log_proba(X), np.log(proba), atol=1e-10)
    assert np.array_equal(clf.predict(X), clf.classes_[proba.argmax(1)])
    Xb, yb = _standardised(load_breast_cancer)
    binary = HDMLogisticRegression().fit(Xb, yb)
    scores = binary.decision_function(Xb)
    assert scores.shape == (len(yb),)
    assert_allclose(binary.predict_proba(Xb)[:, 1], 1 / (1 + np.exp(-scores)))
    assert binary.score(Xb, yb) > 0.97


def test_history_and_counts():
    X, y = _standardised(load_breast_cancer)
    clf = HDMLogisticRegression(tol=1e-6).fit(X, y)
    h = clf.history_
    assert set(h) == {"objective", "grad_inf_norm", "P_mean", "P_min", "P_max", "beta",
                      "accepted"}
    # One record per evaluated point; three more gradients sample the smoothness.
    assert len(h["objective"]) == clf.n_grad_evals_ - 3 <= clf.n_func_evals_ - 3
    # Start + samples; the first trial point (P = 0) is the start: no evaluation, no record.
    assert clf.n_iter_.shape == (1,) and clf.n_iter_[0] == clf.n_grad_evals_ - 3
    accepted_f = h["objective"][h["accepted"] | (np.arange(len(h["accepted"])) == 0)]
    assert np.all(np.diff(accepted_f) <= 1e-12 * abs(accepted_f[0]))  # null steps
    assert h["grad_inf_norm"][-1] <= 1e-6 < h["grad_inf_norm"][0]


def test_convergence_warning_and_usable_model():
    X, y = _standardised(load_digits)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        clf = HDMLogisticRegression(max_iter=10).fit(X, y)
    assert clf.n_grad_evals_ == 10 and np.isfinite(clf.coef_).all()
    assert clf.score(X, y) > 0.5


def test_warm_start_needs_fewer_evaluations():
    X, y = _standardised(load_breast_cancer)
    clf = HDMLogisticRegression(tol=1e-7, warm_start=True).fit(X, y)
    first = clf.n_grad_evals_
    clf.fit(X, y)
    assert clf.n_grad_evals_ < first / 5


def test_in_sklearn_tools():
    X, y = make_classification(120, 5, random_state=0)
    pipe = make_pipeline(StandardScaler(), HDMLogisticRegression())
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    search = GridSearchCV(HDMLogisticRegression(), {"C": [0.01, 1.0]}, cv=3).fit(X, y)
    assert search.best_params_["C"] in (0.01, 1.0)
    clf = HDMLogisticRegression().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert_allclose(again.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("params, match", [
    (dict(C=0.0), "C"), (dict(C=-1.0), "C"), (dict(variant="adam"), "variant"),
    (dict(max_iter=0), "max_iter"), (dict(lr=-1.0), "lr"), (dict(dtype="float16"), "dtype"),
])
def test_bad_parameters(params, match):
    X, y = make_classification(30, 5, random_state=0)
    with pytest.raises(ValueError, match=match):
        HDMLogisticRegression(**params).fit(X, y)


def test_bad_data():
    X, y = make_classification(30, 5, random_state=0)
    with pytest.raises(ValueError, match="class"):
        HDMLogisticRegression().fit(X, np.zeros(30))
    with pytest.raises(ValueError, match="class"):
        HDMLogisticRegression().fit(X, y, sample_weight=(y == 1).astype(float))
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HDMLogisticRegression().fit(X_nan, y)
    with pytest.raises(ValueError, match="continuous|Unknown label"):
        HDMLogisticRegression().fit(X, np.linspace(0, 1, 30))


def test_float32_and_verbose(capsys):
    X, y = _standardised(load_breast_cancer)
    clf = HDMLogisticRegression(dtype="float32", tol=1e-3, verbose=1).fit(X, y)
    assert "HDMLogisticRegression" in capsys.readouterr().out
    ref = HDMLogisticRegression(tol=1e-3).fit(X, y)
    assert_allclose(clf.coef_, ref.coef_, rtol=0.05, atol=0.02 * np.abs(ref.coef_).max())


def test_state_is_a_few_vectors_of_the_coefficients_size():
    """The optimizer's memory is O(n_features): a handful of coefficient-sized vectors."""
    X, y = _standardised(load_digits)
    T = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    problem = ProximalProblem.multinomial(T(X), torch.as_tensor(y), 10, L2())
    sol = HDMSolver(tol=1e-4).solve(problem, torch.tensor([np.log(1 / len(y))],
                                                          dtype=torch.float64))
    n_params = sol.w.numel()
    state = sol.solver_state
    numel = sum(t.numel() for t in state.hdm.tensors()) + state.f.numel() + state.g.numel()
    assert numel <= 5 * n_params + 10  # P, G, x_prev, g (+ scalars): L-BFGS-10 keeps 20


def test_smoothness_estimate_is_deterministic_and_tight():
    X, y = _standardised(load_breast_cancer)
    T = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    datafit = ProximalProblem.logistic(T(X), T(y), L2()).datafit
    Xb = np.column_stack([X, np.ones(len(y))])
    exact = np.linalg.norm(Xb, 2) ** 2 / len(y)
    est = datafit.gram_norm()  # what HDM's learning rate is set from
    assert est == ProximalProblem.logistic(T(X), T(y), L2()).datafit.gram_norm()
    assert 0.9 * exact <= est <= exact * (1 + 1e-12)  # power iteration: from below
    assert datafit.lipschitz() <= exact / 4 * (1 + 1e-12)  # the sigmoid's bound


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    X, y = _standardised(load_breast_cancer)
    cpu = HDMLogisticRegression(tol=1e-6).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gpu = HDMLogisticRegression(tol=1e-6, device="cuda").fit(X, y)
    assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6, atol=1e-8)
