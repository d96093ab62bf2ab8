"""HypergradientSearchDisplay: it plots cv_results_, path and best point of a search."""

import numpy as np
import pytest
from sklearn.datasets import make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from skbilevel import HypergradientSearchCV, HypergradientSearchDisplay

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CV = KFold(4, shuffle=True, random_state=0)
KEY = "ridge__alpha"


@pytest.fixture(scope="module")
def data():
    return make_regression(n_samples=80, n_features=5, n_informative=3, noise=15.0,
                           random_state=0)


@pytest.fixture(scope="module")
def search(data):
    """Two combinations (degree 1 and 2), each with its own path."""
    pipe = make_pipeline(StandardScaler(), PolynomialFeatures(), Ridge())
    return HypergradientSearchCV(pipe, {KEY: (1e-3, 1e3)}, cv=CV,
                                 param_grid={"polynomialfeatures__degree": [1, 2]},
                                 scoring="neg_mean_squared_error",
                                 score_screening=True).fit(*data)


@pytest.fixture(scope="module")
def grid(data):
    pipe = make_pipeline(StandardScaler(), PolynomialFeatures(), Ridge())
    return GridSearchCV(pipe, {KEY: np.logspace(-3, 3, 13),
                               "polynomialfeatures__degree": [1, 2]},
                        cv=CV, scoring="neg_mean_squared_error").fit(*data)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_data_are_cv_results(search):
    display = HypergradientSearchDisplay.from_estimator(search)
    results = search.cv_results_
    assert display.param_name == KEY
    assert display.combinations == [{"polynomialfeatures__degree": 1},
                                    {"polynomialfeatures__degree": 2}]
    for c, degree in enumerate((1, 2)):
        rows = np.flatnonzero(results["param_polynomialfeatures__degree"] == degree)
        rows = rows[np.argsort(results["iter"][rows], kind="stable")]
        # Evaluation order, strictly increasing iter (the path), every row exactly once.
        assert np.all(np.diff(display.iters[c]) > 0)
        np.testing.assert_array_equal(display.iters[c], results["iter"][rows])
        np.testing.assert_array_equal(display.param_values[c],
                                      [results["params"][i][KEY] for i in rows])
        np.testing.assert_array_equal(display.mean_scores[c], results["mean_test_score"][rows])
        np.testing.assert_array_equal(display.std_scores[c], results["std_test_score"][rows])
        np.testing.assert_array_equal(display.hypergradients[c],
                                      np.asarray(results["hypergradient"], float)[rows])
        # The curve joins the same points sorted by value; the band is mean +- std.
        line = display.lines_[c]
        s = np.argsort(display.param_values[c])
        np.testing.assert_array_equal(line.get_xdata(), display.param_values[c][s])
        np.testing.assert_array_equal(line.get_ydata(), display.mean_scores[c][s])
        band = display.fill_between_[c].get_paths()[0].vertices
        top = display.mean_scores[c][s] + display.std_scores[c][s]
        assert np.isin(np.round(top, 8), np.round(band[:, 1], 8)).all()
        # One arrow per step, from each point to the next one evaluated.
        arrows = display.arrows_[c]
        assert len(arrows) == len(rows) - 1
        assert arrows[0].xy == (display.param_values[c][1], display.mean_scores[c][1])
        assert arrows[0].xyann == (display.param_values[c][0], display.mean_scores[c][0])
    best = search.best_index_
    assert display.combinations[display.best_combination] == {
        "polynomialfeatures__degree": search.best_params_["polynomialfeatures__degree"]}
    assert display.best_param_value == search.best_params_[KEY]
    assert display.best_score == results["mean_test_score"][best] == search.best_score_
    np.testing.assert_array_equal(display.best_.get_xydata(),
                                  [[search.best_params_[KEY], search.best_score_]])


