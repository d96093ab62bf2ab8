"""Scale-out: HypergradientSearchCV's joblib tasks (Dask backend) and BilevelRidgeCV on a
dask.array (the folds' moments by map-reduce on a LocalCluster)."""

import joblib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.datasets import make_regression
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skbilevel import BilevelRidgeCV, HypergradientSearchCV
from skbilevel.engine.inner import RidgeProblem
from skbilevel.engine.outer import HeldOutMSE, MomentMSE

CV = KFold(3, shuffle=True, random_state=0)
FLOAT_COLUMNS = ("mean_test_score", "std_test_score", "param_ridge__alpha", "hypergradient",
                 "iter")


def _search(**kwargs):
    return HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
                                 {"ridge__alpha": (1e-2, 1e2)},
                                 param_grid={"ridge__fit_intercept": [True, False]}, cv=CV,
                                 scoring="neg_mean_squared_error", **kwargs)


@pytest.fixture(scope="module")
def data():
    return make_regression(n_samples=120, n_features=8, noise=10.0, random_state=0)


@pytest.fixture(scope="module")
def reference(data):
    return _search().fit(*data)


def _assert_same_results(a, b):
    assert len(a.cv_results_["params"]) == len(b.cv_results_["params"])
    for key in FLOAT_COLUMNS:
        assert_allclose(np.asarray(a.cv_results_[key], float),
                        np.asarray(b.cv_results_[key], float), rtol=1e-12, equal_nan=True)
    assert a.best_params_.keys() == b.best_params_.keys()
    assert_allclose(a.best_params_["ridge__alpha"], b.best_params_["ridge__alpha"], rtol=1e-12)
    assert a.n_iter_ == b.n_iter_


def test_verbose_2_prints_every_evaluation(data, capsys):
    search = _search(verbose=2).fit(*data)
    lines = [line for line in capsys.readouterr().out.splitlines() if " eval " in line]
    assert len(lines) == search.n_iter_  # one line per evaluated point, as it goes
    assert sum("{'ridge__fit_intercept': False}" in line for line in lines) > 0


def test_n_jobs_gives_the_sequential_results(data, reference):
    _assert_same_results(_search(n_jobs=2).fit(*data), reference)


def test_moment_mse_is_the_held_out_mse():
    rng = np.random.default_rng(0)
    X, Y, s = rng.standard_normal((30, 4)), rng.standard_normal((30, 2)), rng.uniform(1, 2, 30)
    t = [torch.from_numpy(a) for a in (X, Y, s)]
    problem = RidgeProblem(t[0][:20], t[1][:20], t[2][:20], fit_intercept=True)
    Xv, Yv, sv = (a[20:] for a in t)
    held = HeldOutMSE.for_problem(problem, Xv, Yv, sv)
    sY = sv[:, None] * Yv
    moments = MomentMSE.for_problem(problem, sv.sum(), Xv.T @ sv, sY.sum(0),
                                    Xv.T @ (sv[:, None] * Xv), Xv.T @ sY, (sY * Yv).sum())
    w = torch.from_numpy(rng.standard_normal((4, 2)))
    assert_allclose(moments.value(w), held.value(w), rtol=1e-12)
    assert_allclose(moments.grad_w(w), held.grad_w(w), rtol=1e-12)


