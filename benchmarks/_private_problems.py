"""Problems, non-private references and the refit replay of ``bench_private.py``.

The replay is what the tuning regret needs: the private refit of ``best_estimator_`` is
recorded while ``PrivateHyperparamSearch.fit`` runs (``Recorder`` wraps the refit functions
the estimator calls) and re-run, with the same ledger and the same noise draw, at every value
of a fine grid. It is benchmark instrumentation only; no library code is changed.
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.metrics import log_loss

import skbilevel._private as private_module
from _common import DenseRidgeCV
from skbilevel import BilevelLogisticRegressionCV, BilevelRidgeCV
from skbilevel._private_base import PrivateTask
from skbilevel._private_refit import (calibrate_after, refit_logistic, refit_ridge)
from skbilevel._private_sufficient import _FoldPath, release_moments
from skbilevel.engine.dp import PrivacyLedger

DELTA = 1e-7
BOUNDS = {"ridge": (1e-8, 1e4), "logistic": (1e-2, 1e8)}
GRID = {"ridge": 241, "logistic": 41}  # 20 and 4 points per decade


def make_problem(kind, n, d, seed, n_test=20_000):
    """Features with column scales from 1 to 0.1 and small rows, so that ``alpha=1`` /
    ``C=1`` over-shrinks them.

    Rows: Gaussian with those column scales, normalised so that most rows have norm below
    ``data_norm`` and the rest are scaled onto it (the bound is a public constant, not a
    statistic of the rows). Ridge: ``data_norm = 0.01``, every column carries the same signal
    variance (0.5 in total), unit noise, ``y`` clipped to +-3. Logistic: margin of standard
    deviation 3 plus logistic noise; ``data_norm = 0.01 sqrt(10^4 / n)`` keeps ``n
    data_norm^2`` (hence how much ``C = 1`` shrinks) the same at every ``n``.
    """
    rng = np.random.default_rng(1000 + seed)
    scales = np.logspace(0, -1, d)
    total = n + n_test
    Z = rng.standard_normal((total, d)) * scales / (1.5 * np.sqrt((scales ** 2).sum()))
    Z /= np.maximum(np.linalg.norm(Z, axis=1), 1.0)[:, None]
    beta = rng.choice([-1.0, 1.0], d) / scales
    if kind == "ridge":
        data_norm, y_bound = 0.01, 3.0
        beta *= math.sqrt(0.5 / np.mean((Z @ beta) ** 2))
        y = np.clip(Z @ beta + rng.standard_normal(total), -y_bound, y_bound)
        estimator = Ridge()
    else:
        data_norm, y_bound = 0.01 * math.sqrt(1e4 / n), None
        beta *= 3.0 / np.std(Z @ beta)
        y = (Z @ beta + rng.logistic(size=total) > 0).astype(float)
        estimator = LogisticRegression()
    X = data_norm * Z
    return dict(kind=kind, n=n, d=d, X=X[:n], y=y[:n], Xt=X[n:], yt=y[n:],
                data_norm=data_norm, y_bound=y_bound, bounds=BOUNDS[kind],
                estimator=estimator, default=1.0)


def test_loss(kind, model, Xt, yt):
    if kind == "ridge":
        return float(np.mean((model.predict(Xt) - yt) ** 2))
    return float(log_loss(yt, model.predict_proba(Xt)))


def _timed(make, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est = make().fit(X, y)
        return est, time.perf_counter() - t0


def nonprivate_rows(kind, prob):
    """The non-private tuners and the default fit on the same (clipped) data."""
    X, y, Xt, yt = prob["X"], prob["y"], prob["Xt"], prob["yt"]
    lo, hi = np.log10(prob["bounds"])
    if kind == "ridge":
        tuners = [("RidgeCV (LOO, 61 alphas)",
                   lambda: RidgeCV(alphas=np.logspace(lo, hi, 61)), "alpha_"),
                  ("BilevelRidgeCV", lambda: BilevelRidgeCV(cv=5, random_state=0), "alpha_")]
        default = lambda: Ridge(alpha=1.0)  # noqa: E731
    else:
        tuners = [("LogisticRegressionCV (21 Cs)", lambda: LogisticRegressionCV(
                      Cs=np.logspace(lo, hi, 21), cv=5, scoring="neg_log_loss",
                      solver="newton-cholesky", tol=1e-8), "C_"),
                  ("BilevelLogisticRegressionCV", lambda: BilevelLogisticRegressionCV(cv=5),
                   "C_")]
        default = lambda: LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-8)  # noqa
    rows = []
    for label, make, attr in tuners:
        est, wall = _timed(make, X, y)
        rows.append(dict(method=label, loss=test_loss(kind, est, Xt, yt),
                         value=float(np.ravel(getattr(est, attr))[0]), wall=wall))
    est, wall = _timed(default, X, y)
    rows.append(dict(method="non-private fit, default", loss=test_loss(kind, est, Xt, yt),
                     value=1.0, wall=wall))
    ref = rows[0]["loss"]
    return dict(rows=rows, ref_loss=ref, default_ratio=rows[-1]["loss"] / ref,
                tuned_value=rows[0]["value"])


class Recorder:
    """Context manager: wraps the refit functions ``PrivateHyperparamSearch.fit`` calls and
    keeps what a replay needs (task, ledger before the refit, rng state, released moments
    or Gram)."""

    def __enter__(self):
        self.capture = {}

        def wrap(original):
            def recorded(task, value, epsilon, delta, ledger, rng, **kw):
                self.capture.update(task=task, epsilon=epsilon, delta=delta,
                                    ledger=copy.deepcopy(ledger),
                                    state=copy.deepcopy(rng.bit_generator.state),
                                    moments=kw.get("moments"), gram=kw.get("gram"))
                return original(task, value, epsilon, delta, ledger, rng, **kw)
            return recorded

        self._saved = private_module.refit_ridge, private_module.refit_logistic
        private_module.refit_ridge = wrap(refit_ridge)
        private_module.refit_logistic = wrap(refit_logistic)
        return self

    def __exit__(self, *exc):
        private_module.refit_ridge, private_module.refit_logistic = self._saved
        return False


def _rng_at(state):
    rng = np.random.default_rng()
    rng.bit_generator.state = copy.deepcopy(state)
    return rng


class Replay:
    """Test losses of the recorded private refit mechanism over a grid of fixed values."""

    def __init__(self, kind, prob):
        self.kind, self.prob = kind, prob
        lo, hi = np.log10(prob["bounds"])
        self.grid = np.logspace(lo, hi, GRID[kind])

    def grid_losses(self, cap, chosen=None, search=None):
        """Grid test losses; with ``search``, also the replay's coefficient error at its
        chosen value (should be ~0: the replay is the mechanism)."""
        task, Xt, yt = cap["task"], self.prob["Xt"], self.prob["yt"]
        values = self.grid if chosen is None else np.r_[self.grid, chosen]
        if self.kind == "ridge":
            moments = cap["moments"]
            if moments is None:
                mult = calibrate_after(cap["ledger"], cap["epsilon"], cap["delta"])
                (moments,) = release_moments(task, [np.arange(task.n_samples)], mult,
                                             PrivacyLedger(), _rng_at(cap["state"]),
                                             phase="replay")
            W, b0 = _FoldPath(moments).coef(values)
            losses = np.mean((Xt @ W + b0 - yt[:, None]) ** 2, axis=0)
            coef = W[:, -1]
        else:  # the refit itself, from the same ledger, noise draw and released Gram
            fits = [refit_logistic(task, C, cap["epsilon"], cap["delta"],
                                   copy.deepcopy(cap["ledger"]), _rng_at(cap["state"]),
                                   gram=cap["gram"]) for C in values]
            W = np.array([coef for coef, _ in fits]).T
            b0 = np.array([intercept for _, intercept in fits])
            margin = Xt @ W + b0
            p = np.clip(1 / (1 + np.exp(-margin)), 1e-15, 1 - 1e-15)
            losses = -np.mean(yt[:, None] * np.log(p) + (1 - yt[:, None]) * np.log(1 - p),
                              axis=0)
            coef = W[:, -1]
        if search is None:
            return losses[:len(self.grid)]
        error = float(np.max(np.abs(coef - np.ravel(search.best_estimator_.coef_))) /
                      max(np.max(np.abs(coef)), 1e-300))
        return losses, error


def default_private_fit(kind, prob, epsilon, seed):
    """The refit mechanism with the whole budget at the default value (no tuning)."""
    lo, hi = prob["bounds"]
    task = PrivateTask(X=prob["X"], y=prob["y"], kind=kind, data_norm=prob["data_norm"],
                       y_bound=prob["y_bound"], fit_intercept=True,
                       theta_bounds=(math.log(lo), math.log(hi)),
                       to_params=lambda t: {"alpha": math.exp(t)}, splits=[])
    ledger, rng = PrivacyLedger(), np.random.default_rng(seed)
    capture = dict(task=task, epsilon=epsilon, delta=DELTA, ledger=copy.deepcopy(ledger),
                   state=copy.deepcopy(rng.bit_generator.state), moments=None, gram=None)
    t0 = time.perf_counter()
    refit = refit_ridge if kind == "ridge" else refit_logistic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coef, intercept = refit(task, prob["default"], epsilon, DELTA, ledger, rng)
    wall = time.perf_counter() - t0
    margin = prob["Xt"] @ coef + intercept
    if kind == "ridge":
        loss = float(np.mean((margin - prob["yt"]) ** 2))
    else:
        p = np.clip(1 / (1 + np.exp(-margin)), 1e-15, 1 - 1e-15)
        loss = float(log_loss(prob["yt"], p))
    return dict(loss=loss, spent=ledger.epsilon(DELTA), wall=wall, capture=capture)


def exact_cv_slope(task, theta, h=1e-3):
    """dF/dtheta of the exact (non-private) mean validation MSE on the task's blocks, by
    central differences: the penalty method's stationarity measure (measurement only)."""
    cv = DenseRidgeCV(task.X, task.y, task.splits)
    return (cv(math.exp(theta + h)) - cv(math.exp(theta - h))) / (2 * h)
