"""HypergradientSearchCV: scikit-learn's search machinery around a hypergradient path."""

import pickle

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import Lars, Lasso, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from skbilevel import HypergradientSearchCV

CV = KFold(5, shuffle=True, random_state=0)


@pytest.fixture(scope="module")
def regression():
    return make_regression(n_samples=120, n_features=15, n_informative=6, noise=20.0,
                           random_state=0)


@pytest.fixture(scope="module")
def ridge_search(regression):
    X, y = regression
    return HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
                                 {"ridge__alpha": (1e-4, 1e4)}, cv=CV,
                                 scoring="neg_mean_squared_error").fit(X, y)


def test_ridge_pipeline_at_least_as_good_as_the_grid(regression, ridge_search):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), Ridge())
    grid = GridSearchCV(pipe, {"ridge__alpha": np.logspace(-4, 4, 41)}, cv=CV,
                        scoring="neg_mean_squared_error").fit(X, y)
    # The grid's points are a subset of the box the hypergradient searches continuously.
    assert ridge_search.best_score_ >= grid.best_score_ - 1e-9 * abs(grid.best_score_)
    # A dense grid (0.01 decade) around the 41-point grid's best locates the CV optimum.
    center = np.log10(grid.best_params_["ridge__alpha"])
    dense = GridSearchCV(pipe, {"ridge__alpha": np.logspace(center - 0.2, center + 0.2, 41)},
                         cv=CV, scoring="neg_mean_squared_error").fit(X, y)
    found = ridge_search.best_params_["ridge__alpha"]
    assert abs(np.log10(found / dense.best_params_["ridge__alpha"])) < 0.015
    # ... and reaches its score up to the search's relative tolerance (tol=1e-6).
    assert ridge_search.best_score_ >= dense.best_score_ - 2e-6 * abs(dense.best_score_)
    # Far fewer candidates than the grid (each scored by scikit-learn on every fold).
    assert len(ridge_search.cv_results_["params"]) < 20


def test_cv_results_are_scikit_learns_plus_the_path(regression, ridge_search):
    X, y = regression
    results = ridge_search.cv_results_
    reference = GridSearchCV(make_pipeline(StandardScaler(), Ridge()),
                             {"ridge__alpha": [1.0]}, cv=CV,
                             scoring="neg_mean_squared_error").fit(X, y).cv_results_
    assert set(results) == set(reference) | {"iter", "hypergradient"}
    assert ridge_search.n_splits_ == 5
    n = len(results["params"])
    assert results["iter"].shape == results["hypergradient"].shape == (n,)
    # Only the hypergradient search's points are scored (score_screening=False): each has
    # a gradient, smallest at the best (a flat CV curve: the search stops on the
    # predicted decrease, tol, not on the gradient).
    grads = np.asarray(results["hypergradient"], dtype=float)
    assert np.isfinite(grads).all() and n < ridge_search.n_iter_ - 8
    assert abs(grads[ridge_search.best_index_]) == np.nanmin(np.abs(grads))
    assert abs(grads[ridge_search.best_index_]) < 0.2 * np.nanmax(np.abs(grads))
    assert results["rank_test_score"][ridge_search.best_index_] == 1
    # The scores are scikit-learn's: refitting one candidate by hand gives its fold score.
    i = ridge_search.best_index_
    train, test = next(CV.split(X))
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=results["params"][i]["ridge__alpha"]))
    pred = pipe.fit(X[train], y[train]).predict(X[test])
    assert results["split0_test_score"][i] == pytest.approx(-np.mean((pred - y[test]) ** 2))


def test_path_holds_every_engine_evaluation(regression, ridge_search):
    X, y = regression
    path = ridge_search.path_
    assert len(path) == ridge_search.n_iter_
    # The screening grid: 9 points, one per decade of the bounds, unscored, no gradient.
    assert [p["scored"] for p in path[:9]].count(False) >= 8
    assert all(np.isnan(p["hypergradient"]["alpha"]) for p in path[:8])
    # The engine's criterion is scikit-learn's CV mean squared error (closed-form fits):
    # every scored point's objective is minus its mean test score.
    results = ridge_search.cv_results_
    scored = {p["params"]["ridge__alpha"]: p["objective"] for p in path if p["scored"]}
    assert len(scored) == len(results["params"])
    for params, score in zip(results["params"], results["mean_test_score"]):
        assert scored[params["ridge__alpha"]] == pytest.approx(-score, rel=1e-9)
    # score_screening=True scores the screening grid too, with the same path.
    full = clone(ridge_search).set_params(score_screening=True).fit(X, y)
    assert len(full.cv_results_["params"]) == len({p["params"]["ridge__alpha"]
                                                    for p in path})
    assert np.isnan(np.asarray(full.cv_results_["hypergradient"][:9], float)).sum() == 8
    assert full.best_params_ == ridge_search.best_params_
    assert [p["objective"] for p in full.path_] == [p["objective"] for p in path]