@pytest.mark.parametrize("objective", ["mse", "r2"])
def test_moment_fold_is_the_fold_of_the_rows(objective):
    from skbilevel._moments import RawMoments
    from skbilevel._ridge_folds import moment_fold, ridge_fold

    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((40, 5)), rng.standard_normal((40, 2)) + 3.0
    s = rng.uniform(0.5, 2.0, 40)
    tr, va = ([torch.from_numpy(a[rows]) for a in (X, Y, s)]
              for rows in (slice(0, 30), slice(30, None)))
    rows = ridge_fold(tuple(va), lambda: tuple(tr), n_train=30, objective=objective)
    moments = moment_fold(RawMoments.of(*tr), RawMoments.of(*va), objective=objective)
    theta = torch.tensor([0.3], dtype=torch.float64)
    w = torch.linalg.solve(rows.problem.gram + torch.exp(theta) * torch.eye(5),
                           rows.problem.xty)
    assert_allclose(moments.criterion.value(w), rows.criterion.value(w), rtol=1e-12)
    assert_allclose(moments.problem.gram, rows.problem.gram, rtol=1e-12)
    if objective == "r2":  # 1 - R^2 pooled over the targets, weighted
        sse = (s[30:, None] * (Y[30:] - (X[30:] - rows.problem.x_mean.numpy()) @ w.numpy()
                              - rows.problem.y_mean.numpy()) ** 2).sum()
        sst = (s[30:, None] * (Y[30:] - np.average(Y[30:], axis=0, weights=s[30:])) ** 2).sum()
        assert_allclose(moments.criterion.value(w), sse / sst, rtol=1e-12)


# -- on a Dask cluster ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _workers(stream, name):
    return {t["worker"] for t in stream.data if name in str(t["key"])}


def test_search_on_a_dask_cluster_gives_the_sequential_results(data, reference, client):
    from distributed import get_task_stream

    with joblib.parallel_config(backend="dask"), get_task_stream(client) as stream:
        search = _search().fit(*data)
    _assert_same_results(search, reference)
    workers = set(client.scheduler_info()["workers"])
    assert _workers(stream, "_tune_combination")  # the tuning ran on the cluster ...
    assert _workers(stream, "") == workers  # ... and the tasks on both workers


@pytest.mark.parametrize("fit_intercept, weighted, n_targets",
                         [(True, False, 1), (False, True, 1), (True, True, 2)])
def test_ridge_on_a_dask_array_gives_the_in_memory_fit(client, fit_intercept, weighted,
                                                       n_targets):
    da = pytest.importorskip("dask.array")
    from distributed import get_task_stream

    X, y = make_regression(n_samples=1000, n_features=12, n_targets=n_targets, noise=30.0,
                           random_state=1)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y)) if weighted else None
    expected = BilevelRidgeCV(fit_intercept=fit_intercept).fit(X, y, sample_weight=weight)
    # Chunks that straddle the fold boundaries (every 200 rows).
    Xd, yd = da.from_array(X, chunks=(130, 5)), da.from_array(y, chunks=170)
    with get_task_stream(client) as stream:
        got = BilevelRidgeCV(fit_intercept=fit_intercept).fit(Xd, yd, sample_weight=weight)
    for name in ("alpha_", "coef_", "intercept_", "best_score_", "best_cv_error_"):
        assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-10, atol=1e-12)
    assert got.n_iter_ == expected.n_iter_
    assert_allclose(got.history_["objective"], expected.history_["objective"], rtol=1e-10)
    assert _workers(stream, "_pack") == set(client.scheduler_info()["workers"])
    assert_allclose(got.predict(X), expected.predict(X), rtol=1e-10)


def test_ridge_on_a_dask_array_refuses_what_needs_the_rows():
    da = pytest.importorskip("dask.array")
    X, y = make_regression(n_samples=100, n_features=5, random_state=0)
    Xd = da.from_array(X, chunks=50)
    with pytest.raises(ValueError, match="partition the rows"):
        BilevelRidgeCV(cv=ShuffleSplit(3, random_state=0)).fit(Xd, y)
    with pytest.raises(ValueError, match="alpha_per_feature"):
        BilevelRidgeCV(alpha_per_feature=True).fit(Xd, y)
    with pytest.raises(ValueError, match="linear_solver"):
        BilevelRidgeCV(linear_solver="cg").fit(Xd, y)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        BilevelRidgeCV().fit(Xd, y, sample_weight=np.ones(3))


# -- HypergradientSearchCV(Ridge()) on a dask array -------------------------------------------
def _dask_problem(n_targets=1):
    X, y = make_regression(n_samples=300, n_features=6, n_targets=n_targets, noise=40.0,
                           random_state=2)
    return X, y + 5.0, np.random.default_rng(0).uniform(0.5, 2.0, len(y))


