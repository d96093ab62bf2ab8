"""Every public estimator, its scikit-learn twin and a small problem it fits quickly.

The user contract (``tests/contract``) is parametrised over ``ZOO``: an estimator added to
the package is added here once and inherits every contract test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.linear_model import LassoCV, ElasticNetCV, LogisticRegression, \
    LogisticRegressionCV, RidgeCV

import skbilevel
from skbilevel import (BilevelElasticNetCV, BilevelLassoCV, BilevelLogisticRegressionCV,
                       BilevelRidgeCV, HDMLogisticRegression)


@dataclass(frozen=True)
class Entry:
    """One estimator of the contract.

    ``make(**params)`` builds it with settings that fit the small problem in well under a
    second; ``twin`` is the scikit-learn estimator it stands in for; ``classifier`` picks the
    problem; ``cv`` says whether it cross-validates (takes ``cv`` and routes ``groups``).
    """

    name: str
    make: callable
    twin: callable
    classifier: bool
    cv: bool = True
    fast: dict = field(default_factory=dict)

    def __call__(self, **params):
        return self.make(**{**self.fast, **params})


ZOO = [
    Entry("BilevelRidgeCV", BilevelRidgeCV, lambda: RidgeCV(cv=5), classifier=False),
    Entry("BilevelLassoCV", BilevelLassoCV, lambda: LassoCV(cv=5), classifier=False,
          fast={"max_iter": 20}),
    Entry("BilevelElasticNetCV", BilevelElasticNetCV, lambda: ElasticNetCV(cv=5),
          classifier=False, fast={"max_iter": 20}),
    Entry("BilevelLogisticRegressionCV", BilevelLogisticRegressionCV,
          lambda: LogisticRegressionCV(cv=5), classifier=True, fast={"max_iter": 20}),
    Entry("HDMLogisticRegression", HDMLogisticRegression, LogisticRegression,
          classifier=True, cv=False),
]
CV_ZOO = [entry for entry in ZOO if entry.cv]

# Public estimators outside this contract, each with the reason and where its own contract
# is tested. PrivateHyperparamSearch is a meta-estimator whose model is best_estimator_ (no
# coef_ of its own); it takes no sample_weight (weights would change the sensitivity of a
# row), dense input only, and never warns of convergence (its methods run fixed schedules or
# post-process a release: data-dependent stopping would be an unpaid release); its cv is a
# number of random blocks, not a splitter that routes groups. Its contract is
# tests/test_common.py (scikit-learn's checks) and tests/private/test_estimator.py.
# HyperCleaningClassifier is a meta-estimator too (its model is estimator_, any classifier:
# no coef_, fit_intercept nor C of its own, so the dtype, scale and semantics contracts of a
# linear model do not apply); it needs a trusted set (fit's X_val, y_val or
# validation_fraction) and runs a method for max_iter steps without a convergence warning.
# The contract items that apply to it (max_iter=0 rejected, read-only input reaching torch
# writable, verbose=0 silent, errors naming the public class, output dtypes of the refit
# estimator) are in tests/test_cleaning.py.
# HypergradientSearchCV is scikit-learn's BaseSearchCV around scikit-learn's own Ridge or
# LogisticRegression: fitted attributes, dtypes and refit are theirs.
OUTSIDE_CONTRACT = {
    "PrivateHyperparamSearch": "meta-estimator under a privacy budget; "
                               "tests/test_common.py, tests/private/test_estimator.py",
    "HyperCleaningClassifier": "meta-estimator learning sample weights from a trusted set; "
                               "tests/test_common.py, tests/test_cleaning.py",
    "HypergradientSearchCV": "a BaseSearchCV (its model is best_estimator_, scikit-learn's "
                             "own Ridge / LogisticRegression); tests/test_search.py",
    "HypergradientSearchDisplay": "a plotting Display, not an estimator; "
                                  "tests/test_search_display.py",
}


def test_zoo_lists_every_public_estimator():
    """A new public estimator must join the contract (or say why not, and where else)."""
    public = {name for name in skbilevel.__all__ if name[0].isupper()}
    assert public == {entry.name for entry in ZOO} | set(OUTSIDE_CONTRACT)


def ids(entries):
    return [entry.name for entry in entries]


def parametrize(entries=ZOO):
    """``@parametrize()``: run a test once per entry, as argument ``entry``."""
    return pytest.mark.parametrize("entry", entries, ids=ids(entries))


def problem(entry, n_samples=90, n_features=6, seed=0):
    """``(X, y)``: a small regression or binary classification problem for ``entry``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    coef = rng.standard_normal(n_features)
    signal = X @ coef
    if entry.classifier:
        y = (signal + rng.standard_normal(n_samples) > 0).astype(int)
    else:
        y = signal + 0.5 * rng.standard_normal(n_samples) + 1.0
    return X, y
