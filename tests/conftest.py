"""Shared fixtures: seeds, and one zoo of random ridge problems for engine and estimator tests."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch

# pytest-xdist runs one worker per core; torch's own intra-op threads on top of that
# oversubscribe the cores and make tiny sparse products ~10x slower (OpenMP spin-waits).
torch.set_num_threads(int(os.environ.get("SKBILEVEL_TEST_TORCH_THREADS", "1")))

# Seeds every randomised test runs under (``SKBILEVEL_TEST_SEEDS="0-9"`` or "3,7" widens it).
_DEFAULT_SEEDS = "0,1"


def _parse_seeds(spec):
    seeds = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


SEEDS = _parse_seeds(os.environ.get("SKBILEVEL_TEST_SEEDS", _DEFAULT_SEEDS))


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def global_random_seed(request):
    """Seed of a randomised test; every such test runs under each of ``SEEDS``."""
    return request.param


def make_regression_data(seed, n_samples=60, n_features=8, n_targets=1, *, noise=1.0,
                         sparse=False, density=0.5, sample_weight=False, rank=None):
    """A random linear regression problem whose CV optimum in ``alpha`` is interior.

    Features are correlated (a random mixing of Gaussian columns, optionally of low rank),
    coefficients are Gaussian and the noise is comparable to the signal, so neither
    ``alpha -> 0`` nor ``alpha -> inf`` is optimal. Returns ``X, y, sw`` as numpy /
    scipy.sparse; ``y`` is 1-D when ``n_targets == 1``; ``sw`` is None unless asked for.
    """
    rng = np.random.default_rng(seed)
    n, d = n_samples, n_features
    rank = d if rank is None else rank
    X = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) / np.sqrt(rank)
    X += 0.3 * rng.standard_normal((n, d)) + rng.standard_normal(d)  # non-zero means
    if sparse:
        X = X * (rng.random((n, d)) < density)
    coef = rng.standard_normal((d, n_targets))
    y = X @ coef + 2.0 + noise * np.sqrt(d) * rng.standard_normal((n, n_targets))
    if sparse:
        X = sp.csr_matrix(X)
    sw = rng.uniform(0.5, 2.0, n) if sample_weight else None
    return X, (y[:, 0] if n_targets == 1 else y), sw


@pytest.fixture
def regression_data(global_random_seed):
    """A small dense single-target problem under each global seed."""
    return make_regression_data(global_random_seed)


# -- numpy references, written independently of the engine ----------------------------------
class RidgeReference:
    """Dense numpy ridge fits and (cross-)validation errors, the oracle of the tests.

    Every function takes numpy or scipy.sparse ``X``, a 1-D or 2-D ``y``, optional sample
    weights and a penalty that is a scalar or one value per feature.
    """

    @staticmethod
    def dense(X):
        return X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)

    @staticmethod
    def fit(X, y, sw, alpha, fit_intercept=True):
        """Weighted ridge ``(coef (d, k), intercept (k,))`` by a dense solve."""
        X = RidgeReference.dense(X)
        Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
        s = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
        alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (X.shape[1],))
        if fit_intercept:
            xm, ym = s @ X / s.sum(), s @ Y / s.sum()
        else:
            xm, ym = np.zeros(X.shape[1]), np.zeros(Y.shape[1])
        Xc, Yc = X - xm, Y - ym
        coef = np.linalg.solve(Xc.T @ (s[:, None] * Xc) + np.diag(alpha),
                               Xc.T @ (s[:, None] * Yc))
        return coef, ym - xm @ coef

    @staticmethod
    def mse(X, y, sw, coef, intercept):
        """Weighted MSE, averaged over samples (by weight) and targets."""
        X = RidgeReference.dense(X)
        Y = np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)
        s = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
        r = Y - X @ coef - intercept
        return float((s[:, None] * r ** 2).sum() / (s.sum() * Y.shape[1]))

    @staticmethod
    def split_value(X, y, sw, alpha, train, val, fit_intercept=True):
        """Validation MSE of the ridge fitted on ``train``."""
        s_tr = None if sw is None else sw[train]
        s_va = None if sw is None else sw[val]
        coef, b = RidgeReference.fit(X[train], y[train], s_tr, alpha, fit_intercept)
        return RidgeReference.mse(X[val], y[val], s_va, coef, b)

    @staticmethod
    def cv_value(X, y, sw, alpha, splits, fit_intercept=True):
        """Mean over ``splits`` of the validation MSE (what BilevelRidgeCV minimises)."""
        return float(np.mean([RidgeReference.split_value(X, y, sw, alpha, tr, va,
                                                         fit_intercept)
                              for tr, va in splits]))

    @staticmethod
    def gram_scale(X, sw=None, fit_intercept=True):
        """Mean diagonal of the centred weighted Gram: the natural unit of alpha."""
        X = RidgeReference.dense(X)
        s = np.ones(X.shape[0]) if sw is None else np.asarray(sw, dtype=np.float64)
        Xc = X - s @ X / s.sum() if fit_intercept else X
        return float(np.mean(s @ Xc ** 2))


@pytest.fixture(scope="session")
def ridge_ref():
    """The numpy oracle :class:`RidgeReference`."""
    return RidgeReference


@pytest.fixture(scope="session")
def make_data():
    """The problem generator :func:`make_regression_data`."""
    return make_regression_data