def _ridge_search(**kwargs):
    # Few scored points: each score computes a fold's predictions on the cluster.
    kwargs = {"param_grid": {"fit_intercept": [True, False]}, "max_iter": 4,
              "scoring": "neg_mean_squared_error", **kwargs}
    return HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=CV, **kwargs)


def test_search_on_a_dask_array_gives_the_in_memory_search(client):
    da = pytest.importorskip("dask.array")
    X, y, weight = _dask_problem()
    fit_params = {"sample_weight": weight}  # unweighted: the next test
    expected = _ridge_search().fit(X, y, **fit_params)
    # Chunks that straddle the folds; y and the weights chunked otherwise.
    Xd, yd = da.from_array(X, chunks=(70, 4)), da.from_array(y, chunks=90)
    dask_params = {k: da.from_array(v, chunks=110) for k, v in fit_params.items()}
    got = _ridge_search().fit(Xd, yd, **dask_params)
    assert [p["fit_intercept"] for p in got.cv_results_["params"]] == \
        [p["fit_intercept"] for p in expected.cv_results_["params"]]
    assert got.best_params_["fit_intercept"] == expected.best_params_["fit_intercept"]
    # The paths agree to the rounding of the moments' expansion of the validation error.
    assert_allclose(got.best_params_["alpha"], expected.best_params_["alpha"], rtol=1e-6)
    assert_allclose(np.asarray(got.cv_results_["param_alpha"], float),
                    np.asarray(expected.cv_results_["param_alpha"], float), rtol=1e-6)
    for key in ("mean_test_score", "std_test_score"):
        assert_allclose(got.cv_results_[key], expected.cv_results_[key], rtol=1e-8)
    best = got.best_estimator_
    assert isinstance(best, Ridge) and type(got.estimator) is Ridge  # the user's back
    assert best.get_params() == {**Ridge().get_params(), **got.best_params_}
    exact = Ridge(solver="cholesky", **got.best_params_).fit(X, y, **fit_params)
    assert_allclose(best.coef_, exact.coef_, rtol=1e-10)
    assert_allclose(best.intercept_, exact.intercept_, rtol=1e-10, atol=1e-10)
    assert_allclose(best.coef_, expected.best_estimator_.coef_, rtol=1e-5)
    prediction = got.predict(Xd)  # lazy on a dask array, Ridge's on numpy
    assert isinstance(prediction, da.Array)
    assert_allclose(prediction.compute(), exact.predict(X), rtol=1e-10)
    assert_allclose(got.predict(X), exact.predict(X), rtol=1e-10)


@pytest.mark.parametrize("fit_intercept, n_targets", [(True, 1), (False, 1), (True, 2)])
def test_moment_ridge_on_a_dask_array_is_ridge(client, fit_intercept, n_targets):
    da = pytest.importorskip("dask.array")
    from skbilevel._search_dask import MomentRidge

    X, y, weight = _dask_problem(n_targets)
    Xd, yd = da.from_array(X, chunks=(70, 6)), da.from_array(y, chunks=90)
    got = MomentRidge(alpha=3.0, fit_intercept=fit_intercept).fit(Xd, yd, weight)
    exact = Ridge(alpha=3.0, fit_intercept=fit_intercept, solver="cholesky").fit(X, y, weight)
    assert got.coef_.shape == exact.coef_.shape
    assert np.shape(got.intercept_) == np.shape(exact.intercept_)
    assert_allclose(got.coef_, exact.coef_, rtol=1e-10)
    assert_allclose(got.intercept_, exact.intercept_, rtol=1e-10, atol=1e-10)
    assert_allclose(got.predict(Xd).compute(), exact.predict(X), rtol=1e-10)