def test_refit_gives_a_fitted_pipeline(regression, ridge_search):
    X, y = regression
    best = ridge_search.best_estimator_
    assert isinstance(best, Pipeline)
    assert best[-1].alpha == ridge_search.best_params_["ridge__alpha"]
    np.testing.assert_allclose(ridge_search.predict(X), best.predict(X))
    expected = make_pipeline(StandardScaler(), Ridge(alpha=best[-1].alpha)).fit(X, y)
    np.testing.assert_allclose(best[-1].coef_, expected[-1].coef_)


class RowRecorder(TransformerMixin, BaseEstimator):
    """Identity that records the ids (first column) of the rows it was fitted on."""

    fitted_on = []

    def fit(self, X, y=None):
        RowRecorder.fitted_on.append(frozenset(np.asarray(X)[:, 0].astype(int)))
        self.fitted_ = True
        return self

    def transform(self, X):
        return np.asarray(X)[:, 1:]


def test_prefix_fitted_on_training_folds_only(regression):
    X, y = regression
    X_ids = np.column_stack([np.arange(len(X)), X])
    RowRecorder.fitted_on.clear()
    HypergradientSearchCV(make_pipeline(RowRecorder(), Ridge()), {"ridge__alpha": (1e-2, 1e2)},
                          cv=CV, max_iter=3).fit(X_ids, y)
    train_sets = [frozenset(tr) for tr, _ in CV.split(X)]
    everyone = frozenset(range(len(X)))
    assert set(RowRecorder.fitted_on) == set(train_sets) | {everyone}  # the refit: all
    # The hypergradient search fitted the prefix once per fold (the rest is scikit-learn's
    # scoring: once per fold and candidate, and the refit).
    n_candidates = len(RowRecorder.fitted_on) - 1 - len(train_sets)
    assert n_candidates % len(train_sets) == 0


def test_r2_and_param_grid(regression):
    X, y = regression
    pipe = make_pipeline(StandardScaler(), PolynomialFeatures(), Ridge())
    search = HypergradientSearchCV(pipe, {"ridge__alpha": (1e-3, 1e3)},
                                   param_grid={"polynomialfeatures__degree": [1, 2]},
                                   cv=CV, scoring="r2").fit(X, y)
    degrees = np.asarray(search.cv_results_["param_polynomialfeatures__degree"])
    assert set(degrees) == {1, 2}
    for degree in (1, 2):  # each combination tuned at least as well as a grid
        grid = GridSearchCV(pipe.set_params(polynomialfeatures__degree=degree),
                            {"ridge__alpha": np.logspace(-3, 3, 13)}, cv=CV,
                            scoring="r2").fit(X, y)
        best = search.cv_results_["mean_test_score"][degrees == degree].max()
        assert best >= grid.best_score_ - 1e-9


def test_logistic_pipeline_neg_log_loss():
    X, y = make_classification(n_samples=150, n_features=6, n_informative=3, random_state=0)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=10000, tol=1e-8))
    search = HypergradientSearchCV(pipe, {"logisticregression__C": (1e-3, 1e3)}, cv=cv,
                                   scoring=["neg_log_loss", "accuracy"],
                                   refit="neg_log_loss").fit(X, y)
    grid = GridSearchCV(pipe, {"logisticregression__C": np.logspace(-3, 3, 13)}, cv=cv,
                        scoring="neg_log_loss").fit(X, y)
    assert search.best_score_ >= grid.best_score_ - 1e-7
    assert "mean_test_accuracy" in search.cv_results_ and search.multimetric_
    assert search.best_estimator_.predict_proba(X).shape == (150, 2)


