"""HypergradientSearchCV on sparse inputs and sparse pipeline outputs (Ridge): the folds stay
CSR and give the dense route's search."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skbilevel import HypergradientSearchCV
from skbilevel import _ridge_folds
from skbilevel._search import _transform_fold
from skbilevel._search_adapters._base import as_tensor
from skbilevel._search_adapters._ridge import RidgeAdapter

CV = KFold(4, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def categorical():
    """Three categorical columns (30 levels in all) and a target additive in them."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, k, 240) for k in (5, 10, 15)])
    effects = [rng.normal(size=k) for k in (5, 10, 15)]
    y = sum(e[X[:, j]] for j, e in enumerate(effects)) + 0.8 * rng.normal(size=240)
    return X, y


def search(X, y, sparse_output, **kwargs):
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=sparse_output)
    return HypergradientSearchCV(make_pipeline(encoder, Ridge()),
                                 {"ridge__alpha": (1e-3, 1e3)}, cv=CV,
                                 scoring="neg_mean_squared_error", **kwargs).fit(X, y)


def alphas(search):
    return np.array([p["ridge__alpha"] for p in search.cv_results_["params"]])


def test_one_hot_folds_stay_sparse(categorical):
    X, y = categorical
    pipe = make_pipeline(OneHotEncoder(handle_unknown="ignore"))
    tr, va = next(CV.split(X))
    fold = _transform_fold(pipe, "ridge", X, y, {}, tr, va)
    assert sp.issparse(fold.X_train) and fold.X_train.format == "csr"
    assert fold.rows is None  # the encoder learns its categories on the training rows
    built = RidgeAdapter().folds(Ridge(), [fold], "mse")[0]
    assert built.problem.design.X.layout == torch.sparse_csr
    assert built.criterion.design.X.layout == torch.sparse_csr


def test_sparse_one_hot_search_equals_the_dense_route(categorical):
    X, y = categorical
    sparse, dense = search(X, y, True), search(X, y, False)
    np.testing.assert_allclose(alphas(sparse), alphas(dense), rtol=1e-10)
    assert sparse.best_params_["ridge__alpha"] == pytest.approx(
        dense.best_params_["ridge__alpha"], rel=1e-10)
    # The scores are scikit-learn's: its Ridge fits sparse X with an intercept by
    # sparse_cg (tol 1e-4), dense X exactly, hence agreement to 1e-4 only.
    assert sparse.best_score_ == pytest.approx(dense.best_score_, rel=1e-4)
    # Not a boundary answer: the CV optimum lies inside the box.
    assert 1e-2 < sparse.best_params_["ridge__alpha"] < 1e2


def test_sparse_input_takes_the_block_route(categorical):
    X, y = categorical
    X_hot = OneHotEncoder().fit_transform(X)  # fitted on everything: a fixed design
    found = [HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV).fit(Z, y)
             for Z in (X_hot, X_hot.toarray())]
    np.testing.assert_allclose(*(
        [p["alpha"] for p in s.cv_results_["params"]] for s in found), rtol=1e-10)
    tr, va = next(CV.split(X))
    assert _transform_fold(None, None, X_hot, y, {}, tr, va).rows is not None


def test_matrix_free_sparse_route_finds_the_same_alpha(categorical, monkeypatch):
    X, y = categorical
    polished = search(X, y, True)
    # The same search on both routes: the closed form's polish (cheap there) off.
    monkeypatch.setattr(RidgeAdapter, "polish_tol", lambda self, folds: None)
    closed = search(X, y, True)
    # Past MAX_DENSE_FEATURES the fits and adjoints are recycled MINRES on the CSR folds.
    monkeypatch.setattr(_ridge_folds, "MAX_DENSE_FEATURES", 5)
    krylov = search(X, y, True)
    assert "polish" not in {p["phase"] for p in krylov.path_}
    # Krylov residuals of 1e-8 (hypergradients to ~1e-7) on a flat CV curve: alpha to 0.1 %.
    assert krylov.best_params_["ridge__alpha"] == pytest.approx(
        closed.best_params_["ridge__alpha"], rel=1e-3)
    assert krylov.best_score_ == pytest.approx(closed.best_score_, rel=1e-8)
    assert polished.best_score_ >= closed.best_score_


def test_other_adapters_get_sparse_folds_densified(categorical):
    # Adapters whose problems take dense tensors read the folds through as_tensor, which
    # densifies a CSR matrix unless asked to keep it (the ridge adapter does).
    X_hot = OneHotEncoder().fit_transform(categorical[0])
    dense = as_tensor(X_hot)
    assert dense.layout == torch.strided
    np.testing.assert_array_equal(dense.numpy(), X_hot.toarray())
    kept = as_tensor(X_hot, sparse=True)
    assert kept.layout == torch.sparse_csr
    np.testing.assert_array_equal(kept.to_dense().numpy(), X_hot.toarray())
    X_hot.data[:] = 7.0  # copies: the engine never shares the caller's arrays
    assert float(kept.to_dense().max()) == float(dense.max()) == 1.0
