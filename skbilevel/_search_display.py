"""``HypergradientSearchDisplay``: the CV curve and the path of a ``HypergradientSearchCV``."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils.validation import check_is_fitted

from ._search import HypergradientSearchCV
from .utils._sklearn_compat import _validate_score_name, check_matplotlib_support


class HypergradientSearchDisplay:
    """CV score against the tuned parameter, with the path a hypergradient search took.

    It is recommended to use :meth:`from_estimator` to create one from a fitted
    :class:`HypergradientSearchCV`. All parameters are stored as attributes; one entry of
    each list per combination of the search's ``param_grid`` (one entry without it).

    Parameters
    ----------
    param_name : str
        The continuous parameter on the x-axis (a key of the search's ``param_bounds``).
    combinations : list of dict
        The other parameters of each curve (``{}`` without a ``param_grid``).
    param_values : list of ndarray
        The evaluated values of ``param_name``, in evaluation order (``iter``).
    mean_scores, std_scores : list of ndarray
        ``mean_test_<metric>`` and ``std_test_<metric>`` of those points (std over folds).
    iters : list of ndarray
        ``cv_results_["iter"]`` of those points: their position in the search of their
        combination (the screening grid first).
    hypergradients : list of ndarray
        ``cv_results_["hypergradient"]`` (NaN where the point was evaluated without one).
    best_combination : int
        Index into ``combinations`` of the search's best point.
    best_param_value, best_score : float
        The search's best value of ``param_name`` and its mean CV score.
    score_name : str, default=None
        The y-axis label; None infers it from the scoring, as scikit-learn's displays do.
    grid_combinations, grid_param_values, grid_mean_scores, grid_std_scores : list or None
        The same, from a grid search drawn beside (each curve sorted by parameter value).

    Attributes
    ----------
    ax_ : matplotlib Axes
        Axes with the curves.
    figure_ : matplotlib Figure
        Figure containing the curves.
    lines_ : list of matplotlib Line2D
        The mean CV score of each combination through its evaluated points, sorted by
        parameter value.
    fill_between_ : list of matplotlib PolyCollection or None
        The mean ± std bands; None when ``std_display_style=None``.
    points_ : list of matplotlib Line2D
        The evaluated points in evaluation order (filled: with a hypergradient; hollow:
        screened without one).
    arrows_ : list of list of matplotlib Annotation
        For each combination, one arrow from each evaluated point to the next.
    best_ : matplotlib Line2D
        The best point (a star).
    grid_lines_ : list of matplotlib Line2D or None
        The grid search's curves, or None without one.

    See Also
    --------
    HypergradientSearchCV : The search whose results this plots.
    sklearn.model_selection.ValidationCurveDisplay : The same curve for a fixed grid.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbilevel import HypergradientSearchCV, HypergradientSearchDisplay
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
    ...                                {"ridge__alpha": (1e-4, 1e4)}).fit(X, y)
    >>> display = HypergradientSearchDisplay.from_estimator(search)
    >>> len(display.lines_)
    1
    """

    def __init__(self, *, param_name, combinations, param_values, mean_scores, std_scores,
                 iters, hypergradients, best_combination, best_param_value, best_score,
                 score_name=None, grid_combinations=None, grid_param_values=None,
                 grid_mean_scores=None, grid_std_scores=None):
        self.param_name = param_name
        self.combinations = combinations
        self.param_values = param_values
        self.mean_scores = mean_scores
        self.std_scores = std_scores
        self.iters = iters
        self.hypergradients = hypergradients
        self.best_combination = best_combination
        self.best_param_value = best_param_value
        self.best_score = best_score
        self.score_name = score_name
        self.grid_combinations = grid_combinations
        self.grid_param_values = grid_param_values
        self.grid_mean_scores = grid_mean_scores
        self.grid_std_scores = grid_std_scores

    @classmethod
    def from_estimator(cls, search, *, param_name=None, metric=None, grid_search=None,
                       ax=None, negate_score=False, score_name=None, **plot_kw):
        """Plot a fitted :class:`HypergradientSearchCV` (and a grid search beside it).

        Parameters
        ----------
        search : HypergradientSearchCV
            A fitted search; its ``cv_results_`` are what is plotted (fitted with
            ``score_screening=True``, they include the screening grid).
        param_name : str, default=None
            The key of ``param_bounds`` on the x-axis; None: the only one. With several
            continuous parameters the others vary along the path, so the curve is a
            projection.
        metric : str, default=None
            With multimetric scoring, the scorer's name (``mean_test_<metric>``); None: the
            ``refit`` metric.
        grid_search : fitted GridSearchCV or RandomizedSearchCV, default=None
            Its curve (``mean_test_<metric>`` against ``param_name``, one per combination
            of its other parameters) is drawn dashed beside the search's.
        ax : matplotlib Axes, default=None
            Axes to plot on; None creates a figure.
        negate_score : bool, default=False
            Plot minus the scores (e.g. the MSE of ``"neg_mean_squared_error"``).
        score_name : str, default=None
            The y-axis label; None infers it from the search's scoring.
        **plot_kw : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : HypergradientSearchDisplay
        """
        if not isinstance(search, HypergradientSearchCV):
            raise TypeError("search must be a fitted HypergradientSearchCV, got "
                            f"{type(search).__name__}")
        check_is_fitted(search, "cv_results_")
        param_name = _param_name(search, param_name)
        metric = _metric(search, metric, "search")
        rows = _grouped(search.cv_results_, param_name, set(search.param_bounds), metric)
        order = [np.argsort(r["iter"], kind="stable") for r in rows]
        best = search.cv_results_["params"][search.best_index_]
        others = {k: v for k, v in best.items() if k not in search.param_bounds}
        grid = {}
        if grid_search is not None:
            if not isinstance(grid_search, BaseSearchCV):
                raise TypeError("grid_search must be a fitted GridSearchCV or "
                                f"RandomizedSearchCV, got {type(grid_search).__name__}")
            check_is_fitted(grid_search, "cv_results_")
            if not any(param_name in p for p in grid_search.cv_results_["params"]):
                raise ValueError(f"grid_search did not search {param_name!r}")
            grid_rows = _grouped(grid_search.cv_results_, param_name, {param_name},
                                 _metric(grid_search, metric, "grid_search"))
            sort = [np.argsort(r["value"], kind="stable") for r in grid_rows]
            grid = {"grid_combinations": [r["combination"] for r in grid_rows],
                    **{f"grid_{name}": [r[key][s] for r, s in zip(grid_rows, sort)]
                       for name, key in (("param_values", "value"), ("mean_scores", "mean"),
                                         ("std_scores", "std"))}}
        scoring = search.scoring if metric == "score" else metric
        if isinstance(search.scoring, dict) and isinstance(search.scoring[metric], str):
            scoring = search.scoring[metric]  # the scorer's name, not the user's key
        display = cls(
            param_name=param_name, combinations=[r["combination"] for r in rows],
            param_values=[r["value"][o] for r, o in zip(rows, order)],
            mean_scores=[r["mean"][o] for r, o in zip(rows, order)],
            std_scores=[r["std"][o] for r, o in zip(rows, order)],
            iters=[r["iter"][o] for r, o in zip(rows, order)],
            hypergradients=[r["hypergradient"][o] for r, o in zip(rows, order)],
            best_combination=[r["combination"] for r in rows].index(others),
            best_param_value=float(best[param_name]),
            best_score=float(search.cv_results_[f"mean_test_{metric}"][search.best_index_]),
            score_name=_validate_score_name(score_name, scoring, negate_score), **grid)
        return display.plot(ax=ax, negate_score=negate_score, **plot_kw)

    def plot(self, ax=None, *, negate_score=False, score_name=None, xscale=None,
             std_display_style="fill_between", line_kw=None, fill_between_kw=None,
             arrow_kw=None, grid_line_kw=None):
        """Plot the curves, the paths and the best point.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to plot on; None creates a figure.
        negate_score : bool, default=False
            Plot minus the scores.
        score_name : str, default=None
            The y-axis label; None: ``self.score_name``.
        xscale : {"log", "linear"}, default=None
            None: "log" when every value is positive and they span more than a decade.
        std_display_style : {"fill_between"} or None, default="fill_between"
            Whether to shade mean ± std of each curve.
        line_kw, fill_between_kw, arrow_kw, grid_line_kw : dict, default=None
            Passed to ``ax.plot`` (curves), ``ax.fill_between`` (bands), the arrows'
            ``arrowprops`` and ``ax.plot`` (the grid's curves).

        Returns
        -------
        display : HypergradientSearchDisplay
        """
        check_matplotlib_support(f"{type(self).__name__}.plot")
        import matplotlib.pyplot as plt

        if std_display_style not in ("fill_between", None):
            raise ValueError("std_display_style must be 'fill_between' or None, got "
                             f"{std_display_style!r}")
        if xscale not in ("log", "linear", None):
            raise ValueError(f"xscale must be 'log', 'linear' or None, got {xscale!r}")
        if ax is None:
            _, ax = plt.subplots()
        sign = -1.0 if negate_score else 1.0
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        self.lines_, self.points_, self.arrows_ = [], [], []
        self.fill_between_ = [] if std_display_style else None
        for c, combination in enumerate(self.combinations):
            color = colors[c % len(colors)]
            value = np.asarray(self.param_values[c], dtype=float)
            mean = sign * np.asarray(self.mean_scores[c], dtype=float)
            std = np.asarray(self.std_scores[c], dtype=float)
            s = np.argsort(value, kind="stable")
            label = _label(combination) or "hypergradient search"
            self.lines_.append(ax.plot(value[s], mean[s], label=label,
                                       **{"color": color, **(line_kw or {})})[0])
            if std_display_style:
                self.fill_between_.append(ax.fill_between(
                    value[s], mean[s] - std[s], mean[s] + std[s],
                    **{"color": color, "alpha": 0.2, **(fill_between_kw or {})}))
            screened = np.isnan(np.asarray(self.hypergradients[c], dtype=float))
            self.points_.append(ax.plot(value, mean, "o", color=color, markersize=5,
                                        markerfacecolor="none")[0])
            ax.plot(value[~screened], mean[~screened], "o", color=color, markersize=5)
            # One arrow per step of the path, in evaluation order.
            props = {"arrowstyle": "->", "color": color, "lw": 1.0, **(arrow_kw or {})}
            self.arrows_.append([
                ax.annotate("", xy=(value[i + 1], mean[i + 1]), xytext=(value[i], mean[i]),
                            arrowprops=props) for i in range(len(value) - 1)])
        self.best_ = ax.plot([self.best_param_value], [sign * self.best_score], "*",
                             color="black", markersize=14, label="best", zorder=5)[0]
        self.grid_lines_ = None
        if self.grid_param_values is not None:
            self.grid_lines_ = []
            for g, combination in enumerate(self.grid_combinations):
                match = [c for c, other in enumerate(self.combinations) if other == combination]
                kw = {"linestyle": "--", "marker": ".", "alpha": 0.7,
                      "color": colors[match[0] % len(colors)] if match else "gray"}
                label = "grid search" + (f" {_label(combination)}" if combination else "")
                self.grid_lines_.append(ax.plot(
                    self.grid_param_values[g], sign * np.asarray(self.grid_mean_scores[g]),
                    label=label, **{**kw, **(grid_line_kw or {})})[0])
        if xscale is None:
            values = np.concatenate([np.asarray(v, dtype=float) for v in self.param_values])
            xscale = "log" if values.min() > 0 and values.max() > 10 * values.min() \
                else "linear"
        ax.set_xscale(xscale)
        ax.set_xlabel(self.param_name)
        ax.set_ylabel(self.score_name if score_name is None else score_name)
        ax.legend()
        self.ax_, self.figure_ = ax, ax.figure
        return self


def _param_name(search, param_name):
    keys = list(search.param_bounds)
    if param_name is None:
        if len(keys) != 1:
            raise ValueError(f"param_name must name one of {keys} (the search tunes several)")
        return keys[0]
    if param_name not in keys:
        raise ValueError(f"param_name must be one of {keys}, got {param_name!r}")
    return param_name


def _metric(search, metric, name):
    """The ``<metric>`` of ``mean_test_<metric>`` in ``search.cv_results_``."""
    if not search.multimetric_:
        if metric not in (None, "score"):
            raise ValueError(f"{name} has one metric ('score'), got metric={metric!r}")
        return "score"
    if metric is None:
        if not isinstance(search.refit, str):
            raise ValueError(f"{name} reports several metrics: pass metric= (one of "
                             f"{sorted(search.scorer_)})")
        return search.refit
    if metric not in search.scorer_:
        raise ValueError(f"metric must be one of {sorted(search.scorer_)}, got {metric!r}")
    return metric


def _grouped(results, param_name, continuous, metric):
    """The rows of ``results`` that vary ``param_name``, grouped by the other parameters."""
    groups = {}
    for i, params in enumerate(results["params"]):
        if param_name not in params:
            continue
        combination = {k: v for k, v in params.items() if k not in continuous}
        groups.setdefault(repr(sorted(combination.items(), key=str)),
                          (combination, []))[1].append(i)
    out = []
    for combination, rows in groups.values():
        rows = np.asarray(rows)
        out.append({
            "combination": combination,
            "value": np.asarray([results["params"][i][param_name] for i in rows], float),
            "mean": np.asarray(results[f"mean_test_{metric}"], float)[rows],
            "std": np.asarray(results[f"std_test_{metric}"], float)[rows],
            "iter": np.asarray(results["iter"])[rows] if "iter" in results else rows,
            "hypergradient": (np.asarray(results["hypergradient"], float)[rows]
                              if "hypergradient" in results else np.full(len(rows), np.nan)),
        })
    return out


def _label(combination):
    return ", ".join(f"{k}={v}" for k, v in combination.items())
