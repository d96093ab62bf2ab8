"""``HypergradientSearchCV(Ridge())`` on a ``dask.array``: no process holds ``X``.

The tuning needs only the moments of each validation block (``_ridge_dask.block_moments``:
one map-reduce pass on the cluster); a training fold's are the total minus its block's.
scikit-learn still does every scoring fit, every score and the refit, on the dask arrays
themselves, through :class:`MomentRidge`, which scikit-learn clones in place of the user's
``Ridge`` while the search's ``fit`` runs: its ``fit`` takes the moments of exactly those
rows (seeded by the search, from the same pass, so neither the scoring fits nor the refit
read ``X`` again) and solves the ridge system; its ``predict`` is the lazy ``X @ coef_.T
+ intercept_``, of which a scorer computes only the predictions of one fold (a vector).
"""

from __future__ import annotations

from contextvars import ContextVar

import numpy as np
from joblib import parallel_config
from sklearn.linear_model import Ridge
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from ._ridge_dask import block_moments, check_dask_data, is_dask_array, partition_labels
from ._ridge_folds import complement_moments, solve_from_moments
from ._search_adapters._ridge import MomentFolds

# Moments of the rows a running search's scoring fits and refit will fit, by the token of
# their (X, y, sample_weight): dask names a row selection of an array deterministically
# (``_safe_indexing`` -> ``X[rows]``, tokenized from the indices), so the search computes
# the keys scikit-learn's fits will see. Seeded and emptied by ``fit_dask_search``.
_MOMENTS: dict = {}
# Whether a search's scoring runs: its scorers compute a fold's predictions more than once
# (scikit-learn's regression metrics convert their inputs twice), so predict persists
# them on the cluster, computed in one pass over the fold's rows, and kept until scored.
_SCORING = ContextVar("skbilevel_dask_scoring", default=False)


def _token(X, y, sample_weight):
    from dask.base import tokenize

    return tokenize(X, y, sample_weight)


