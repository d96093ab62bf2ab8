"""
Replacing a ``GridSearchCV`` line by ``HypergradientSearchCV``
==============================================================

A usual model-selection line tunes the penalty of the last step of a pipeline over a
log-spaced grid::

    GridSearchCV(pipe, {"ridge__alpha": np.logspace(-4, 4, 41)}, cv=cv)

:class:`~skbilevel.HypergradientSearchCV` takes the same pipeline and the *bounds* of the
penalty instead of a grid: it screens one point per decade, then follows the exact
gradient of the cross-validated error with respect to ``log(alpha)`` (the hypergradient).
Every point it evaluates is scored by scikit-learn's own machinery, so ``cv_results_``,
``best_params_`` and ``best_estimator_`` are the ones ``GridSearchCV`` would give.

See the :ref:`User Guide <search_guide>` for what is differentiated and how.
"""

# %%
# The pipeline and the folds
# --------------------------
# The diabetes data (442 patients, 10 features), standardised, with all degree-2
# polynomial features (65 columns), then a ridge. The scaler and the polynomial features are
# fitted on each training fold only, by both searches. Both use the same five folds.
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small fits are faster on one thread

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from skbilevel import HypergradientSearchCV, HypergradientSearchDisplay

torch.set_num_threads(1)
X, y = load_diabetes(return_X_y=True)
pipe = make_pipeline(StandardScaler(), PolynomialFeatures(2), Ridge())
cv = KFold(n_splits=5, shuffle=True, random_state=0)

# %%
# The two searches
# ----------------
# The grid has 41 points over eight decades. The hypergradient search is given the same
# eight decades as bounds. (The first torch computation pays a one-time start-up cost,
# paid here before timing.)
HypergradientSearchCV(Ridge(), {"alpha": (1e-2, 1e2)}, cv=3).fit(X[:60], y[:60])

grid = GridSearchCV(pipe, {"ridge__alpha": np.logspace(-4, 4, 41)}, cv=cv,
                    scoring="neg_mean_squared_error")
search = HypergradientSearchCV(pipe, {"ridge__alpha": (1e-4, 1e4)}, cv=cv,
                               scoring="neg_mean_squared_error")
for name, estimator in (("GridSearchCV", grid), ("HypergradientSearchCV", search)):
    start = time.perf_counter()
    estimator.fit(X, y)
    seconds = time.perf_counter() - start
    print(f"{name:22s} alpha={estimator.best_params_['ridge__alpha']:8.4g}  "
          f"CV MSE={-estimator.best_score_:8.2f}  "
          f"{len(estimator.cv_results_['params']):2d} points evaluated  {seconds:5.2f} s")

# %%
# The hypergradient search evaluates about a quarter of the grid's points and lands between
# two of them, at a CV error no worse than the grid's best. Its time is mostly
# scikit-learn's own scoring of those points (each fitted on every fold), which is what
# makes ``cv_results_`` identical in meaning to the grid's.
#
# What it evaluated
# -----------------
# ``cv_results_`` has the grid search's columns plus ``iter`` (the order of evaluation:
# the screening grid first, then the hypergradient steps) and ``hypergradient`` (the
# derivative of the CV error with respect to ``log(alpha)``; NaN where a point was
# screened without one).
results = search.cv_results_
for i in np.argsort(results["iter"]):
    print(f"iter {results['iter'][i]:2d}  alpha={results['param_ridge__alpha'][i]:10.4g}  "
          f"CV MSE={-results['mean_test_score'][i]:8.2f}  "
          f"d CV / d log(alpha)={results['hypergradient'][i]:+9.3g}")

# %%
# The display
# -----------
# :class:`~skbilevel.HypergradientSearchDisplay` plots the CV error of the evaluated points
# with its spread over the folds, the path (arrows, in evaluation order; hollow markers are
# screened points), the best point, and the grid's curve beside it.
display = HypergradientSearchDisplay.from_estimator(search, grid_search=grid,
                                                    negate_score=True)
display.ax_.set_yscale("log")
display.ax_.set_title("CV error of a scaler + degree-2 features + ridge pipeline")
plt.show()

# %%
# Zooming on the minimum shows the hypergradient steps between the grid's points.
best = search.best_params_["ridge__alpha"]
display.ax_.set_xlim(best / 10, best * 10)
low = -max(results["mean_test_score"].max(), grid.cv_results_["mean_test_score"].max())
display.ax_.set_ylim(0.98 * low, 1.05 * low)
display.figure_
