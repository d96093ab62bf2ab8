"""What :class:`PrivateHyperparamSearch` supports, and the checks ``fit`` runs first.

Every check here reads parameters only, never the data: an error that depended on the rows
would itself be a release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression, Ridge

from ._logistic import HDMLogisticRegression
from ._logistic_cv import BilevelLogisticRegressionCV
from ._ridge import BilevelRidgeCV
from ._tuning import positive_bounds


def _off(value):
    return isinstance(value, (bool, np.bool_)) and not value


@dataclass(frozen=True)
class Model:
    """A supported estimator class: what it is to the search, and what it must not be.

    ``kind`` is the model family of the :class:`~skbilevel._private_base.PrivateTask`,
    ``name`` the tuned hyperparameter (the key of ``param_bounds`` and of ``best_params_``,
    named as in ``twin``), ``twin`` the plain scikit-learn class of ``best_estimator_``, and
    ``requires`` the ``(parameter, accepts(value), what is accepted, why)`` that keep the
    model ridge or binary L2 logistic regression with the sensitivity the noise assumes.
    """

    kind: str
    name: str
    twin: type
    requires: tuple = ()


# The noise is calibrated to the sensitivity of a strongly convex, smooth L2 problem.
_L2 = ": an L2 penalty only (no L1 part)"
_NO_CLASS_WEIGHT = ("class_weight", lambda v: v is None, "class_weight=None",
                    ": a class weight scales what one row can change (and 'balanced' "
                    "reads the labels)")
# Estimator class -> Model; looked up along the estimator's MRO (subclasses are accepted).
SUPPORTED = {
    Ridge: Model("ridge", "alpha", Ridge, (("positive", _off, "positive=False", ""),)),
    LogisticRegression: Model("logistic", "C", LogisticRegression, (
        ("penalty", lambda v: v in ("l2", "deprecated"), "penalty='l2'", _L2),
        ("l1_ratio", lambda v: v in (None, 0, 0.0), "l1_ratio=0", _L2),
        _NO_CLASS_WEIGHT)),
    BilevelRidgeCV: Model("ridge", "alpha", Ridge, (
        ("alpha_per_feature", _off, "alpha_per_feature=False",
         ": one alpha is tuned, not one per feature"),)),
    BilevelLogisticRegressionCV: Model("logistic", "C", LogisticRegression, (
        ("penalty", lambda v: v == "l2", "penalty='l2'", _L2),
        ("C_per_feature", _off, "C_per_feature=False", ": one C is tuned, not one per feature"),
        _NO_CLASS_WEIGHT)),
    HDMLogisticRegression: Model("logistic", "C", LogisticRegression, (_NO_CLASS_WEIGHT,)),
}


def _describe(cls, model):
    needs = dict.fromkeys(need for _, _, need, _ in model.requires)  # ordered, no repeats
    module = "sklearn.linear_model" if cls.__module__.startswith("sklearn") else "skbilevel"
    binary = "binary " if model.kind == "logistic" else ""
    return f"{binary}{module}.{cls.__name__} ({', '.join([*needs, f'tuning {model.name!r}'])})"


_SUPPORTED_TEXT = "; ".join(_describe(cls, model) for cls, model in SUPPORTED.items())


def model_of(estimator):
    """The :class:`Model` of ``estimator``'s class, or None when it is not supported."""
    return next((SUPPORTED[cls] for cls in type(estimator).__mro__ if cls in SUPPORTED), None)


def plain_twin(estimator, value):
    """An unfitted plain scikit-learn model of ``estimator`` at the tuned ``value``.

    A scikit-learn estimator is cloned (its other hyperparameters kept); a skbilevel one
    becomes its twin with the same ``fit_intercept``, its own tuning parameters being moot.
    """
    model = model_of(estimator)
    if isinstance(estimator, model.twin):
        return clone(estimator).set_params(**{model.name: value})
    return model.twin(**{model.name: value,
                         "fit_intercept": estimator.get_params()["fit_intercept"]})


