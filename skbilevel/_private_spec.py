"""What :class:`PrivateHyperparamSearch` supports, and the checks ``fit`` runs first.

Every check here reads parameters only, never the data: an error that depended on the rows
would itself be a release.
"""

from __future__ import annotations

import math

from sklearn.linear_model import LogisticRegression, Ridge

# Estimator class -> (model family, the tunable hyperparameter).
SUPPORTED = {Ridge: ("ridge", "alpha"), LogisticRegression: ("logistic", "C")}
_SUPPORTED_TEXT = ("sklearn.linear_model.Ridge (tuning 'alpha') and binary "
                   "sklearn.linear_model.LogisticRegression with an L2 penalty (tuning 'C')")

DOC_PARAMETERS = """\
    estimator : Ridge or LogisticRegression
        The model: :class:`~sklearn.linear_model.Ridge` (``alpha`` tuned) or a binary
        :class:`~sklearn.linear_model.LogisticRegression` with an L2 penalty (``C`` tuned;
        no ``class_weight``). Its ``fit_intercept`` is used; its other hyperparameters
        are kept in :attr:`best_estimator_`.
    param_bounds : dict
        ``{"alpha": (low, high)}`` or ``{"C": (low, high)}``, ``0 < low < high < inf``:
        the box of the search, on a log scale. Required: there is no data-free default.
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
    method : {"auto", "sufficient-statistics", "penalty", "random-search"}, default="auto"
        The private tuning method. ``"sufficient-statistics"`` (ridge): one Gaussian
        release of each validation block's moments, then tuning and refit as free
        post-processing. ``"penalty"``: the first-order penalty hypergradient method with
        private inner solves. ``"random-search"``: private candidates, private selection.
        ``"auto"`` (provisional until the benchmark): sufficient statistics for ridge,
        random search for logistic regression (see the user guide).
    max_iter : int, default=100
        Outer steps of the penalty method; unused by ``"sufficient-statistics"``, whose
        search is post-processing, and by ``"random-search"``, whose number of runs is
        random (and secret) by design.
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
    model = search.estimator
    entry = next((v for cls, v in SUPPORTED.items() if isinstance(model, cls)), None)
    if entry is None:
        raise ValueError(f"PrivateHyperparamSearch supports {_SUPPORTED_TEXT}; got "
                         f"{type(model).__name__}")
    kind, name = entry
    if set(search.param_bounds) != {name}:
        raise ValueError(f"PrivateHyperparamSearch tunes {name!r} of "
                         f"{type(model).__name__} only: param_bounds must be "
                         f"{{{name!r}: (low, high)}}, got keys {sorted(search.param_bounds)}")
    try:
        lo, hi = (float(b) for b in search.param_bounds[name])
    except (TypeError, ValueError):
        raise ValueError(f"param_bounds[{name!r}] must be a pair (low, high), got "
                         f"{search.param_bounds[name]!r}") from None
    if not 0 < lo < hi < math.inf:
        raise ValueError(f"param_bounds[{name!r}] must satisfy 0 < low < high < inf, got "
                         f"({lo}, {hi})")
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
        raise ValueError("y_bound applies to regression only; leave it None for "
                         "LogisticRegression")
    if kind == "ridge" and model.get_params().get("positive", False):
        raise ValueError("PrivateHyperparamSearch supports Ridge with positive=False only")
    if kind == "logistic":
        params = model.get_params()
        if params.get("penalty", "l2") not in ("l2", "deprecated") or \
                params.get("l1_ratio") not in (None, 0, 0.0):
            raise ValueError("PrivateHyperparamSearch supports LogisticRegression with an "
                             "L2 penalty only (l1_ratio=0)")
        if params.get("class_weight") is not None:
            raise ValueError("PrivateHyperparamSearch supports LogisticRegression with "
                             "class_weight=None only: class weights computed from the "
                             "labels would change the sensitivity")
    return kind, name, (lo, hi)
