"""``python -m skbilevel demo``: tune ridge on bundled data, beside scikit-learn's tuners."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from ._ridge import BilevelRidgeCV


def load_demo_data(random_state=0):
    """Diabetes with degree-2 polynomial features, standardised; a 75/25 train/test split."""
    X, y = load_diabetes(return_X_y=True)
    X = make_pipeline(PolynomialFeatures(2, include_bias=False),
                      StandardScaler()).fit_transform(X)
    return train_test_split(X, y, test_size=0.25, random_state=random_state)


def ridge_cv_mse(X, y, alpha, splits):
    """K-fold CV MSE of a ridge with (per-feature) penalty ``alpha`` on fixed folds."""
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (X.shape[1],))
    errors = []
    for train, val in splits:
        xm, ym = X[train].mean(0), y[train].mean()
        Xc = X[train] - xm
        coef = np.linalg.solve(Xc.T @ Xc + np.diag(alpha), Xc.T @ (y[train] - ym))
        errors.append(np.mean((y[val] - (X[val] - xm) @ coef - ym) ** 2))
    return float(np.mean(errors))


def run_demo(plot_path="skbilevel_demo.png", random_state=0):
    """Run the comparison, print its table and write the trajectory plot.

    Returns
    -------
    rows : list of dict
        One row per method: name, number of hyperparameters, CV MSE, test MSE, time.
    """
    X_train, X_test, y_train, y_test = load_demo_data(random_state)
    cv = KFold(5, shuffle=True, random_state=random_state)
    splits = list(cv.split(X_train))
    grid = np.logspace(-6, 6, 50)
    methods = {
        "GridSearchCV(Ridge), 50 alphas": GridSearchCV(
            Ridge(), {"alpha": grid}, cv=splits, scoring="neg_mean_squared_error"),
        "RidgeCV(cv=5), 50 alphas": RidgeCV(alphas=grid, cv=splits),
        "RidgeCV() (efficient LOO)": RidgeCV(alphas=grid),
        "BilevelRidgeCV": BilevelRidgeCV(cv=splits),
        "BilevelRidgeCV(alpha_per_feature)": BilevelRidgeCV(
            cv=5, alpha_per_feature=True, random_state=random_state),
    }
    rows, fitted = [], {}
    for name, est in methods.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X_train, y_train)
        elapsed = time.perf_counter() - start
        alpha = getattr(est, "alpha_", None)
        if alpha is None:
            alpha = est.best_params_["alpha"]
        rows.append({"method": name, "n_hyper": np.size(alpha),
                     "cv_mse": ridge_cv_mse(X_train, y_train, alpha, splits),
                     "test_mse": float(np.mean((est.predict(X_test) - y_test) ** 2)),
                     "time": elapsed})
        fitted[name] = est
    base = rows[0]["time"]
    print(f"diabetes, degree-2 features: n_train={len(y_train)}, n_features={X_train.shape[1]}")
    print(f"{'method':<36} {'#hyper':>6} {'CV MSE':>9} {'test MSE':>9} {'time (s)':>9} "
          f"{'vs grid':>8}")
    for r in rows:
        print(f"{r['method']:<36} {r['n_hyper']:>6d} {r['cv_mse']:>9.1f} {r['test_mse']:>9.1f} "
              f"{r['time']:>9.3f} {r['time'] / base:>8.3f}")
    if plot_path:
        _plot(fitted["BilevelRidgeCV"], fitted["BilevelRidgeCV(alpha_per_feature)"], plot_path)
    return rows


def _plot(scalar, per_feature, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is optional
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for est, label in [(scalar, "one alpha"), (per_feature, "alpha per feature")]:
        h = est.history_
        axes[0].plot(h["objective"], marker=".", label=label)
    axes[0].set(xlabel="objective evaluation (grid, then hypergradient steps)",
                ylabel="CV MSE", yscale="log", title="Tuning trajectory")
    axes[0].legend()
    opt = per_feature.history_["phase"] == "optimize"
    axes[1].semilogy(per_feature.history_["alpha"][opt], color="tab:orange", alpha=0.3, lw=0.8)
    axes[1].semilogy(scalar.history_["alpha"][scalar.history_["phase"] == "optimize"],
                     color="k", lw=2, label="one alpha")
    axes[1].set(xlabel="hypergradient step", ylabel="alpha",
                title="Penalties over the outer iterations")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"trajectory plot written to {path}")
