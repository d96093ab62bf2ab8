"""
Private hyperparameter tuning
=============================

:class:`~skbilevel.PrivateHyperparamSearch` chooses the ridge penalty ``alpha`` *and* refits
the model under ``(epsilon, delta)``-differential privacy: every row of the training data is
protected for the whole fit. This example tunes a small ridge problem at several privacy
budgets and compares the test error with the non-private :class:`~skbilevel.BilevelRidgeCV`
on the same (clipped) data.

See the :ref:`User Guide <private_guide>` for what is protected and what each method spends;
``benchmarks/bench_private.py`` runs the full comparison of the private methods (ridge and
logistic regression).
"""

# %%
# Data with explicit bounds
# -------------------------
# Privacy needs bounds that are *not* read from the data: here every row of ``X`` has an L2
# norm of at most ``data_norm = 0.01`` (rows above it would be scaled down onto it) and
# ``y`` is clipped to ``[-3, 3]``. The features are small and their column scales span a
# decade, so the default ``alpha=1`` over-shrinks them: tuning matters.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import Ridge

from skbilevel import BilevelRidgeCV, PrivateHyperparamSearch

rng = np.random.default_rng(0)
n, n_test, d = 50_000, 10_000, 10
data_norm, y_bound = 0.01, 3.0
scales = np.logspace(0, -1, d)
Z = rng.standard_normal((n + n_test, d)) * scales / (1.5 * np.sqrt((scales**2).sum()))
Z /= np.maximum(np.linalg.norm(Z, axis=1), 1.0)[:, None]
beta = rng.choice([-1.0, 1.0], d) / scales
beta *= np.sqrt(0.5 / np.mean((Z @ beta) ** 2))
y = np.clip(Z @ beta + rng.standard_normal(n + n_test), -y_bound, y_bound)
X = data_norm * Z
X_train, X_test, y_train, y_test = X[:n], X[n:], y[:n], y[n:]


def test_mse(model):
    return float(np.mean((model.predict(X_test) - y_test) ** 2))


reference = BilevelRidgeCV(cv=5, random_state=0).fit(X_train, y_train)
default = Ridge(alpha=1.0).fit(X_train, y_train)
print(f"non-private BilevelRidgeCV: alpha={reference.alpha_:.3g}, "
      f"test MSE {test_mse(reference):.4f}")
print(f"non-private Ridge(alpha=1): test MSE {test_mse(default):.4f}")

# %%
# One private search, and what it spent
# -------------------------------------
# ``method="auto"`` is the sufficient-statistics method for ridge: one Gaussian release of
# the moments of each validation block (the blocks are disjoint, so together they cost one
# release), then the tuning and the refit are post-processing. ``privacy_report_`` lists
# every release that read the data; its ``dp_event`` lets anyone recompute ``epsilon_``.
# (A fixed ``random_state`` makes the noise reproducible, which voids the guarantee; it is
# used here only so that the page is the same at every build.)
search = PrivateHyperparamSearch(Ridge(), {"alpha": (1e-8, 1e4)}, epsilon=1.0, delta=1e-7,
                                 data_norm=data_norm, y_bound=y_bound,
                                 random_state=0).fit(X_train, y_train)
print(f"private (epsilon=1): alpha={search.best_params_['alpha']:.3g}, "
      f"test MSE {test_mse(search):.4f}, epsilon spent {search.epsilon_:.4f}")
for phase in search.privacy_report_["phases"]:
    print(f"  {phase['phase']}: {phase['mechanism']}, noise multiplier "
          f"{phase['noise_multiplier']:.3f}, releases {phase['releases']}, "
          f"epsilon alone {phase['epsilon_alone']:.3f}")

# %%
# Test error against the privacy budget
# -------------------------------------
# Each budget is spent by a separate fit on the same rows: in a real release only one of
# them would be published (publishing all of them would compose their costs). Three noise
# seeds per budget show the spread.
epsilons = [1.0, 2.0, 4.0, 8.0, 16.0]
mses = np.array([[test_mse(PrivateHyperparamSearch(
    Ridge(), {"alpha": (1e-8, 1e4)}, epsilon=eps, delta=1e-7, data_norm=data_norm,
    y_bound=y_bound, random_state=seed).fit(X_train, y_train)) for seed in range(3)]
    for eps in epsilons])
for eps, row in zip(epsilons, mses):
    print(f"epsilon={eps:<5g} test MSE {row.mean():.4f} "
          f"(ratio to non-private {row.mean() / test_mse(reference):.3f})")

fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(epsilons, mses.mean(1), yerr=mses.std(1), fmt="o-", capsize=3,
            label="PrivateHyperparamSearch (tuning + refit)")
ax.axhline(test_mse(reference), color="k", ls="--", label="non-private BilevelRidgeCV")
ax.axhline(test_mse(default), color="grey", ls=":", label="non-private Ridge(alpha=1)")
ax.set_xscale("log")
ax.set_xlabel("epsilon (delta = 1e-7)")
ax.set_ylabel("test MSE")
ax.set_title(f"Private ridge tuning, n={n}, d={d}")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The price of privacy shrinks as the budget grows, and at a fixed budget it shrinks with
# the number of rows (the noise is calibrated to one row, the moments grow with all of
# them). Tuning privately is cheap here: choosing ``alpha`` from the released moments is
# post-processing, so the whole budget goes into the one release.