DOC_PARAMETERS = """\
    estimator : estimator instance
        The model: a scikit-learn :class:`~sklearn.linear_model.Ridge` (``positive=False``;
        ``alpha`` tuned) or binary :class:`~sklearn.linear_model.LogisticRegression` with an
        L2 penalty (``C`` tuned; no ``class_weight``), or the equivalent skbilevel model:
        :class:`BilevelRidgeCV` (``alpha_per_feature=False``; ``alpha`` tuned),
        :class:`BilevelLogisticRegressionCV` (``penalty="l2"``, ``C_per_feature=False``, no
        ``class_weight``; ``C`` tuned) or :class:`HDMLogisticRegression` (no
        ``class_weight``; ``C`` tuned). Other estimators and configurations (an L1
        penalty, one penalty per feature, class weights, ``positive=True``) are a
        ValueError listing what is supported. Its ``fit_intercept`` is used. A
        scikit-learn model's other hyperparameters are kept in :attr:`best_estimator_`; a
        skbilevel model's own tuning parameters (``cv``, ``alpha_bounds``, ``max_iter``,
        the solver, ...) are not used: this search tunes and refits in its place.
    param_bounds : dict
        ``{"alpha": (low, high)}`` (ridge) or ``{"C": (low, high)}`` (logistic regression),
        ``0 < low < high < inf``: the box of the search, on a log scale. Required: there
        is no data-free default. The key is the scikit-learn twin's parameter, also for a
        skbilevel model (``"alpha"`` for :class:`BilevelRidgeCV`, not ``alpha_init`` or
        ``alpha_bounds``; ``"C"`` for :class:`BilevelLogisticRegressionCV`, whose tuned
        ``C_`` has no constructor parameter).
    epsilon : float
        The privacy budget of the whole fit (tuning and refit), ``0 < epsilon < inf``.
        ``epsilon=inf`` is refused, whatever the method: it is no guarantee, and a
        "private" fit without noise is better had from the non-private tuners
        (:class:`BilevelRidgeCV`, :class:`BilevelLogisticRegressionCV`).
    delta : float
        The ``delta`` of ``(epsilon, delta)``-DP, in ``(0, 1)``; required. A rule such as
        ``1 / n**1.1`` is not applied for you because ``n`` is not public under add/remove
        neighbours: a ``delta`` computed from the data would differ between neighbouring
        datasets. Pick it from a public bound on ``n``, well below ``1 / n``.
    data_norm : float
        Bound on the L2 norm of a row of ``X``; required. Rows with a larger norm are
        scaled down to it. It is a parameter, never read from the data (a bound computed
        from the rows would reveal them); for the same reason, do not scale the features
        with statistics of the same data (e.g. a ``StandardScaler`` fitted on them): that
        is a release the budget does not cover.
    y_bound : float, default=None
        Regression only, and required there: ``y`` is clipped to ``[-y_bound, y_bound]``.
    method : {"auto", "sufficient-statistics", "grid-path", "penalty", "random-search"}, \
default="auto"
        The private tuning method. ``"sufficient-statistics"`` (ridge): one Gaussian
        release of each validation block's moments, then tuning and refit as free
        post-processing. ``"grid-path"`` (logistic regression): one warm-started private
        fit path through a data-free grid of ``C`` and one noisy release of every grid
        point's validation loss. ``"penalty"``: the first-order penalty hypergradient
        method with private inner solves. ``"random-search"``: private candidates,
        private selection. ``"auto"``: the best of them on ``benchmarks/bench_private.py``
        (see the user guide).
    max_iter : int, default=100
        Outer steps of the penalty method; unused by ``"sufficient-statistics"``, whose
        search is post-processing, by ``"grid-path"``, whose releases are fixed by its
        grid, and by ``"random-search"``, whose number of runs is random (and secret) by
        design.
    cv : int, default=5
        Number of validation blocks. Each row joins a block independently and uniformly
        at random, so that adding or removing one row moves no other row; only such
        partitions are allowed: the blocks are disjoint, so a release per block composes
        in parallel (each row is in one block), which a splitter with overlapping or
        data-dependent blocks (``StratifiedKFold`` uses the labels) would break.
    budget_split : float, default=0.5
        Share of ``(epsilon, delta)`` given to the tuning; the refit's noise is then the
        smallest with which the whole fit spends at most ``(epsilon, delta)`` (by
        composition, more than the remaining share). A neutral default until the
        benchmark says otherwise. Ignored by ``"sufficient-statistics"``, whose refit
        reuses the tuning's release and which therefore puts the whole budget into it.
    random_state : int, RandomState instance or None, default=None
        Seeds the blocks and all the noise. A fixed seed makes the noise reproducible by
        anyone who knows it, which voids the guarantee: use it for tests only.
    verbose : int, default=0
        1: print what each phase spent; 2: also the tuning method's progress.
"""


def check_spec(search):
    """``(kind, name, (low, high))`` of a search, or a ValueError naming what is wrong."""
    estimator = search.estimator
    model, cls = model_of(estimator), type(estimator).__name__
    if model is None:
        raise ValueError(f"PrivateHyperparamSearch supports {_SUPPORTED_TEXT}; got {cls}")
    params = estimator.get_params()
    for param, accepts, need, why in model.requires:
        if not accepts(params.get(param)):
            raise ValueError(f"PrivateHyperparamSearch supports {cls} with {need} only{why}; "
                             f"got {param}={params.get(param)!r}. Supported: {_SUPPORTED_TEXT}")
    kind, name = model.kind, model.name
    if set(search.param_bounds) != {name}:
        raise ValueError(f"PrivateHyperparamSearch tunes {name!r} of {cls} only: "
                         f"param_bounds must be {{{name!r}: (low, high)}}, got keys "
                         f"{sorted(search.param_bounds)}")
    lo, hi = positive_bounds(search.param_bounds, name)
    if search.delta is None:
        raise ValueError("delta is required (0 < delta < 1), e.g. well below 1/n for a "
                         "public bound n on the number of rows; see the docstring")
    if search.data_norm is None:
        raise ValueError("data_norm is required: the bound on the L2 norm of a row of X. "
                         "It must not be read from the data (that would leak it)")
    if kind == "ridge" and search.y_bound is None:
        raise ValueError("y_bound is required for regression: y is clipped to "
                         "[-y_bound, y_bound]. It must not be read from the data")
    if kind == "logistic" and search.y_bound is not None:
        raise ValueError(f"y_bound applies to regression only; leave it None for {cls}")
    return kind, name, (lo, hi)
