"""PrivateHyperparamSearch over skbilevel models: each is its scikit-learn twin's task.

``BilevelRidgeCV`` is ridge (``alpha``), ``BilevelLogisticRegressionCV`` and
``HDMLogisticRegression`` binary L2 logistic regression (``C``); a search over one must
give what the search over the twin gives with the same seed, bit for bit, and refuse any
configuration that is not that model by naming it.
"""

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.linear_model import Lasso, LogisticRegression, Ridge

from skbilevel import (BilevelLassoCV, BilevelLogisticRegressionCV, BilevelRidgeCV,
                       HDMLogisticRegression, PrivateHyperparamSearch)


def data(kind, n=300, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-0.4, 0.4, size=(n, d))
    score = X @ np.linspace(1.0, -1.0, d) + 0.2 + 0.2 * rng.standard_normal(n)
    return X, (score if kind == "ridge" else (score > 0).astype(int))


def search(estimator, kind, **params):
    settings = dict(param_bounds={"alpha" if kind == "ridge" else "C": (1e-2, 1e2)},
                    epsilon=20.0, delta=1e-6, data_norm=1.0,
                    y_bound=1.0 if kind == "ridge" else None, max_iter=5, random_state=0)
    return PrivateHyperparamSearch(estimator, **{**settings, **params})


MODELS = [(BilevelRidgeCV, Ridge, "ridge"),
          (BilevelLogisticRegressionCV, LogisticRegression, "logistic"),
          (HDMLogisticRegression, LogisticRegression, "logistic")]
CASES = [(model, twin, kind, method, fit_intercept)
         for model, twin, kind in MODELS
         for method in ("auto", "penalty", "random-search")
         + (("sufficient-statistics",) if kind == "ridge" else ("grid-path",))
         for fit_intercept in (True, False)]


@pytest.mark.parametrize("model, twin, kind, method, fit_intercept", CASES)
def test_skbilevel_model_is_its_twins_task(model, twin, kind, method, fit_intercept):
    X, y = data(kind)
    ours = search(model(fit_intercept=fit_intercept), kind, method=method).fit(X, y)
    plain = search(twin(fit_intercept=fit_intercept), kind, method=method).fit(X, y)
    assert ours.best_params_ == plain.best_params_
    assert ours.epsilon_ == plain.epsilon_ <= 20.0
    assert ours.method_ == plain.method_
    best = ours.best_estimator_
    # A plain scikit-learn model, fit_intercept read from the given estimator.
    assert type(best) is twin and best.get_params()["fit_intercept"] is fit_intercept
    assert best.get_params()[list(ours.best_params_)[0]] == list(ours.best_params_.values())[0]
    np.testing.assert_array_equal(best.coef_, plain.best_estimator_.coef_)
    np.testing.assert_array_equal(best.intercept_, plain.best_estimator_.intercept_)
    if not fit_intercept:
        assert np.all(np.asarray(best.intercept_) == 0.0)
    assert np.any(best.coef_ != 0)
    np.testing.assert_array_equal(ours.predict(X), plain.predict(X))


@pytest.mark.parametrize("model, twin, kind", MODELS)
def test_kind_follows_the_model(model, twin, kind):
    estimator = search(model(), kind)
    assert is_classifier(estimator) == (kind == "logistic")
    assert is_regressor(estimator) == (kind == "ridge")
    assert clone(estimator).get_params()["estimator"].get_params() == model().get_params()


@pytest.mark.parametrize("estimator, kind, needs", [
    (BilevelRidgeCV(alpha_per_feature=True), "ridge", "alpha_per_feature=False"),
    (BilevelRidgeCV(alpha_per_feature=[0, 0, 1, 1]), "ridge", "alpha_per_feature=False"),
    (BilevelLogisticRegressionCV(penalty="l1"), "logistic", "penalty='l2'"),
    (BilevelLogisticRegressionCV(C_per_feature=True), "logistic", "C_per_feature=False"),
    (BilevelLogisticRegressionCV(class_weight="balanced"), "logistic", "class_weight=None"),
    (HDMLogisticRegression(class_weight={0: 1.0, 1: 2.0}), "logistic", "class_weight=None"),
    (LogisticRegression(l1_ratio=1.0), "logistic", "l1_ratio=0"),
    (Ridge(positive=True), "ridge", "positive=False"),
])
def test_unsupported_configurations_are_named(estimator, kind, needs):
    X, y = data(kind, n=40)
    with pytest.raises(ValueError) as error:
        search(estimator, kind).fit(X, y)
    message = str(error.value)
    name = type(estimator).__name__
    assert f"supports {name} with {needs} only" in message
    assert "Supported: " in message and "HDMLogisticRegression" in message


@pytest.mark.parametrize("estimator", [Lasso(), BilevelLassoCV()])
def test_supported_error_lists_every_model(estimator):
    X, y = data("ridge", n=40)
    with pytest.raises(ValueError, match=f"got {type(estimator).__name__}$") as error:
        search(estimator, "ridge").fit(X, y)
    listed = str(error.value)
    for text in ["sklearn.linear_model.Ridge (positive=False, tuning 'alpha')",
                 "binary sklearn.linear_model.LogisticRegression (penalty='l2', l1_ratio=0",
                 "skbilevel.BilevelRidgeCV (alpha_per_feature=False, tuning 'alpha')",
                 "binary skbilevel.BilevelLogisticRegressionCV (penalty='l2', C_per_feature",
                 "binary skbilevel.HDMLogisticRegression (class_weight=None, tuning 'C')"]:
        assert text in listed


@pytest.mark.parametrize("estimator, kind, key, name", [
    (BilevelRidgeCV(), "ridge", "alpha_bounds", "alpha"),
    (BilevelRidgeCV(), "ridge", "alpha_init", "alpha"),
    (BilevelLogisticRegressionCV(), "logistic", "Cs", "C"),
    (HDMLogisticRegression(), "logistic", "alpha", "C"),
])
def test_param_bounds_key_is_the_twins(estimator, kind, key, name):
    X, y = data(kind, n=40)
    with pytest.raises(ValueError, match=f"tunes '{name}' of {type(estimator).__name__} "
                                         f"only: param_bounds must be {{'{name}'"):
        search(estimator, kind, param_bounds={key: (1e-2, 1e2)}).fit(X, y)


def test_classification_errors_name_the_model():
    X, y = data("logistic", n=60)
    with pytest.raises(ValueError, match="binary classification .* HDMLogisticRegression"):
        search(HDMLogisticRegression(), "logistic").fit(X, np.arange(60) % 3)
    with pytest.raises(ValueError, match="leave it None for BilevelLogisticRegressionCV"):
        search(BilevelLogisticRegressionCV(), "logistic", y_bound=1.0).fit(X, y)
