"""Extreme but finite input: the same model up to the scale, or a ValueError naming the input.

``fit(X * c, y * t)`` must predict what ``fit(X, y)`` predicts, mapped by the scale
(``t`` times for a regressor; a classifier's decision function unchanged), over the
scales each estimator supports, and raise a ValueError that names ``X`` / ``y`` beyond
them -- never a torch error, never a silently useless model.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from .zoo import ZOO, parametrize, problem

# Decades of c (X) and t (y) every estimator fits as the unscaled data, and beyond which
# a fitted attribute leaves float64 (the squared errors behind best_score_ scale with
# t**2; ridge's alpha_ with c**2, the logistic C_ with 1 / c**2).
_SUPPORTED = (-150, -100, -50, -20, 20, 50, 100, 150)
_BEYOND = (-300, -200, 200, 300)
_TORCH_ERRORS = (torch._C._LinAlgError, RuntimeError)


def _fit(entry, X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning nor overflow on the way
        if entry.name.startswith("HDM"):  # fixed C: tight enough to compare models
            params = {"tol": 1e-10, "max_iter": 20000, **params}
        return entry(**params).fit(X, y)


_REFERENCES = {}


def _reference(entry):
    """The fit on the unscaled problem, once per estimator."""
    if entry.name not in _REFERENCES:
        _REFERENCES[entry.name] = _fit(entry, *problem(entry))
    return _REFERENCES[entry.name]


def _output(est, X):
    return est.decision_function(X) if hasattr(est, "decision_function") else \
        est.predict(X)


def _scales(entry, k):
    """``(c, t, params)`` of the scaled problem: X and y for the elastic net (its
    ``l1_ratio`` is in units of their ratio, see its Notes), X for a classifier (with
    ``C / c**2`` for the fixed-C model), y alone and X alone for the others."""
    c = 10.0 ** k
    if entry.name == "BilevelElasticNetCV":
        return [(c, c, {})]
    if entry.classifier:
        return [(c, 1.0, {"C": 10.0 ** (-2 * k)} if not entry.cv else {})]
    return [(c, 1.0, {}), (1.0, c, {})]


@parametrize()
@pytest.mark.parametrize("k", _SUPPORTED)
def test_scaled_data_give_the_same_model(entry, k):
    X, y = problem(entry)
    reference = _output(_reference(entry), X)
    for c, t, params in _scales(entry, k):
        est = _fit(entry, X * c, y * t if not entry.classifier else y, **params)
        np.testing.assert_allclose(_output(est, X * c) / t, reference, rtol=1e-6,
                                   atol=1e-6 * np.abs(reference).max())
        if hasattr(est, "alpha_"):  # the exact mapping of the penalty, too
            ref_alpha = _reference(entry).alpha_
            # ridge: alpha * c**2; Lasso and elastic net: alpha * c * t
            mapped = ref_alpha * c ** 2 if entry.name == "BilevelRidgeCV" else \
                ref_alpha * c * t
            np.testing.assert_allclose(est.alpha_, mapped, rtol=1e-6)
        if hasattr(est, "C_"):  # L2: C * c**2 is the penalty of the unscaled model
            np.testing.assert_allclose(est.C_ * c ** 2, _reference(entry).C_, rtol=1e-6)


def _check_clear_error(entry, X, y):
    with pytest.raises(ValueError) as info:
        _fit(entry, X, y)
    assert not isinstance(info.value, _TORCH_ERRORS)
    message = str(info.value)
    assert "torch" not in message and "largest |" in message and "Rescale" in message
    return message


@parametrize()
@pytest.mark.parametrize("k", _BEYOND)
def test_beyond_float64_a_value_error_names_the_input(entry, k):
    """Ridge's alpha_ (c**2), the logistic C_ (1 / c**2) and every regressor's squared
    errors (t**2) leave float64 there; the Lasso fits X at any scale."""
    X, y = problem(entry)
    c = 10.0 ** k
    if entry.name == "HDMLogisticRegression":  # C / c**2 itself leaves float64: C = 1
        if k > 0:  # C * c**2 beyond float64: the unpenalised model, in units of X * c
            est = _fit(entry, X * c, y)
            unpenalised = _output(_fit(entry, X, y, C=1e12), X)
            np.testing.assert_allclose(_output(est, X * c), unpenalised, rtol=1e-5)
        else:  # the penalty 1 / (C c**2) overflows
            assert "X (largest |X|" in _check_clear_error(entry, X * c, y)
        return
    if entry.classifier or entry.name == "BilevelRidgeCV":
        assert "X (largest |X|" in _check_clear_error(entry, X * c, y)
    if not entry.classifier:
        assert f"y (largest |y| = {np.abs(y * c).max():.3g})" in \
            _check_clear_error(entry, X, y * c)


@parametrize([entry for entry in ZOO if entry.name == "BilevelElasticNetCV"])
@pytest.mark.parametrize("k", (-50, 50))
def test_elastic_net_refuses_x_and_y_too_far_apart(entry, k):
    """l1_ratio is in units of y / X: 1e50 apart, no float64 exponent serves both."""
    X, y = problem(entry)
    message = _check_clear_error(entry, X * 10.0 ** k, y)
    assert "X (largest |X|" in message and "y (largest |y|" in message


@parametrize()
@pytest.mark.parametrize("k", (-100, 100))
def test_constant_and_zero_columns_at_extreme_scale(entry, k):
    """A zero column and a constant one (whose mean overflows a naive sum at 1e307) do
    not disturb the fit: it is the model of the informative columns, as unscaled."""
    X, y = problem(entry)
    X = np.column_stack([X, np.zeros(len(X)), np.full(len(X), 3.0)])
    # Ridge's tuner stops within tol=1e-5 of alpha's optimum, whose place here moves by
    # 4e-4 under any rescaling (X * 3 alike, inside the safe window): converge tightly.
    # HDM meets the constant column collinear with the intercept: 1e-8, which HDM-Best
    # from the power-iteration L reaches (the default OSGM-Best and the sampled L stall
    # at 4-5e-8 within 20,000 evaluations on this collinear problem: a convergence limit,
    # not a scaling one).
    tight = {"BilevelRidgeCV": {"tol": 1e-10},
             "HDMLogisticRegression": {"tol": 1e-8, "variant": "hdm-best",
                                       "smoothness": "power"}}.get(entry.name, {})
    reference = _output(_fit(entry, X, y, **tight), X)
    c = 10.0 ** k
    params = {"C": 10.0 ** (-2 * k)} if entry.classifier and not entry.cv else {}
    params = {**params, **tight}
    t = c if entry.name == "BilevelElasticNetCV" else 1.0
    est = _fit(entry, X * c, y * t if not entry.classifier else y, **params)
    np.testing.assert_allclose(_output(est, X * c) / t, reference, rtol=1e-6,
                               atol=1e-6 * np.abs(reference).max())


@pytest.mark.parametrize("centre", [True, False])
def test_column_spread_in_blocks_is_numpys(centre):
    """The blocked column spreads behind feature_unit equal numpy's std (rms without
    centring) whatever the block size, with a last block shorter than the others."""
    from skbilevel._scaling import _column_spread

    X = np.random.default_rng(0).standard_normal((700, 5)) * [1, 3, 1e-3, 1e3, 7] + 2.0
    expected = X.std(0) if centre else np.sqrt((X ** 2).mean(0))
    for rows in (1, 256, 699, 10000):
        np.testing.assert_allclose(_column_spread(X, centre, rows), expected, rtol=1e-12)