def test_search_on_a_dask_array_reads_X_once(client, monkeypatch):
    da = pytest.importorskip("dask.array")
    import skbilevel._search_dask as search_dask

    X, y, weight = _dask_problem()
    passes = []

    def counting(X, Y, sample_weight, labels, n_blocks):
        passes.append(n_blocks)
        return block_moments(X, Y, sample_weight, labels, n_blocks)

    def no_matrix(self, *args, **kwargs):  # what a scorer may compute: vectors only
        assert self.ndim == 1, f"a {self.shape} dask array was computed here"
        return array(self, *args, **kwargs)

    block_moments, array = search_dask.block_moments, da.Array.__array__
    monkeypatch.setattr(search_dask, "block_moments", counting)
    monkeypatch.setattr(da.Array, "__array__", no_matrix)
    Xd = da.from_array(X, chunks=(70, 6))
    search = _ridge_search(error_score="raise", return_train_score=True,
                           param_grid=None).fit(Xd, y, sample_weight=weight)
    # One pass over X (the 3 blocks' moments) for the tuning, every scoring fit of the
    # points and the refit.
    assert passes == [3]
    assert len(search.cv_results_["params"]) >= 2


def test_search_on_a_dask_array_runs_its_scoring_here(client):
    da = pytest.importorskip("dask.array")
    X, y, _ = _dask_problem()
    expected = _ridge_search(param_grid=None).fit(X, y)
    Xd, yd = da.from_array(X, chunks=(70, 6)), da.from_array(y, chunks=90)
    with joblib.parallel_config(backend="dask"):
        got = _ridge_search(n_jobs=2, param_grid=None).fit(Xd, yd)
    assert_allclose(got.best_params_["alpha"], expected.best_params_["alpha"], rtol=1e-6)
    assert_allclose(got.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"],
                    rtol=1e-8)


def test_search_on_a_dask_array_refuses_what_needs_the_rows():
    da = pytest.importorskip("dask.array")
    from sklearn.linear_model import LogisticRegression

    X, y, _ = _dask_problem()
    Xd = da.from_array(X, chunks=100)
    with pytest.raises(ValueError, match="bare sklearn Ridge only.*got Pipeline"):
        HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
                              {"ridge__alpha": (1e-2, 1e2)}).fit(Xd, y)
    with pytest.raises(ValueError, match="bare sklearn Ridge only.*got LogisticRegression"):
        HypergradientSearchCV(LogisticRegression(), {"C": (1e-2, 1e2)}).fit(Xd, y > 5)
    with pytest.raises(ValueError, match="partition the rows"):
        HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)},
                              cv=ShuffleSplit(3, random_state=0)).fit(Xd, y)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}).fit(
            Xd, y, sample_weight=da.ones(5))
    with pytest.raises(ValueError, match="NaN or infinity"):
        HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}).fit(
            Xd, da.from_array(np.where(np.arange(len(y)) == 7, np.nan, y), chunks=100))


def _unweighted_neg_mse(estimator, X, y):  # a scorer without sample_weight
    from sklearn.metrics import mean_squared_error

    return -mean_squared_error(y, estimator.predict(X))


def test_search_on_a_dask_array_with_an_unweighted_scorer(client, monkeypatch):
    da = pytest.importorskip("dask.array")
    import skbilevel._search_dask as search_dask

    X, y, weight = _dask_problem()
    passes, block_moments = [], search_dask.block_moments
    monkeypatch.setattr(search_dask, "block_moments",
                        lambda *args: passes.append(args[4]) or block_moments(*args))
    search = _ridge_search(param_grid=None, scoring=_unweighted_neg_mse)
    with pytest.warns(UserWarning, match="does not support sample_weight"):
        expected = clone(search).fit(X, y, sample_weight=weight)
        got = search.fit(da.from_array(X, chunks=(70, 6)), y, sample_weight=weight)
    # The training folds weighted, the validation errors not: the blocks' unweighted
    # moments by a second pass.
    assert passes == [3, 3]
    assert_allclose(got.best_params_["alpha"], expected.best_params_["alpha"], rtol=1e-6)
    assert_allclose(got.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"],
                    rtol=1e-8)