@pytest.mark.parametrize("estimator, bounds, match", [
    (Lars(), {"alpha": (1e-2, 1.0)}, "supports Ridge .'alpha'., LogisticRegression .'C'."),
    (make_pipeline(StandardScaler(), Ridge()), {"alpha": (1e-2, 1.0)}, "'ridge__alpha'"),
    (Ridge(), {"alpha": (1.0, 1e-2)}, "0 < low < high"),
    (LogisticRegression(l1_ratio=1.0, solver="saga"), {"C": (1e-2, 1.0)}, "L2 penalty"),
    (LogisticRegression(class_weight="balanced"), {"C": (1e-2, 1.0)}, "class_weight"),
])
def test_clear_errors(regression, estimator, bounds, match):
    X, y = regression
    with pytest.raises(ValueError, match=match):
        HypergradientSearchCV(estimator, bounds).fit(X, y)


def test_shuffling_splitter_needs_a_random_state(regression):
    X, y = regression
    search = HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, cv=KFold(3, shuffle=True))
    with pytest.raises(ValueError, match="random_state to an int"):
        search.fit(X, y)


def test_clone_and_pickle(regression, ridge_search):
    X, _ = regression
    params = ridge_search.get_params(deep=False)
    assert clone(ridge_search).get_params(deep=False).keys() == params.keys()
    restored = pickle.loads(pickle.dumps(ridge_search))
    np.testing.assert_array_equal(restored.predict(X), ridge_search.predict(X))
    assert not hasattr(ridge_search, "_search_data")  # dropped once fit returns


class PicklingSearch(HypergradientSearchCV):
    """Pickles itself mid-search, as scikit-learn >= 1.9 does into every scoring task."""

    def _run_search(self, evaluate_candidates):
        self.pickled_ = len(pickle.dumps(self))
        restored = pickle.loads(pickle.dumps(self))
        assert not hasattr(restored, "_search_data") and hasattr(self, "_search_data")
        super()._run_search(evaluate_candidates)


def test_running_search_pickles_without_its_data(regression):
    X, y = regression
    search = PicklingSearch(Ridge(), {"alpha": (1e-2, 1e2)}, cv=3).fit(X, y)
    assert search.pickled_ < 10_000  # X alone is ~14 kB


@pytest.mark.parametrize("estimator, bounds, scoring", [
    (Ridge(), {"alpha": (1e-3, 1e3)}, "neg_mean_squared_error"),
    (Ridge(), {"alpha": (1e-3, 1e3)}, "r2"),
    (Lasso(max_iter=100_000, tol=1e-10), {"alpha": (1e-2, 1e2)}, "r2"),
    (LogisticRegression(tol=1e-10, max_iter=10_000), {"C": (1e-2, 1e2)}, "neg_log_loss"),
])
def test_top_level_sample_weight_weights_the_tuned_criterion(estimator, bounds, scoring):
    # scikit-learn (>= 1.9) passes fit's sample_weight to the scorers too: the criterion the
    # engine tunes must be the weighted score scikit-learn reports.
    if isinstance(estimator, LogisticRegression):
        X, y = make_classification(n_samples=150, n_features=6, random_state=0)
    else:
        X, y = make_regression(n_samples=120, n_features=8, noise=10.0, random_state=0)
    weight = np.random.default_rng(0).uniform(0.1, 3.0, len(y))
    search = HypergradientSearchCV(estimator, bounds, cv=CV, scoring=scoring).fit(
        X, y, sample_weight=weight)
    results = search.cv_results_
    engine = {p["params"][next(iter(bounds))]: p["objective"] for p in search.path_
              if p["scored"]}
    for params, score in zip(results["params"], results["mean_test_score"]):
        objective = engine[params[next(iter(bounds))]]
        expected = 1.0 - score if scoring == "r2" else -score
        assert objective == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("key, estimator", [
    ("sample_weight", Ridge()),
    ("ridge__sample_weight", make_pipeline(StandardScaler(), Ridge())),
])
@pytest.mark.parametrize("weight, match", [
    (np.r_[np.nan, np.ones(119)], "sample_weight"),
    (np.ones(119), "sample_weight"),
])
def test_bad_sample_weight_is_refused_by_name(regression, key, estimator, weight, match):
    X, y = regression
    bounds = {"alpha" if key == "sample_weight" else "ridge__alpha": (1e-2, 1e2)}
    with pytest.raises(ValueError, match=match):
        HypergradientSearchCV(estimator, bounds, cv=3).fit(X, y, **{key: weight})
