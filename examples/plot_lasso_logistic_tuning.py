"""
Tuning a Lasso and a logistic regression without a grid
=======================================================

``LassoCV`` and ``LogisticRegressionCV`` evaluate the cross-validation error on a grid of
penalties and keep the best point. :class:`~skbilevel.BilevelLassoCV` and
:class:`~skbilevel.BilevelLogisticRegressionCV` evaluate a coarse grid as a safety net, then
follow the hypergradient of the same CV error to the optimum between grid points. This
example runs both on the same folds, draws the CV curve that the grid samples with the
points the hypergradient search evaluated, and then tunes one penalty per feature, which no
grid can do.

See the :ref:`User Guide <unrolled_guide>` for how the hypergradients are computed.
"""

# %%
# The Lasso's CV curve, and where the search went
# -----------------------------------------------
# Diabetes with degree-3 polynomial features (285 features, 331 training samples), as in
# ``python -m skbilevel demo``. Both estimators get the same five folds. ``LassoCV`` keeps
# its grid's CV curve in ``mse_path_``; ``BilevelLassoCV`` records every evaluation in
# ``history_`` (the coarse grid first, then the hypergradient steps).
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LassoCV, LogisticRegressionCV
from sklearn.model_selection import KFold, StratifiedKFold

from skbilevel import BilevelLassoCV, BilevelLogisticRegressionCV
from skbilevel._demo_sparse import (lasso_cv_mse, load_lasso_data, load_logistic_data,
                                    logistic_cv_loss)

X, X_test, y, y_test = load_lasso_data(random_state=0)
splits = list(KFold(5, shuffle=True, random_state=0).split(X))

start = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # weak-penalty grid fits stop at max_iter
    grid = LassoCV(alphas=100, cv=splits).fit(X, y)
t_grid = time.perf_counter() - start
start = time.perf_counter()
bilevel = BilevelLassoCV(cv=splits).fit(X, y)
t_bilevel = time.perf_counter() - start

# Scored the same way: scikit-learn Lasso refits at each chosen alpha, on the same folds.
print(f"LassoCV        alpha={grid.alpha_:.4g}  CV MSE="
      f"{lasso_cv_mse(X, y, grid.alpha_, splits):.2f}  {t_grid:.2f} s")
print(f"BilevelLassoCV alpha={bilevel.alpha_:.4g}  CV MSE="
      f"{lasso_cv_mse(X, y, bilevel.alpha_, splits):.2f}  {t_bilevel:.2f} s "
      f"({len(bilevel.history_['objective'])} evaluations)")



def draw_search(axes, grid_x, grid_curve, history, key, best_grid, best, label, zoom):
    """The grid's CV curve with the search's evaluations, in full and zoomed on the optimum
    (within a factor ``zoom`` of the chosen value)."""
    phase, x = history["phase"], np.ravel(history[key])  # one penalty: (n_evaluations,)
    for ax in axes:
        ax.semilogx(grid_x, grid_curve, ".-", color="0.6", label=f"{label} grid")
        ax.plot(x[phase == "grid"], history["objective"][phase == "grid"], "s",
                color="tab:blue", label="coarse grid (safety net)")
        ax.plot(x[phase == "optimize"], history["objective"][phase == "optimize"],
                "o-", color="tab:orange", label="hypergradient steps")
        ax.axvline(best_grid, color="0.6", ls=":")
        ax.axvline(best, color="tab:orange", ls="--")
    def near(x):
        return (x > best / zoom) & (x < best * zoom)

    values = np.concatenate([grid_curve[near(grid_x)],
                             history["objective"][near(x)]])
    lo, hi = values.min(), values.max()
    pad = 0.1 * (hi - lo)
    axes[1].set(xlim=(best / zoom, best * zoom), ylim=(lo - pad, hi + pad),
                title="zoomed on the optimum")
    top = np.percentile(grid_curve, 60)
    axes[0].set(ylim=(lo - 0.05 * (top - lo), top), xlabel=key)
    axes[1].set_xlabel(key)
    axes[0].legend(fontsize=8)


fig, axes = plt.subplots(1, 2, figsize=(10, 4))
draw_search(axes, grid.alphas_, grid.mse_path_.mean(axis=1), bilevel.history_, "alpha",
            grid.alpha_, bilevel.alpha_, "LassoCV's 100-point", zoom=1.5)
axes[0].set(ylabel="CV MSE", title="Lasso on diabetes (degree 3)")
fig.tight_layout()