class MomentRidge(Ridge):
    """:class:`~sklearn.linear_model.Ridge` that also fits and predicts a ``dask.array``.

    On a dask ``X`` (``y`` and ``sample_weight`` dask or numpy) ``fit`` solves the ridge
    normal equations from the rows' weighted moments (``X^T S X``, ``X^T S y``, sums),
    taken from a running ``HypergradientSearchCV``'s pass over the data or otherwise
    computed on the cluster in one map-reduce; whatever ``solver``, the solution is the
    exact one (as ``solver="cholesky"``). ``predict`` on a dask ``X`` returns the lazy
    dask array ``X @ coef_.T + intercept_`` (persisted on the cluster while a search
    scores it). On numpy or sparse input both are Ridge's.
    This is the class of ``HypergradientSearchCV.best_estimator_`` after a fit on a dask
    array; its parameters are ``Ridge``'s.
    """

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (see the class); returns self."""
        if not is_dask_array(X):
            return super().fit(X, y, sample_weight=sample_weight)
        if np.ndim(self.alpha) != 0 or not self.alpha > 0:
            raise ValueError(f"alpha must be a positive float on a dask array, got "
                             f"{self.alpha!r}")
        if self.positive:
            raise ValueError("positive=True is not supported on a dask array")
        Y, weight = check_dask_data(X, y, sample_weight)
        raw = _MOMENTS.get(_token(X, y, sample_weight))
        if raw is None:  # not a search's fit: one pass on the cluster
            raw = block_moments(X, Y, weight, None, 1)[0][0]
        w, intercept = solve_from_moments(raw, self.alpha, self.fit_intercept)
        coef, intercept = w.numpy().T.copy(), intercept.numpy().copy()
        if np.ndim(y) == 1:
            coef, intercept = coef[0], intercept[0]
        self.coef_ = coef
        # Without an intercept Ridge stores the Python float 0.0, one target or several.
        self.intercept_ = intercept if self.fit_intercept else 0.0
        self.n_features_in_, self.n_iter_, self.solver_ = X.shape[1], None, "cholesky"
        return self

    def predict(self, X):
        """Predictions; lazy (a dask array) for a dask ``X``."""
        if not is_dask_array(X):
            return super().predict(X)
        check_is_fitted(self)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        prediction = X @ self.coef_.T + self.intercept_
        return prediction.persist() if _SCORING.get() else prediction


def check_dask_search(estimator):
    """A ValueError unless ``estimator`` is a bare ``Ridge``, the one model the search
    fits on a dask array."""
    if type(estimator) is not Ridge:
        raise ValueError(
            "HypergradientSearchCV on a dask array supports a bare sklearn Ridge only (its "
            "folds are built from moments computed on the cluster, and scikit-learn's "
            "scoring fits from the same moments); a Pipeline's transformers would have to "
            "be fitted on every training fold on the cluster. Transform X first (e.g. "
            f"with dask-ml), or pass a numpy X; got {type(estimator).__name__}")


def fit_dask_search(search, X, y, params, fit_params, folds, score_weight, base_fit):
    """``search.fit`` on a dask ``X``: the blocks' moments in one pass, then
    ``base_fit(X, y, **params)`` (``BaseSearchCV.fit``) with :class:`MomentRidge` in place
    of the user's ``Ridge`` and its fits' moments seeded. ``fit_params`` are the Ridge's
    (routed), ``folds`` the search's, ``score_weight`` the scorers' sample_weight."""
    sample_weight = fit_params.get("sample_weight")
    if set(fit_params) - {"sample_weight"}:
        raise ValueError(f"HypergradientSearchCV on a dask array takes sample_weight (and "
                         f"groups) only, got {sorted(set(fit_params) - {'sample_weight'})}")
    # y and the weights stay on the cluster, computed once (n numbers, spread over the
    # workers): every score computes a fold's targets (and weights), which would otherwise
    # rerun their whole graph each time. X is never persisted.
    y, sample_weight = (a.persist() if is_dask_array(a) else a for a in (y, sample_weight))
    if "sample_weight" in params:
        params = {**params, "sample_weight": sample_weight}
    Y, weight = check_dask_data(X, y, sample_weight)
    labels, n_blocks = partition_labels(folds, X.shape, "HypergradientSearchCV on a dask "
                                        "array", f"cv={search.cv!r}")
    blocks, _ = block_moments(X, Y, weight, labels, n_blocks)
    trains, total = complement_moments(blocks)
    if not all(bool(t.isfinite().all()) for t in total._fields()):
        raise ValueError("X, y and sample_weight must not contain NaN or infinity")
    val = blocks
    if sample_weight is not None and score_weight is None:
        # The scorers weigh every validation row alike (scikit-learn < 1.9, or a scorer
        # without sample_weight): the criterion needs the blocks' unweighted moments.
        import dask.array as da

        val = block_moments(X, Y, da.ones(X.shape[0], chunks=(X.chunks[0],)), labels,
                            n_blocks)[0]
    seeded = {_token(X, y, sample_weight): total}  # the refit's
    for (train, _), moments in zip(folds, trains):  # scikit-learn's scoring fits'
        seeded[_token(*(None if a is None else _safe_indexing(a, train)
                        for a in (X, y, sample_weight)))] = moments
    user = search.estimator
    search._search_data = (MomentFolds(trains, val, user), y, {}, folds, None)
    search.estimator = MomentRidge(**user.get_params())
    _MOMENTS.update(seeded)
    token = _SCORING.set(True)
    try:
        # In this process: its scoring fits find the seeded moments, and the predictions
        # they score are computed by this process's client on the cluster.
        with parallel_config(backend="sequential"):
            base_fit(X, y, **params)
    finally:
        _SCORING.reset(token)
        search.estimator = user
        for key in seeded:
            _MOMENTS.pop(key, None)
        del search._search_data
    return search