def test_attributes_labels_and_negation(search):
    _, ax = plt.subplots()
    display = HypergradientSearchDisplay.from_estimator(search, ax=ax, negate_score=True)
    assert display.ax_ is ax and display.figure_ is ax.figure
    assert ax.get_xscale() == "log" and ax.get_xlabel() == KEY
    assert ax.get_ylabel() == "Mean squared error"  # scikit-learn's displays' naming
    assert display.grid_lines_ is None
    s = np.argsort(display.param_values[0])
    np.testing.assert_array_equal(display.lines_[0].get_ydata(), -display.mean_scores[0][s])
    assert display.best_.get_ydata()[0] == -search.best_score_
    # Re-plotting from the stored data, with no band.
    display.plot(std_display_style=None, xscale="linear")
    assert display.fill_between_ is None and display.ax_ is not ax
    assert display.ax_.get_xscale() == "linear"


def test_grid_search_beside(search, grid):
    display = HypergradientSearchDisplay.from_estimator(search, grid_search=grid)
    results = grid.cv_results_
    assert display.grid_combinations == display.combinations
    for g, degree in enumerate((1, 2)):
        rows = np.flatnonzero(results["param_polynomialfeatures__degree"] == degree)
        values = np.array([results["params"][i][KEY] for i in rows])
        s = np.argsort(values)
        np.testing.assert_array_equal(display.grid_lines_[g].get_xdata(), values[s])
        np.testing.assert_array_equal(display.grid_lines_[g].get_ydata(),
                                      results["mean_test_score"][rows][s])
        # Same colour as the search's curve of the same combination.
        assert display.grid_lines_[g].get_color() == display.lines_[g].get_color()
    # The search's best is no worse than any grid point (the grid is inside its bounds).
    assert display.best_score >= max(m.max() for m in display.grid_mean_scores) - 1e-9


def test_multimetric_picks_the_refit_metric(data):
    search = HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
                                   {KEY: (1e-2, 1e2)}, cv=CV, refit="mse",
                                   scoring={"mse": "neg_mean_squared_error", "r2": "r2"}
                                   ).fit(*data)
    display = HypergradientSearchDisplay.from_estimator(search)
    np.testing.assert_array_equal(np.sort(display.mean_scores[0]),
                                  np.sort(search.cv_results_["mean_test_mse"]))
    assert display.ax_.get_ylabel() == "Negative mean squared error"
    r2 = HypergradientSearchDisplay.from_estimator(search, metric="r2")
    np.testing.assert_array_equal(np.sort(r2.mean_scores[0]),
                                  np.sort(search.cv_results_["mean_test_r2"]))
    with pytest.raises(ValueError, match="metric must be one of"):
        HypergradientSearchDisplay.from_estimator(search, metric="accuracy")


def test_clear_errors(data, search, grid):
    unfitted = HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)})
    with pytest.raises(NotFittedError):
        HypergradientSearchDisplay.from_estimator(unfitted)
    with pytest.raises(TypeError, match="search must be a fitted HypergradientSearchCV"):
        HypergradientSearchDisplay.from_estimator(grid)
    with pytest.raises(TypeError, match="search must be a fitted HypergradientSearchCV"):
        HypergradientSearchDisplay.from_estimator(Ridge())
    with pytest.raises(TypeError, match="grid_search must be"):
        HypergradientSearchDisplay.from_estimator(search, grid_search=Ridge())
    with pytest.raises(NotFittedError):
        HypergradientSearchDisplay.from_estimator(
            search, grid_search=GridSearchCV(Ridge(), {"alpha": [1.0]}))
    other = GridSearchCV(Ridge(), {"alpha": [1.0, 2.0]}, cv=CV).fit(*data)
    with pytest.raises(ValueError, match="grid_search did not search 'ridge__alpha'"):
        HypergradientSearchDisplay.from_estimator(search, grid_search=other)
    with pytest.raises(ValueError, match="param_name must be one of"):
        HypergradientSearchDisplay.from_estimator(search, param_name="alpha")
    with pytest.raises(ValueError, match="std_display_style"):
        HypergradientSearchDisplay.from_estimator(search, std_display_style="errorbar")