# %%
# The coarse grid is evaluated from strong to weak penalties and stops a few points past
# the best one. The search then starts between the best grid point and its neighbours and
# ends when a cubic model of the curve predicts less than ``tol`` (1e-4 relative) to gain.
# The CV curve of a Lasso has a kink wherever a feature enters or leaves a fold's support,
# so the search stops on the curve's lowest point within tolerance, not on a zero gradient.

# %%
# One penalty per feature
# -----------------------
# With ``alpha_per_feature=True`` every feature gets its own ``alpha``, tuned by the same
# hypergradient (its cost does not grow with the number of penalties). Here on a synthetic
# problem with 20 informative features among 1000 and 500 samples, where a single ``alpha``
# must let many noise features in to keep the true ones large. The per-feature search
# starts from adaptive-Lasso penalties and stops early on a holdout (20% of the samples), so
# the 1000 penalties do not overfit the validation folds.
rng = np.random.default_rng(0)
n, d, k = 500, 1000, 20
X_syn = rng.standard_normal((n + 1000, d))
true_coef = np.zeros(d)
true_coef[:k] = rng.uniform(1, 2, k) * rng.choice([-1, 1], k)
y_syn = X_syn @ true_coef + 2.0 * rng.standard_normal(n + 1000)
Xs, ys, Xs_test, ys_test = X_syn[:n], y_syn[:n], X_syn[n:], y_syn[n:]
splits_syn = list(KFold(5, shuffle=True, random_state=0).split(Xs))

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    shared = LassoCV(alphas=100, cv=splits_syn).fit(Xs, ys)
weighted = BilevelLassoCV(cv=splits_syn, alpha_per_feature=True, random_state=0).fit(Xs, ys)


def support_f1(coef):
    found, true = coef != 0, true_coef != 0
    tp = np.sum(found & true)
    return 2 * tp / (found.sum() + true.sum())


for name, est in [("LassoCV", shared), ("BilevelLassoCV(alpha_per_feature=True)", weighted)]:
    mse = np.mean((est.predict(Xs_test) - ys_test) ** 2)
    print(f"{name:<40} nonzero={np.count_nonzero(est.coef_):>3}  "
          f"support F1={support_f1(est.coef_):.2f}  test MSE={mse:.2f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
idx = np.arange(d)
for ax, est, title in [(axes[0], shared, "LassoCV (one alpha)"),
                       (axes[1], weighted, "BilevelLassoCV(alpha_per_feature=True)")]:
    ax.scatter(idx, true_coef, s=12, color="0.6", label="true")
    ax.scatter(idx, est.coef_, s=6, color="tab:orange", label="estimated")
    ax.set(xlabel="feature", title=title)
    ax.legend(fontsize=8)
axes[0].set_ylabel("coefficient")
fig.tight_layout()

# %%
# The logistic regression's CV log-loss
# -------------------------------------
# Breast cancer (30 standardised features). ``LogisticRegressionCV(Cs=20,
# scoring="neg_log_loss")`` keeps the per-fold scores in ``scores_``; the hypergradient
# search tunes ``C`` on the same log-loss and the same folds.
Xl, Xl_test, yl, yl_test = load_logistic_data(random_state=0)
splits_l = list(StratifiedKFold(5, shuffle=True, random_state=0).split(Xl, yl))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.10 attribute notes
    grid_l = LogisticRegressionCV(Cs=20, cv=splits_l, scoring="neg_log_loss").fit(Xl, yl)
bilevel_l = BilevelLogisticRegressionCV(cv=splits_l).fit(Xl, yl)
for name, C in [("LogisticRegressionCV", grid_l.C_[0]),
                ("BilevelLogisticRegressionCV", bilevel_l.C_)]:
    print(f"{name:<28} C={C:.4g}  CV log-loss={logistic_cv_loss(Xl, yl, C, splits_l):.5f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 4))
draw_search(axes, grid_l.Cs_, -grid_l.scores_[1].mean(axis=0), bilevel_l.history_, "C",
            grid_l.C_[0], bilevel_l.C_, "LogisticRegressionCV's 20-point", zoom=3)
axes[0].set(ylabel="CV log-loss", title="Logistic regression on breast cancer")
fig.tight_layout()

# %%
# With 2.5 grid points per decade, the CV log-loss between two of them is lower than at
# either (the zoomed panel: the grey segments are straight lines between grid points, not
# the curve). The hypergradient search lands there; scored by the same scikit-learn refits,
# its ``C`` has the lower CV log-loss printed above.
plt.show()
