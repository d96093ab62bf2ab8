"""scikit-learn's estimator checks over every public estimator."""

import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.utils.estimator_checks import parametrize_with_checks

from skbilevel import (BilevelElasticNetCV, BilevelLassoCV, BilevelLogisticRegressionCV,
                       BilevelRidgeCV, HDMLogisticRegression, HyperCleaningClassifier,
                       HypergradientSearchCV, PrivateHyperparamSearch)

# The checks call fit(X, y) alone: a held-out part of (X, y) is the trusted set.
CLEANING = HyperCleaningClassifier(method="reweight", validation_fraction=0.2, max_iter=20,
                                   random_state=0)

# The table of estimators checked, and of the checks each is known to fail as
# {(repr(estimator), check name): (reason, exception)}. An entry is a strict xfail: a bug to
# fix, or a deviation that scikit-learn accepts of its own estimators of the kind (with the
# reason).
ESTIMATORS = [
    BilevelRidgeCV(),
    BilevelRidgeCV(alpha_per_feature=True),
    BilevelRidgeCV(linear_solver="recycled_minres"),
    HDMLogisticRegression(),
    HDMLogisticRegression(variant="hdm-diag", class_weight="balanced", tol=1e-8, max_iter=5000,
                          smoothness="power"),
    BilevelLassoCV(),
    BilevelElasticNetCV(),
    BilevelLogisticRegressionCV(),
    # Explicit bounds covering the checks' standardised toy data, and a large budget so that
    # their accuracy thresholds test the API rather than the price of privacy.
    PrivateHyperparamSearch(Ridge(), {"alpha": (1e-3, 1e3)}, epsilon=1e4, delta=1e-6,
                            data_norm=8.0, y_bound=4.0, random_state=0),
    PrivateHyperparamSearch(LogisticRegression(), {"C": (1e-2, 1e2)}, epsilon=1e4, delta=1e-6,
                            data_norm=8.0, random_state=0),
    # A skbilevel model is its scikit-learn twin's task: the classifier's tags come from it.
    PrivateHyperparamSearch(HDMLogisticRegression(), {"C": (1e-2, 1e2)}, epsilon=1e8,
                            delta=1e-6, data_norm=8.0, random_state=0),
    CLEANING,
    HypergradientSearchCV(Ridge(), {"alpha": (1e-3, 1e3)}, cv=3),
    # Every evaluated C is also scored by scikit-learn on every fold, and the sparse-input
    # checks fit once per sparse format: with the box (1e-3, 1e3), cv=3 and max_iter=20
    # the checks took 333 s; a narrow box, two folds and one hypergradient step take ~20 s
    # and still run the screening grid, a hypergradient evaluation and the refit.
    HypergradientSearchCV(LogisticRegression(), {"C": (1e-1, 1e1)}, cv=2, max_iter=1),
]
KNOWN_FAILURES: dict = {
    # Every row gets its own learned weight and the trusted set is drawn by rows: a row
    # repeated twice is two samples the trusted set judges (and may hold out) separately,
    # not one of weight 2. scikit-learn xfails this check for its estimators with an
    # internal validation split (HistGradientBoosting*, SGD* with early stopping) alike.
    (repr(CLEANING), "check_sample_weight_equivalence_on_dense_data"): (
        "learned per-row weights and a held-out trusted set: repeating a row is not "
        "weighting it", AssertionError),
}


def _check_name(check):
    return getattr(check, "func", check).__name__


# The checks fit toy data (a few rows, repeated or reweighted samples, one-off feature
# counts) to test the API, not the optimisation: stopping short of tol there is not what
# they test, and scikit-learn's own common tests ignore ConvergenceWarning likewise.
# Convergence is tested on real problems in the estimators' own test files.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check, request):
    known = KNOWN_FAILURES.get((repr(estimator), _check_name(check)))
    if known is not None:
        reason, raises = known
        request.applymarker(pytest.mark.xfail(strict=True, raises=raises, reason=reason))
    check(estimator)
