"""BilevelRidgeCV at the estimator level, against scikit-learn's own ridge tools."""

import pickle
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import BilevelRidgeCV

LINEAR_SOLVERS = ["auto", "cholesky", "cg", "minres", "recycled_minres"]
MATRIX_FREE = ["cg", "minres", "recycled_minres"]


def _data(make_data, seed, **kw):
    params = dict(n_samples=80, n_features=10, noise=1.0)
    params.update(kw)
    return make_data(seed, **params)


def _sparse_features(seed, n_relevant=4, n_features=20, n_samples=80):
    """Independent features, the first ``n_relevant`` with large coefficients, the rest zero."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    coef = np.zeros(n_features)
    coef[:n_relevant] = 3.0 * rng.choice([-1.0, 1.0], n_relevant)
    y = X @ coef + 3.0 * rng.standard_normal(n_samples)
    return X, y


# -- the refit model is scikit-learn's Ridge at alpha_ ---------------------------------------
RIDGE_CASES = {
    "dense": dict(),
    "sparse_csr": dict(sparse=True),
    "sample_weight": dict(sample_weight=True),
    "sparse_sample_weight": dict(sparse=True, sample_weight=True),
    "multi_output": dict(n_targets=2),
    "no_intercept": dict(fit_intercept=False),
    "sparse_no_intercept": dict(sparse=True, fit_intercept=False),
}


@pytest.mark.parametrize("case", list(RIDGE_CASES))
def test_coef_matches_sklearn_ridge_at_alpha(case, make_data, global_random_seed):
    params = dict(RIDGE_CASES[case])
    fit_intercept = params.pop("fit_intercept", True)
    X, y, sw = _data(make_data, global_random_seed, **params)
    reg = BilevelRidgeCV(fit_intercept=fit_intercept).fit(X, y, sample_weight=sw)
    assert isinstance(reg.alpha_, float) and reg.alpha_ > 0
    ridge = Ridge(alpha=reg.alpha_, fit_intercept=fit_intercept, solver="cholesky")
    ridge.fit(X.toarray() if sp.issparse(X) else X, y, sample_weight=sw)
    assert reg.coef_.shape == ridge.coef_.shape
    assert np.shape(reg.intercept_) == np.shape(ridge.intercept_)
    # sparse X with few features is factorised like dense X (its Gram from sparse products)
    rtol = 1e-9
    assert_allclose(reg.coef_, ridge.coef_, rtol=rtol, atol=rtol * np.abs(ridge.coef_).max())
    assert_allclose(reg.intercept_, ridge.intercept_, rtol=rtol, atol=rtol)
    assert_allclose(reg.predict(X), ridge.predict(X), rtol=rtol, atol=rtol * np.abs(y).max())
    assert reg.n_features_in_ == X.shape[1]


# -- the selected alpha is the CV optimum -------------------------------------------------------
def _grid_search_check(X, y, ridge_ref, cv):
    scale = ridge_ref.gram_scale(X)
    grid = np.logspace(-4, 4, 81) * scale
    search = GridSearchCV(Ridge(), {"alpha": grid}, scoring="neg_mean_squared_error", cv=cv)
    search.fit(X, y)
    best_alpha = search.best_params_["alpha"]
    assert grid[0] < best_alpha < grid[-1], "the test problem must have an interior optimum"

    reg = BilevelRidgeCV(cv=cv).fit(X, y)
    splits = list(cv.split(X, y))
    cv_mse = ridge_ref.cv_value(X, y, None, reg.alpha_, splits)
    # within one grid step (0.1 decade) of the grid's best, and at least as good
    assert abs(np.log10(reg.alpha_ / best_alpha)) <= 0.1 + 1e-9
    assert cv_mse <= -search.best_score_ * (1 + 1e-9)
    # best_cv_error_ is the CV MSE at alpha_, as an independent computation finds it
    assert_allclose(reg.best_cv_error_, cv_mse, rtol=1e-10)
    assert_allclose(search.cv_results_["mean_test_score"][np.argmin(np.abs(grid - best_alpha))],
                    -ridge_ref.cv_value(X, y, None, best_alpha, splits), rtol=1e-8)


@pytest.mark.parametrize("n_features", [10, 30])
def test_alpha_matches_fine_grid_search(n_features, make_data, global_random_seed, ridge_ref):
    X, y, _ = _data(make_data, global_random_seed, n_features=n_features)
    _grid_search_check(X, y, ridge_ref, KFold(5, shuffle=True, random_state=global_random_seed))


def test_alpha_matches_fine_grid_search_diabetes(ridge_ref):
    X, y = load_diabetes(return_X_y=True)
    _grid_search_check(X, y, ridge_ref, KFold(5, shuffle=True, random_state=0))


@pytest.mark.parametrize("case", ["sample_weight", "multi_output", "sparse_sample_weight"])
def test_best_cv_error_is_cv_mse(case, make_data, global_random_seed, ridge_ref):
    params = dict(RIDGE_CASES[case])
    X, y, sw = _data(make_data, global_random_seed, **params)
    cv = KFold(4, shuffle=True, random_state=global_random_seed)
    reg = BilevelRidgeCV(cv=cv).fit(X, y, sample_weight=sw)
    splits = list(cv.split(X))
    cv_mse = ridge_ref.cv_value(X, y, sw, reg.alpha_, splits)
    # Sparse X with few features is factorised like dense X: the value to rounding.
    assert_allclose(reg.best_cv_error_, cv_mse, rtol=1e-10)
    # and it is a local minimum of the CV error in log(alpha)
    for factor in (0.9, 1.1):
        assert ridge_ref.cv_value(X, y, sw, reg.alpha_ * factor, splits) > cv_mse


def test_sample_weight_invariances(make_data, global_random_seed):
    """Weights 2 everywhere double the data term: alpha_ doubles, the model is unchanged.
    Scaling y scales the model and leaves alpha_ alone."""
    X, y, _ = _data(make_data, global_random_seed)
    base = BilevelRidgeCV().fit(X, y)
    # the same function up to a shift of log(alpha) or a scale of the objective, but L-BFGS
    # may stop a step apart on the flat bottom of the CV curve: alpha_ agrees loosely, the
    # CV error tightly
    doubled = BilevelRidgeCV().fit(X, y, sample_weight=np.full(len(y), 2.0))
    assert_allclose(doubled.alpha_, 2 * base.alpha_, rtol=1e-3)
    assert_allclose(doubled.coef_, base.coef_, rtol=1e-3)
    assert_allclose(doubled.best_cv_error_, base.best_cv_error_, rtol=1e-7)
    scaled = BilevelRidgeCV().fit(X, 10.0 * y)
    assert_allclose(scaled.alpha_, base.alpha_, rtol=1e-3)
    assert_allclose(scaled.coef_, 10.0 * base.coef_, rtol=1e-3)
    assert_allclose(scaled.best_cv_error_, 100.0 * base.best_cv_error_, rtol=1e-7)


def test_zero_weight_equals_removed_rows(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed, n_samples=60)
    keep = np.ones(60, dtype=bool)
    keep[::4] = False
    # folds of the kept rows, and the same folds with the dropped rows spread over them
    kept_idx = np.flatnonzero(keep)
    folds = np.array_split(kept_idx, 3)
    dropped = np.array_split(np.flatnonzero(~keep), 3)
    full = [np.concatenate([f, g]) for f, g in zip(folds, dropped)]
    cv_full = [(np.concatenate([full[j] for j in range(3) if j != i]), full[i])
               for i in range(3)]
    pos = {v: i for i, v in enumerate(kept_idx)}
    cv_kept = [(np.array([pos[v] for v in tr if keep[v]]), np.array([pos[v] for v in va
                                                                     if keep[v]]))
               for tr, va in cv_full]
    weighted = BilevelRidgeCV(cv=cv_full).fit(X, y, sample_weight=keep.astype(float))
    removed = BilevelRidgeCV(cv=cv_kept).fit(X[keep], y[keep])
    assert_allclose(weighted.alpha_, removed.alpha_, rtol=1e-6)
    assert_allclose(weighted.coef_, removed.coef_, rtol=1e-6)
    assert_allclose(weighted.intercept_, removed.intercept_, rtol=1e-6)


def test_huge_alpha_gives_zero_coef(make_data, global_random_seed, ridge_ref):
    X, y, _ = _data(make_data, global_random_seed)
    scale = ridge_ref.gram_scale(X)
    reg = BilevelRidgeCV(alpha_bounds=(1e10 * scale, 1e12 * scale)).fit(X, y)
    assert np.abs(reg.coef_).max() < 1e-8 * np.abs(BilevelRidgeCV().fit(X, y).coef_).max()
    assert_allclose(reg.intercept_, y.mean(), rtol=1e-6)


# -- the options -----------------------------------------------------------------------------
def test_linear_solvers_agree_dense(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    alphas = {s: BilevelRidgeCV(linear_solver=s).fit(X, y).alpha_ for s in LINEAR_SOLVERS}
    for solver, alpha in alphas.items():
        assert_allclose(alpha, alphas["cholesky"], rtol=1e-5, err_msg=solver)


def test_linear_solvers_agree_sparse(make_data, global_random_seed):
    X, y, sw = _data(make_data, global_random_seed, sparse=True)
    ref = BilevelRidgeCV(linear_solver="cholesky").fit(X.toarray(), y)
    for solver in MATRIX_FREE + ["auto"]:
        # optimizer="lbfgs": the same outer path as the Cholesky fit ("auto" brackets
        # the one alpha of sparse X on a matrix-free solver, below)
        reg = BilevelRidgeCV(linear_solver=solver, optimizer="lbfgs").fit(X, y)
        assert_allclose(reg.alpha_, ref.alpha_, rtol=1e-5, err_msg=solver)
        # alpha_ agrees to 1e-5, and d coef / d log(alpha) is at most O(|coef|)
        assert_allclose(reg.coef_, ref.coef_, rtol=2e-5, atol=1e-9, err_msg=solver)


def test_sparse_matrix_free_bracket_reaches_the_cv_minimum(make_data, global_random_seed,
                                                           ridge_ref):
    # optimizer="auto" on sparse X and a Krylov solver: a loose grid and a bracketing
    # search. It stops on the predicted decrease of the CV error (tol relative), not on
    # alpha: its CV error, not its alpha, matches the tightly converged Cholesky fit's,
    # and the grid's looser values never make it pick a worse point than the grid's best.
    X, y, _ = _data(make_data, global_random_seed, sparse=True)
    cv = KFold(5, shuffle=True, random_state=global_random_seed)
    ref = BilevelRidgeCV(linear_solver="cholesky", cv=cv).fit(X.toarray(), y)
    for solver in MATRIX_FREE:
        reg = BilevelRidgeCV(linear_solver=solver, cv=cv).fit(X, y)
        cv_error = ridge_ref.cv_value(X, y, None, reg.alpha_, list(cv.split(X)))
        assert cv_error <= ref.best_cv_error_ * (1 + 1e-5), solver
        assert_allclose(reg.best_cv_error_, cv_error, rtol=1e-6, err_msg=solver)
        assert_allclose(np.log(reg.alpha_), np.log(ref.alpha_), atol=0.1, err_msg=solver)
        assert set(reg.history_["phase"]) == {"grid", "optimize"}
        assert np.sum(reg.history_["phase"] == "optimize") < \
            np.sum(BilevelRidgeCV(linear_solver=solver, optimizer="lbfgs", cv=cv)
                   .fit(X, y).history_["phase"] == "optimize"), solver


def test_linear_solvers_agree_per_feature(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed, n_features=6)
    cv = KFold(3, shuffle=True, random_state=global_random_seed)
    fits = {s: BilevelRidgeCV(linear_solver=s, alpha_per_feature=True, cv=cv).fit(X, y)
            for s in ["cholesky"] + MATRIX_FREE}
    for solver, reg in fits.items():
        assert_allclose(reg.best_cv_error_, fits["cholesky"].best_cv_error_, rtol=1e-6,
                        err_msg=solver)


def test_float32(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    ref = BilevelRidgeCV().fit(X.astype(np.float32).astype(np.float64), y)
    # float32 input, float64 computation: the same numbers as the float64 input
    reg = BilevelRidgeCV().fit(X.astype(np.float32), y.astype(np.float32))
    assert_allclose(reg.alpha_, ref.alpha_, rtol=1e-6)
    assert np.isfinite(reg.predict(X.astype(np.float32))).all()
    # float32 computation: close to float64, to float32 accuracy along a smooth CV curve
    for solver in ("auto", "recycled_minres"):
        reg32 = BilevelRidgeCV(dtype="float32", linear_solver=solver).fit(X, y)
        assert_allclose(reg32.alpha_, ref.alpha_, rtol=5e-2, err_msg=solver)
        assert_allclose(reg32.coef_, ref.coef_, rtol=1e-2, atol=1e-3 * np.abs(ref.coef_).max())
        assert reg32.coef_.dtype == np.float64 and np.isfinite(reg32.coef_).all()


def test_alpha_per_feature_shapes_and_groups(make_data, global_random_seed):
    X, y = _sparse_features(global_random_seed)
    d = X.shape[1]
    per_feature = BilevelRidgeCV(alpha_per_feature=True, random_state=0).fit(X, y)
    assert per_feature.alpha_.shape == (d,)
    assert np.all(per_feature.alpha_ > 0)
    assert per_feature.history_["theta"].shape[1] == d
    labels = np.array(["signal"] * 4 + ["noise"] * (d - 4))
    grouped = BilevelRidgeCV(alpha_per_feature=labels, random_state=0).fit(X, y)
    assert grouped.alpha_.shape == (d,)
    assert np.unique(grouped.alpha_[:4]).size == 1
    assert np.unique(grouped.alpha_[4:]).size == 1
    assert grouped.alpha_[4] > 10 * grouped.alpha_[0]
    assert grouped.history_["theta"].shape[1] == 2
    # the grouped model is Ridge with the per-feature penalties (rescaled features)
    Xs = X / np.sqrt(grouped.alpha_)
    ridge = Ridge(alpha=1.0, solver="cholesky").fit(Xs, y)
    assert_allclose(grouped.coef_, ridge.coef_ / np.sqrt(grouped.alpha_), rtol=1e-8,
                    atol=1e-12)
    assert_allclose(grouped.intercept_, ridge.intercept_, rtol=1e-8)


def test_irrelevant_features_get_larger_alphas(make_data, global_random_seed):
    X, y = _sparse_features(global_random_seed)
    cv = KFold(5, shuffle=True, random_state=global_random_seed)
    reg = BilevelRidgeCV(alpha_per_feature=True, cv=cv).fit(X, y)
    assert np.median(reg.alpha_[4:]) > 3 * np.median(reg.alpha_[:4])
    # and the learned penalties beat the best single alpha on the same CV folds
    one = BilevelRidgeCV(cv=cv).fit(X, y)
    assert reg.best_cv_error_ < one.best_cv_error_


def _stage_two(history):
    """Mask of the per-feature stage: from the second block of grid records on."""
    phase = history["phase"]
    starts = np.flatnonzero((phase == "grid") & (np.r_["0", ["optimize"], phase[:-1]]
                                                 == "optimize"))
    assert len(starts) == 2, "a shared-alpha stage, then a per-feature stage"
    return np.arange(len(phase)) >= starts[1]


@pytest.mark.parametrize("n_iter_no_change", [3, 10])
def test_early_stopping(n_iter_no_change, make_data, global_random_seed):
    X, y = _sparse_features(global_random_seed)
    params = dict(alpha_per_feature=True, early_stopping=True,
                  n_iter_no_change=n_iter_no_change, random_state=global_random_seed)
    reg = BilevelRidgeCV(**params).fit(X, y)
    hist = reg.history_
    holdout = hist["holdout_objective"]
    assert holdout.shape == hist["objective"].shape and np.isfinite(holdout).all()
    # the returned point is the per-feature stage's best on the holdout
    stage = _stage_two(hist)
    best = np.flatnonzero(stage)[int(np.argmin(holdout[stage]))]
    assert_allclose(reg.alpha_, hist["alpha"][best], rtol=1e-12)
    assert_allclose(reg.best_cv_error_, hist["objective"][best], rtol=1e-12)
    # patience: no more than n_iter_no_change optimisation steps after the best one
    after = stage & (np.arange(len(holdout)) > best) & (hist["phase"] == "optimize")
    assert after.sum() <= n_iter_no_change
    again = BilevelRidgeCV(**params).fit(X, y)
    assert_array_equal(again.alpha_, reg.alpha_)
    assert_array_equal(again.history_["holdout_objective"], holdout)
    # off by default, for one alpha and for many
    assert "holdout_objective" not in BilevelRidgeCV().fit(X, y).history_
    plain = BilevelRidgeCV(alpha_per_feature=True, random_state=0).fit(X, y)
    assert "holdout_objective" not in plain.history_
    es = BilevelRidgeCV(early_stopping=True, random_state=0).fit(X, y)
    held = es.history_["holdout_objective"]
    assert_allclose(es.alpha_, es.history_["alpha"][int(np.argmin(held))], rtol=1e-12)


def test_early_stopping_with_explicit_splits(make_data, global_random_seed, ridge_ref):
    """Explicit splits index all samples; the held-out rows are dropped from every fold."""
    X, y = _sparse_features(global_random_seed)
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    reg = BilevelRidgeCV(alpha_per_feature=True, cv=splits, early_stopping=True,
                         random_state=0).fit(X, y)
    assert reg.alpha_.shape == (X.shape[1],)
    assert np.isfinite(reg.coef_).all()
    # the holdout is the library's split for this random_state; folds are the splits without it
    from skbilevel._tuning import holdout_split
    _, held = holdout_split(len(y), 0.2, 0)
    kept = [(np.setdiff1d(tr, held), np.setdiff1d(va, held)) for tr, va in splits]
    h = reg.history_
    for i in (0, len(h["objective"]) - 1):
        assert_allclose(h["objective"][i],
                        ridge_ref.cv_value(X, y, None, h["alpha"][i], kept), rtol=1e-9)
        rest = np.setdiff1d(np.arange(len(y)), held)
        assert_allclose(h["holdout_objective"][i],
                        ridge_ref.split_value(X, y, None, h["alpha"][i], rest, held),
                        rtol=1e-9)


def test_alpha_bounds_are_respected(make_data, global_random_seed, ridge_ref):
    X, y, _ = _data(make_data, global_random_seed)
    free = BilevelRidgeCV().fit(X, y).alpha_
    low, high = 20 * free, 200 * free  # the CV optimum lies below the box
    for per_feature in (False, True):
        reg = BilevelRidgeCV(alpha_bounds=(low, high), alpha_per_feature=per_feature,
                             random_state=0).fit(X, y)
        assert np.all(reg.alpha_ >= low * (1 - 1e-12)) and np.all(reg.alpha_ <= high)
        assert np.all(reg.history_["alpha"] >= low * (1 - 1e-12))
        if not per_feature:  # single features may still want more penalty than the box floor
            assert_allclose(reg.alpha_, low, rtol=1e-6)


# -- bad input ---------------------------------------------------------------------------------
def _with_nan(a, value=np.nan):
    a = a.copy()
    a.flat[3] = value
    return a


BAD_DATA = {
    "nan_X": (lambda X, y: (_with_nan(X), y), r"X contains NaN"),
    "inf_X": (lambda X, y: (_with_nan(X, np.inf), y), r"X contains infinity"),
    "nan_y": (lambda X, y: (X, _with_nan(y)), r"y contains NaN"),
    "inf_y": (lambda X, y: (X, _with_nan(y, -np.inf)), r"y contains infinity"),
    "y_too_short": (lambda X, y: (X, y[:-1]), r"inconsistent numbers of samples"),
    "X_1d": (lambda X, y: (X[:, 0], y), r"Expected 2D array"),
    "fewer_samples_than_folds": (lambda X, y: (X[:3], y[:3]), r"n_samples=3"),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_raises(case, make_data):
    X, y, _ = _data(make_data, 0, n_samples=30)
    transform, match = BAD_DATA[case]
    Xb, yb = transform(X, y)
    with pytest.raises(ValueError, match=match):
        BilevelRidgeCV(cv=5).fit(Xb, yb)


BAD_PARAMS = {
    "alpha_init_zero": (dict(alpha_init=0.0), "alpha_init"),
    "alpha_init_negative": (dict(alpha_init=-1.0), "alpha_init"),
    "linear_solver": (dict(linear_solver="qr"), "linear_solver"),
    "optimizer": (dict(optimizer="newton"), "optimizer"),
    "alpha_bounds_length": (dict(alpha_bounds=(1.0,)), "alpha_bounds"),
    "alpha_bounds_reversed": (dict(alpha_bounds=(10.0, 1.0)), "alpha_bounds"),
    "alpha_bounds_negative": (dict(alpha_bounds=(-1.0, 1.0)), "alpha_bounds"),
    "alpha_bounds_nan": (dict(alpha_bounds=(np.nan, 1.0)), "alpha_bounds"),
    "alpha_bounds_string": (dict(alpha_bounds="wide"), "alpha_bounds"),
    "alpha_bounds_strings": (dict(alpha_bounds=("a", "b")), "alpha_bounds"),
    "alpha_per_feature_length": (dict(alpha_per_feature=[0, 1, 2]), "alpha_per_feature"),
    "alpha_per_feature_2d": (dict(alpha_per_feature=np.zeros((10, 1))), "alpha_per_feature"),
    "device_unknown": (dict(device="tpu0"), "device"),
    "dtype": (dict(dtype="float16"), "dtype"),
    "validation_fraction": (dict(validation_fraction=1.0), "validation_fraction"),
    "recycle_dim": (dict(recycle_dim=0), "recycle_dim"),
    "max_iter": (dict(max_iter=-1), "max_iter"),
}


@pytest.mark.parametrize("params, name", list(BAD_PARAMS.values()), ids=list(BAD_PARAMS))
def test_bad_params_raise_naming_the_parameter(params, name, make_data):
    X, y, _ = _data(make_data, 0, n_samples=30)
    # ValueError or TypeError only: a RuntimeError from torch would escape and fail the test
    with pytest.raises((ValueError, TypeError), match=re.escape(name)):
        BilevelRidgeCV(**params).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_raises(make_data):
    X, y, _ = _data(make_data, 0, n_samples=30)
    with pytest.raises(ValueError, match=r"device='cuda'.*CUDA is not available"):
        BilevelRidgeCV(device="cuda").fit(X, y)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("alpha_per_feature", [False, True])
def test_cuda_matches_cpu(alpha_per_feature, make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    params = dict(alpha_per_feature=alpha_per_feature, random_state=0)
    cpu = BilevelRidgeCV(**params).fit(X, y)
    gpu = BilevelRidgeCV(device="cuda", **params).fit(X, y)
    assert_allclose(gpu.alpha_, cpu.alpha_, rtol=1e-5)
    assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
    assert isinstance(gpu.coef_, np.ndarray)  # no torch object outlives fit
    Xs = sp.csr_matrix(X)
    gpu_sparse = BilevelRidgeCV(device="cuda", linear_solver="recycled_minres", **params)
    assert_allclose(gpu_sparse.fit(Xs, y).alpha_, cpu.alpha_, rtol=1e-5)


# -- convergence, history, verbosity ----------------------------------------------------------
def test_non_convergence_warns_and_still_fits(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        reg = BilevelRidgeCV(max_iter=1).fit(X, y)
    assert reg.alpha_ > 0 and np.isfinite(reg.coef_).all() and np.isfinite(reg.intercept_)
    pred = reg.predict(X)
    assert pred.shape == y.shape and np.isfinite(pred).all()
    # still no worse than the start grid
    full = BilevelRidgeCV().fit(X, y)
    grid = full.history_["phase"] == "grid"
    assert reg.best_cv_error_ <= full.history_["objective"][grid].min() * (1 + 1e-12)


def test_history(make_data, global_random_seed, ridge_ref):
    X, y, _ = _data(make_data, global_random_seed)
    cv = KFold(4, shuffle=True, random_state=global_random_seed)
    reg = BilevelRidgeCV(cv=cv).fit(X, y)
    h = reg.history_
    n = len(h["objective"])
    for key in ("phase", "objective", "alpha", "theta", "grad_norm", "time", "n_inner_iter",
                "n_linsys_iter", "n_matvec"):
        assert len(h[key]) == n, key
    grid, opt = h["phase"] == "grid", h["phase"] == "optimize"
    assert np.all(grid[:14]) and np.all(opt[14:]) and opt.sum() >= 1  # alpha_init + 13
    assert np.all(np.diff(h["time"]) >= 0)
    assert_allclose(np.log(h["alpha"]), h["theta"][:, 0], rtol=1e-12)
    # every recorded objective is the CV error of the recorded alpha
    splits = list(cv.split(X))
    for i in list(range(0, n, 5)) + [n - 1]:
        assert_allclose(h["objective"][i],
                        ridge_ref.cv_value(X, y, None, float(h["alpha"][i]), splits), rtol=1e-9)
    # the optimisation improves on the grid and the result is the best point seen
    assert h["objective"][opt].min() <= h["objective"][grid].min()
    best = int(np.argmin(h["objective"]))
    assert_allclose(reg.best_cv_error_, h["objective"][best], rtol=1e-12)
    assert_allclose(reg.alpha_, h["alpha"][best], rtol=1e-12)
    assert np.all(np.isnan(h["grad_norm"][grid])) and np.all(np.isfinite(h["grad_norm"][opt]))
    # at the best point the hypergradient is tiny compared to the first optimisation step
    assert h["grad_norm"][best] < 1e-3 * h["grad_norm"][opt][0] or \
        h["grad_norm"][best] < 1e-8 * h["objective"][best]


@pytest.mark.parametrize("alpha_shrinkage", [0.0, 0.005, 0.1])
def test_history_per_feature(alpha_shrinkage, make_data, global_random_seed, ridge_ref):
    """Two stages (one alpha, then one per feature) in one history; with shrinkage the
    result is the minimum of CV MSE + shrinkage * CV_ref * var(log alpha)."""
    X, y = _sparse_features(global_random_seed, n_features=8)
    d = X.shape[1]
    cv = KFold(4, shuffle=True, random_state=global_random_seed)
    reg = BilevelRidgeCV(cv=cv, alpha_per_feature=True, alpha_shrinkage=alpha_shrinkage)
    reg.fit(X, y)
    h = reg.history_
    n = len(h["objective"])
    assert h["alpha"].shape == h["theta"].shape == (n, d)
    assert_allclose(np.log(h["alpha"]), h["theta"], rtol=1e-12)
    stage = _stage_two(h)
    one = ~stage
    # stage 1: one alpha broadcast to every feature, 14 grid points then optimisation
    assert np.all(h["theta"][one] == h["theta"][one][:, :1])
    assert np.all(h["phase"][:14] == "grid")
    cv_ref = h["objective"][one].min()
    # stage 2 starts from stage 1's optimum broadcast, then 3 prior-based candidates and
    # the evidence (type-II maximum likelihood) penalties
    assert np.all(h["phase"][stage][:5] == "grid") and h["phase"][stage][5] == "optimize"
    assert_allclose(h["objective"][stage][0], cv_ref, rtol=1e-12)
    splits = list(cv.split(X))
    for i in list(range(0, n, 7)) + [n - 1]:
        assert_allclose(h["objective"][i], ridge_ref.cv_value(X, y, None, h["alpha"][i],
                                                              splits), rtol=1e-9)

    def penalised(i):
        theta = h["theta"][i]
        return h["objective"][i] + alpha_shrinkage * cv_ref * np.var(theta)

    stage_idx = np.flatnonzero(stage)
    start = stage_idx[int(np.argmin(h["objective"][stage][:4]))]
    final = [i for i in stage_idx if np.array_equal(h["alpha"][i], reg.alpha_)]
    assert final, "alpha_ is a point of the per-feature stage"
    assert_allclose(reg.best_cv_error_, h["objective"][final[-1]], rtol=1e-12)
    assert penalised(final[-1]) <= penalised(start) * (1 + 1e-12)
    # the learned penalties never do worse on the CV criterion than the shared one
    assert reg.best_cv_error_ <= cv_ref * (1 + 1e-12)
    if alpha_shrinkage == 0:
        assert_allclose(reg.best_cv_error_, h["objective"][stage].min(), rtol=1e-12)


def test_shrinkage_pulls_alphas_together(make_data, global_random_seed):
    X, y = _sparse_features(global_random_seed)
    cv = KFold(5, shuffle=True, random_state=global_random_seed)
    spread = [np.std(np.log(BilevelRidgeCV(alpha_per_feature=True, cv=cv,
                                           alpha_shrinkage=s).fit(X, y).alpha_))
              for s in (0.0, 0.05, 10.0)]
    assert spread[0] > spread[1] > spread[2]
    assert spread[2] < 0.1 * spread[0]


def test_cv_repeats(make_data, global_random_seed, ridge_ref):
    """An int cv with repeats is RepeatedKFold seeded by random_state."""
    from sklearn.model_selection import RepeatedKFold
    X, y, _ = _data(make_data, global_random_seed)
    reg = BilevelRidgeCV(cv=4, cv_repeats=2, random_state=7).fit(X, y)
    splits = list(RepeatedKFold(n_splits=4, n_repeats=2, random_state=7).split(X))
    assert_allclose(reg.best_cv_error_, ridge_ref.cv_value(X, y, None, reg.alpha_, splits),
                    rtol=1e-9)
    # "auto": no repeats for one alpha (plain KFold(4), unshuffled)
    auto = BilevelRidgeCV(cv=4).fit(X, y)
    plain = list(KFold(4).split(X))
    assert_allclose(auto.best_cv_error_, ridge_ref.cv_value(X, y, None, auto.alpha_, plain),
                    rtol=1e-9)


def test_repeated_cv_needs_only_n_splits_samples(make_data):
    X, y, _ = _data(make_data, 0, n_samples=12, n_features=3)
    reg = BilevelRidgeCV(alpha_per_feature=True, cv=5, random_state=0).fit(X, y)
    assert reg.alpha_.shape == (3,)


def test_verbose_prints_progress(make_data, capsys):
    X, y, _ = _data(make_data, 0)
    BilevelRidgeCV(verbose=0).fit(X, y)
    assert capsys.readouterr().out == ""
    reg = BilevelRidgeCV(verbose=1).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    evals = [line for line in lines if " eval " in line]
    # Header and grid first, every evaluation (the grid's too), then the final line.
    assert len(evals) == len(reg.history_["phase"]) == len(lines) - 3
    assert "CV folds" in lines[0] and "grid" in lines[1] and "done in" in lines[-1]
    assert all(line.startswith("[BilevelRidgeCV]") and "cv=" in line and "alpha=" in line
               for line in evals)
    reg = BilevelRidgeCV(verbose=2).fit(X, y)
    evals = [line for line in capsys.readouterr().out.splitlines() if " eval " in line]
    assert len(evals) == len(reg.history_["phase"])
    assert all("krylov=" in line for line in evals)


@pytest.mark.parametrize("alpha_per_feature", [False, True])
def test_n_jobs(alpha_per_feature, make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    fits = [BilevelRidgeCV(n_jobs=n_jobs, alpha_per_feature=alpha_per_feature,
                           early_stopping=alpha_per_feature, random_state=0).fit(X, y)
            for n_jobs in (1, 2)]
    assert_array_equal(fits[0].alpha_, fits[1].alpha_)
    assert_array_equal(fits[0].coef_, fits[1].coef_)
    assert fits[0].best_score_ == fits[1].best_score_


# -- scikit-learn integration -----------------------------------------------------------------
def test_pipeline(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    pipe = make_pipeline(StandardScaler(), BilevelRidgeCV()).fit(X, y)
    Xs = StandardScaler().fit_transform(X)
    direct = BilevelRidgeCV().fit(Xs, y)
    assert_allclose(pipe[-1].alpha_, direct.alpha_, rtol=1e-10)
    assert_allclose(pipe.predict(X), direct.predict(Xs), rtol=1e-10)


def test_cross_val_score(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed, noise=0.3)
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(BilevelRidgeCV(), X, y, cv=cv)
    manual = [BilevelRidgeCV().fit(X[tr], y[tr]).score(X[te], y[te]) for tr, te in cv.split(X)]
    assert_allclose(scores, manual, rtol=1e-12)
    assert np.all(scores > 0.3)  # the signal is learnable


def test_grid_search_over_fit_intercept(make_data, global_random_seed):
    # centred X cannot stand in for an intercept, and y has a large offset: it matters
    X, y, _ = _data(make_data, global_random_seed)
    X = X - X.mean(0)
    y = y + 10.0
    search = GridSearchCV(BilevelRidgeCV(), {"fit_intercept": [False, True]}, cv=3).fit(X, y)
    assert search.best_params_ == {"fit_intercept": True}
    assert search.best_estimator_.alpha_ > 0


def test_clone_and_pickle(make_data, global_random_seed):
    X, y, _ = _data(make_data, global_random_seed)
    est = BilevelRidgeCV(alpha_per_feature=True, cv=4, random_state=3, max_iter=20)
    reg = clone(est).fit(X, y)
    cloned = clone(reg)
    assert cloned.get_params() == est.get_params()
    assert not hasattr(cloned, "alpha_")
    assert_array_equal(cloned.fit(X, y).alpha_, reg.alpha_)
    restored = pickle.loads(pickle.dumps(reg))
    assert_array_equal(restored.predict(X), reg.predict(X))
    assert_array_equal(restored.alpha_, reg.alpha_)
    for key, value in reg.history_.items():
        assert_array_equal(restored.history_[key], value)


def test_early_stopping_holdout_is_not_a_shuffled_fold():
    """Same integer seed for the folds and the holdout must not make the holdout a fold."""
    X, y = load_diabetes(return_X_y=True)
    splits = list(KFold(5, shuffle=True, random_state=0).split(X))
    reg = BilevelRidgeCV(alpha_per_feature=True, early_stopping=True, cv=splits,
                         random_state=0).fit(X, y)
    assert reg.alpha_.shape == (X.shape[1],) and np.isfinite(reg.coef_).all()


def test_auto_solver_follows_the_cost_of_the_sparse_gram(ridge_ref):
    # Sparse X at 1 % density: the Gram's eigendecomposition (d^3 = 2.7e7) costs more than
    # 4000 passes over the 1,200 stored entries, so "auto" goes matrix-free (CG) there, and
    # reaches the CV error of the exact fit on the dense copy; at 30 % density it keeps
    # the Gram and gives the dense fit's alpha_ to the last digits.
    from skbilevel._ridge_folds import ridge_solvers
    from skbilevel.engine.solvers import ClosedFormSolver

    rng = np.random.default_rng(0)
    cv = KFold(5, shuffle=True, random_state=0)
    for density, gram in [(0.01, False), (0.3, True)]:
        X = sp.random(400, 300, density=density, format="csr", random_state=rng,
                      data_rvs=rng.standard_normal)
        y = X @ rng.standard_normal(300) + 0.5 * rng.standard_normal(400)
        solver, _ = ridge_solvers("auto", 300, torch.float64, nnz=X.nnz)
        assert isinstance(solver, ClosedFormSolver) is gram, density
        ref = BilevelRidgeCV(linear_solver="cholesky", cv=cv).fit(X.toarray(), y)
        reg = BilevelRidgeCV(cv=cv).fit(X, y)
        if gram:
            assert_allclose(reg.alpha_, ref.alpha_, rtol=1e-8)
        else:
            cv_error = ridge_ref.cv_value(X, y, None, reg.alpha_, list(cv.split(X)))
            assert cv_error <= ref.best_cv_error_ * (1 + 1e-5)
    # dense X never asks: the Gram up to 4000 features
    solver, _ = ridge_solvers("auto", 300, torch.float64)
    assert isinstance(solver, ClosedFormSolver)


def test_all_zero_sparse_x_fits_the_mean():
    # Goes matrix-free (no stored entries) and alpha_init lands on the grid: the
    # bracketing search's start used to divide by zero there.
    y = np.random.default_rng(0).standard_normal(50)
    reg = BilevelRidgeCV().fit(sp.csr_matrix((50, 300)), y)
    assert_allclose(reg.coef_, 0.0)
    assert_allclose(reg.intercept_, y.mean())
