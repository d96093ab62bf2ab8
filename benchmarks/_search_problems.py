"""Problems of ``bench_search.py``: pipelines, bounds, grids and distributions per method.

Every problem is a scikit-learn pipeline ending in the model whose penalty is searched, a
train / test split, fixed folds, a scoring, the continuous parameters' bounds (log scale
for penalties, linear for ``l1_ratio``) and optionally a ``param_grid`` of discrete ones.
The opponents' grids and distributions are built from the same bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import loguniform, uniform
from sklearn.datasets import (load_breast_cancer, load_diabetes, load_wine, make_classification,
                              make_regression)
from sklearn.linear_model import ElasticNet, LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

N_GRID = 41  # points per log-scale parameter of GridSearchCV


@dataclass
class Problem:
    name: str
    pipe: object
    X: np.ndarray
    y: np.ndarray
    bounds: dict  # name -> (low, high)
    scoring: str
    classifier: bool
    param_grid: dict = field(default_factory=dict)
    linear: tuple = ()  # bounded parameters on a linear scale
    n_linear_grid: int = N_GRID

    def split(self):
        X_tr, X_te, y_tr, y_te = train_test_split(
            self.X, self.y, test_size=0.25, random_state=0,
            stratify=self.y if self.classifier else None)
        splitter = (StratifiedKFold if self.classifier else KFold)(5, shuffle=True,
                                                                    random_state=0)
        return X_tr, X_te, y_tr, y_te, list(splitter.split(X_tr, y_tr))

    def grid(self):
        """GridSearchCV's grid: 41 log-spaced points per penalty (linear for l1_ratio)."""
        grid = {k: (np.linspace(lo, hi, self.n_linear_grid) if k in self.linear
                    else np.geomspace(lo, hi, N_GRID)) for k, (lo, hi) in self.bounds.items()}
        return {**grid, **self.param_grid}

    def distributions(self):
        """RandomizedSearchCV's: log-uniform over the bounds (uniform for l1_ratio)."""
        out = {k: (uniform(lo, hi - lo) if k in self.linear else loguniform(lo, hi))
               for k, (lo, hi) in self.bounds.items()}
        return {**out, **{k: list(v) for k, v in self.param_grid.items()}}

    def optuna_distributions(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution
        out = {k: FloatDistribution(lo, hi, log=k not in self.linear)
               for k, (lo, hi) in self.bounds.items()}
        return {**out, **{k: CategoricalDistribution(list(v))
                          for k, v in self.param_grid.items()}}

    def n_grid_points(self):
        return int(np.prod([len(v) for v in self.grid().values()]))

    @property
    def keys(self):
        return (*self.bounds, *self.param_grid)


def _poly(model, degree=2):
    return make_pipeline(StandardScaler(), PolynomialFeatures(degree), model)


def _synthetic_regression(n):
    X, y = make_regression(n, 10, n_informative=6, noise=30.0, random_state=0)
    X[:, :3] = X[:, :3] ** 2  # a nonlinear signal the degree-2 features can fit
    return X, y + X[:, 0] * X[:, 1]


RIDGE = {"ridge__alpha": (1e-4, 1e4)}
LOGISTIC = {"logisticregression__C": (1e-4, 1e4)}


def _logistic():
    # max_iter=1000: scikit-learn's fits at large C are converged, so the scores are those
    # of the optimum each method chose (the default 100 stops early there).
    return LogisticRegression(max_iter=1000)


def problems(sizes_ridge=(1_000, 20_000, 200_000), sizes_logistic=(1_000, 20_000),
             enet_l1_points=11):
    """``{name: factory}``; each factory builds its Problem (data loaded on demand)."""
    out = {
        "diabetes ridge": lambda: Problem(
            "diabetes ridge", _poly(Ridge()), *load_diabetes(return_X_y=True), RIDGE,
            "neg_mean_squared_error", False),
        "wine logistic": lambda: Problem(
            "wine logistic", _poly(_logistic()), *load_wine(return_X_y=True), LOGISTIC,
            "neg_log_loss", True),
        "breast_cancer logistic (degree 1)": lambda: Problem(
            "breast_cancer logistic (degree 1)",
            make_pipeline(StandardScaler(), _logistic()),
            *load_breast_cancer(return_X_y=True), LOGISTIC, "neg_log_loss", True),
    }
    for n in sizes_ridge:
        out[f"synthetic ridge n={n}"] = lambda n=n: Problem(
            f"synthetic ridge n={n}", _poly(Ridge()), *_synthetic_regression(n), RIDGE,
            "neg_mean_squared_error", False)
    for n in sizes_logistic:
        out[f"synthetic logistic n={n}"] = lambda n=n: Problem(
            f"synthetic logistic n={n}", _poly(_logistic()),
            *make_classification(n, 10, n_informative=6, random_state=0), LOGISTIC,
            "neg_log_loss", True)
    out["diabetes elastic net"] = lambda: Problem(
        "diabetes elastic net", _poly(ElasticNet(max_iter=10_000)),
        *load_diabetes(return_X_y=True),
        {"elasticnet__alpha": (1e-4, 1e1), "elasticnet__l1_ratio": (0.05, 1.0)},
        "neg_mean_squared_error", False, linear=("elasticnet__l1_ratio",),
        n_linear_grid=enet_l1_points)
    out["diabetes ridge, degree in {1,2,3}"] = lambda: Problem(
        "diabetes ridge, degree in {1,2,3}",
        make_pipeline(StandardScaler(), PolynomialFeatures(), Ridge()),
        *load_diabetes(return_X_y=True), RIDGE, "neg_mean_squared_error", False,
        param_grid={"polynomialfeatures__degree": [1, 2, 3]})
    # Cheap rows first, the largest last: the report is rewritten after every problem.
    return dict(sorted(out.items(), key=lambda item: _size(item[0])))


def _size(name):
    return int(name.split("n=")[1]) if "n=" in name else 0
