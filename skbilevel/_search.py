"""``HypergradientSearchCV``: a ``GridSearchCV`` drop-in that follows the hypergradient."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import _safe_indexing, check_array, get_tags, indexable
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed

from ._ridge_dask import is_dask_array
from ._search_adapters import ADAPTERS, adapter_for, reporting
from ._search_adapters._ridge import MomentFolds
from ._search_dask import check_dask_search, fit_dask_search
from ._search_folds import _split_pipeline, _transform_fold, _weights
from ._search_scoring import PathScoring
from .engine.loop import Progress
from .utils._memory import without_hugepage_advice
from .utils._sklearn_compat import (Interval, _check_method_params, _check_sample_weight,
                                    _yields_constant_splits)

_SUPPORTED = ", ".join(f"{a.estimator_class.__name__} ({', '.join(map(repr, a.params))})"
                       for a in ADAPTERS)


class HypergradientSearchCV(BaseSearchCV):
    """Search a model's continuous penalty by cross-validated hypergradients.

    A drop-in for ``GridSearchCV(estimator, {"ridge__alpha": np.logspace(...)})``: instead
    of a grid of penalties, the penalty follows the exact gradient of the cross-validated
    criterion (implicit differentiation of the fold fits) within ``param_bounds``, from the
    best point of a coarse screening grid (one point per decade). The points of that
    search are scored by scikit-learn's own machinery (``evaluate_candidates``), each as
    soon as it is evaluated (see ``n_jobs``), so ``cv_results_``, ``best_params_``,
    ``best_score_``, ``refit``, multimetric scoring and ``return_train_score`` behave as in
    ``GridSearchCV``.

    With a :class:`~sklearn.pipeline.Pipeline`, its transformers are fitted on each
    training fold only (no leakage), once per fold and combination of ``param_grid``, and
    the final step's penalty is tuned on the transformed folds.

    Parameters
    ----------
    estimator : estimator object
        :class:`~sklearn.linear_model.Ridge`, :class:`~sklearn.linear_model.LogisticRegression`
        (L2 penalty, ``class_weight=None``) or :class:`HDMLogisticRegression`
        (``class_weight=None``; tuned as ``LogisticRegression``, whose objective it
        minimises, and refitted by HDM), or a ``Pipeline`` ending in one. On a
        ``dask.array`` ``X``: a bare ``Ridge`` (see ``fit``).
    param_bounds : dict
        One entry, the final step's penalty, to ``(low, high)`` with ``0 < low < high``,
        searched on a log scale: ``{"alpha": ...}`` or ``{"ridge__alpha": ...}`` for Ridge,
        ``{"C": ...}`` or ``{"logisticregression__C": ...}`` for LogisticRegression.
    param_grid : dict or list of dicts, default=None
        Discrete parameters anywhere in the pipeline (``{"polynomialfeatures__degree":
        [1, 2]}``), searched as in ``GridSearchCV``: the penalty is tuned for each
        combination.
    scoring : str, callable, list, tuple or dict, default=None
        As in ``GridSearchCV``; scikit-learn's scorers compute every reported score. The
        criterion followed by the hypergradient is the refit metric when it is
        differentiable: ``"neg_mean_squared_error"`` or ``"r2"`` (None: R^2, Ridge's
        score) for Ridge, ``"neg_log_loss"`` for LogisticRegression. Any other metric
        (``"accuracy"``, a callable, ...) is reported but not differentiated: the path
        follows the CV mean squared error (Ridge) or log-loss (LogisticRegression), and
        the best point is the evaluated one that scores best by the requested metric.
    cv : int, cross-validation generator or iterable, default=5
        As in ``GridSearchCV``. A splitter that shuffles must have an integer
        ``random_state``: the folds are materialised once and must be the ones
        scikit-learn scores on.
    refit : bool, str or callable, default=True
        As in ``GridSearchCV``.
    n_jobs : int, default=None
        Jobs run in parallel by joblib, as in ``GridSearchCV``: scikit-learn's scoring
        fits of the evaluated points and, before them, the tuning of the ``param_grid``
        combinations (one task each: its prefix fits on the training folds and its whole
        hypergradient path). Under ``joblib.parallel_config(backend="dask")`` with a
        ``distributed.Client`` both run on the Dask cluster, with the same results as
        ``n_jobs=None`` (see the user guide's "Scaling out on Dask"). When joblib runs
        one job (``None`` or 1 outside a parallel backend) the combinations are tuned in
        turn in this process and scikit-learn scores each point of the hypergradient
        search as soon as the engine has evaluated it; with parallel tasks, a
        combination's points are scored once its path comes back.
    verbose : int, default=0
        As in ``GridSearchCV`` (scikit-learn's messages about its fits), and: 1 prints
        each combination's tuned penalty; 2 also every evaluated point as it is
        evaluated (the CV criterion and the penalty), 3 with the hypergradient norm.
        Printed by the process that runs the tuning: a joblib or Dask worker's output
        when ``n_jobs`` or a Dask backend sends the tuning there.
    random_state : int, RandomState instance or None, default=None
        Reserved; unused. The path is deterministic (a screening grid of one point per
        decade over the bounds, then a bracketing search on the hypergradient), so there
        is nothing random to seed; randomised restarts are not implemented, as none was
        shown to improve on the screening grid's start. Splitters take their own
        ``random_state``.
    error_score : "raise" or float, default=np.nan
        As in ``GridSearchCV``.
    return_train_score : bool, default=False
        As in ``GridSearchCV``.
    max_iter : int, default=20
        Evaluations of the hypergradient search per combination, after the screening grid.
    tol : float, default=1e-6
        Relative decrease of the CV criterion below which the search stops. For
        ``Ridge`` up to 4000 features (closed-form fits: an evaluation costs far less than
        scikit-learn's scoring of a point) the engine then polishes the best point to
        1e-12 relative, without scikit-learn scoring the intermediate points (``path_``
        lists them, phase ``"polish"``): on a flat CV curve a decrease of ``tol`` spans a
        wide interval, enough to stop short of a fine grid's best point.
    score_screening : bool, default=False
        Whether scikit-learn also scores the screening grid's points. By default only the
        hypergradient search's points (which start from the screening grid's best) and
        the path's best point are scored and reported in ``cv_results_``: scikit-learn's
        fit-and-score of a point on every fold costs as much as a grid point of
        ``GridSearchCV``, and on the benchmark it was most of the search's time. The
        screening values computed by the engine stay in ``path_``. With ``True`` every
        distinct point is scored, once its combination's path is over (a screened point
        evaluated again later reports that evaluation's hypergradient).
    pre_dispatch : int or str, default="2*n_jobs"
        As in ``GridSearchCV``.

    Attributes
    ----------
    cv_results_ : dict of ndarray
        ``GridSearchCV``'s, one row per point scored by scikit-learn (see
        ``score_screening``), combination after combination, in the order scored: by
        default the hypergradient search's points as they were evaluated (a screened point
        that the search evaluates again, when it does), then the path's best point if it
        is none of them; with ``score_screening=True`` the order of first evaluation.
        Plus ``"iter"`` (the position of the point's first evaluation in its
        combination's path, the screening grid first) and ``"hypergradient"`` (the
        derivative of the tuned CV criterion with respect to the log of the penalty; NaN
        on the screening grid, which is evaluated without gradients),
        ``"hypergradient_<name>"`` for a further tuned parameter (``l1_ratio``: with
        respect to the parameter itself).
    n_iter_ : int
        Evaluations of the CV criterion by the engine, over all the combinations
        (screening grids included).
    path_ : list of dict
        Every evaluation by the engine in order, combination after combination:
        ``params`` (as in ``cv_results_["params"]``), ``objective`` (the tuned CV
        criterion, lower is better: mean squared error, 1 - R^2 or log-loss),
        ``hypergradient`` (per tuned parameter; NaN on the screening grid), ``phase``
        (``"grid"``: the screening grid, ``"optimize"``: the hypergradient search,
        ``"polish"``: see ``tol``) and ``scored`` (whether the point is in
        ``cv_results_``).
    best_estimator_, best_score_, best_params_, best_index_, scorer_, n_splits_, \
refit_time_, multimetric_ :
        As in ``GridSearchCV``.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The same search over a fixed grid.
    BilevelRidgeCV : Ridge tuned by hypergradients, with per-feature penalties.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skbilevel import HypergradientSearchCV
    >>> X, y = load_diabetes(return_X_y=True)
    >>> search = HypergradientSearchCV(make_pipeline(StandardScaler(), Ridge()),
    ...                                {"ridge__alpha": (1e-4, 1e4)}).fit(X, y)
    >>> 1e-4 <= search.best_params_["ridge__alpha"] <= 1e4
    True
    """

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_bounds": [dict],
        "param_grid": [dict, list, None],
        "random_state": ["random_state"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "score_screening": ["boolean"],
    }

    def __init__(self, estimator, param_bounds, *, param_grid=None, scoring=None, cv=5,
                 refit=True, n_jobs=None, verbose=0, random_state=None, error_score=np.nan,
                 return_train_score=False, max_iter=20, tol=1e-6, score_screening=False,
                 pre_dispatch="2*n_jobs"):
        super().__init__(estimator=estimator, scoring=scoring, n_jobs=n_jobs, refit=refit,
                         cv=cv, verbose=verbose, pre_dispatch=pre_dispatch,
                         error_score=error_score, return_train_score=return_train_score)
        self.param_bounds = param_bounds
        self.param_grid = param_grid
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol
        self.score_screening = score_screening

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Ridge's multi-output support is the search's (BaseSearchCV leaves the default).
        tags.target_tags.multi_output = get_tags(self.estimator).target_tags.multi_output
        return tags

    def __getstate__(self):
        # scikit-learn >= 1.9 pickles the search into every scoring task (caller=self):
        # the data and folds of a running fit stay behind.
        # (BaseEstimator's state can be the instance's own __dict__: copy, never pop it.)
        state = dict(super().__getstate__())
        state.pop("_search_data", None)
        return state

    @without_hugepage_advice
    def fit(self, X, y=None, **params):
        """Tune the penalty of every ``param_grid`` combination, then refit the best.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or dask.array
            Training data. A ``dask.array`` (data larger than one machine) with a bare
            ``Ridge`` as the estimator: the validation blocks' moments are computed on
            the cluster in one pass, each combination is tuned from them, and
            scikit-learn's scoring fits and refit use the same moments, so that no
            process holds ``X``; ``best_estimator_`` is then a ``Ridge`` subclass whose
            ``predict`` on a dask array is lazy. The folds' validation blocks must
            partition the rows (an int or a ``KFold``); see the user guide's "Scaling
            out on Dask".
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets (a ``dask.array`` too with a dask ``X``).
        **params : dict
            As in ``GridSearchCV.fit``: fit parameters of the estimator (``sample_weight``
            of a bare estimator, ``step__param`` of a pipeline's steps; the final step's
            ``sample_weight`` weights its training losses in the tuning too) and
            ``groups`` of a group splitter.

        Returns
        -------
        self : object
            The fitted search.
        """
        self._resolve()  # clear errors before any fit
        on_dask = is_dask_array(X)  # data larger than one machine: _search_dask.py
        if on_dask:
            check_dask_search(self.estimator)
        X, y = indexable(X, y)
        # The engine would carry a NaN target into every fold silently (on a dask array
        # the moments' pass checks it, without computing y here).
        if y is not None and not (on_dask and is_dask_array(y)):
            check_array(y, ensure_2d=False, dtype=None, input_name="y")
        params = _check_method_params(X, params=params)
        for key, value in params.items():  # the engine would get NaN or a short vector
            if value is not None and not (on_dask and is_dask_array(value)) and (
                    key == "sample_weight" or key.endswith("__sample_weight")):
                params[key] = _check_sample_weight(value, X, dtype=np.float64)
        routed = self._get_routed_params_for_fit(params)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        if not _yields_constant_splits(cv):
            raise ValueError("HypergradientSearchCV needs the same folds at every call to "
                             "cv.split(): set the splitter's random_state to an int, or "
                             "shuffle=False")
        folds = list(cv.split(X, y, **routed.splitter.split))
        # scikit-learn's scorers get the top-level sample_weight (scikit-learn >= 1.9, when
        # they accept it): the tuned criterion weights the validation errors alike.
        score_weight = routed.scorer.score.get("sample_weight") \
            if "scorer" in routed else None
        if on_dask:
            return fit_dask_search(self, X, y, params, routed.estimator.fit, folds,
                                   score_weight, super().fit)
        self._search_data = (X, y, routed.estimator.fit, folds, score_weight)
        try:
            return super().fit(X, y, **params)
        finally:
            del self._search_data

    def _run_search(self, evaluate_candidates):
        X, y, fit_params, folds, score_weight = self._search_data
        # On a dask array X is its folds' moments, and self.estimator is, while fit runs,
        # the MomentRidge that scikit-learn's fits clone; the user's Ridge is tuned.
        estimator = X.estimator if isinstance(X, MomentFolds) else self.estimator
        prefix, adapter, bounds = self._resolve(estimator)
        objective = self._objective(adapter)
        combos = list(ParameterGrid(self.param_grid or {}))

        def task(combo):
            return (clone(estimator).set_params(**combo), adapter, X, y, fit_params,
                    folds, score_weight, bounds, objective, self.max_iter, self.tol,
                    self.verbose,
                    f"[HypergradientSearchCV] {combo}" if combo else "[HypergradientSearchCV]")

        # Sequential (n_jobs=None or 1): each combination is tuned here, and each point is
        # scored by scikit-learn as soon as the engine has evaluated it (PathScoring), so a
        # good point is in cv_results_ (and a callback's view) before the path goes on.
        # Otherwise one joblib task per combination: its prefix fits on the K training
        # folds and its whole tuning path (a sequence of dependent evaluations). Only the
        # path, a few floats per point, comes back; X travels once (joblib's Dask backend
        # scatters it). Finer tasks (per prefix fit, per fold evaluation) would ship the
        # transformed folds or each fold's problem back and forth (measured in the user
        # guide, doc/user_guide/search_dask.rst); scoring a point from inside a task would
        # need scikit-learn's scoring there. The paths then come back in order and are
        # scored combination by combination, with the same rows as the sequential search.
        stream = effective_n_jobs(self.n_jobs) == 1
        scorings = [PathScoring(evaluate_candidates, combo, prefix, list(bounds),
                                score_screening=self.score_screening, stream=stream)
                    for combo in combos]
        if stream:
            paths = (_tune_combination(*task(combo), on_point=scoring.add)
                     for combo, scoring in zip(combos, scorings))
        else:
            paths = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)(
                delayed(_tune_combination)(*task(combo)) for combo in combos)
        self.n_iter_, self.path_ = 0, []
        for combo, scoring, path in zip(combos, scorings, paths):
            if not stream:
                for point in path:
                    scoring.add(point)
            scoring.finish()
            self.n_iter_ += len(path)
            self.path_ += scoring.records()
            if self.verbose > 0:
                best, value = min(path, key=lambda p: p[1])[:2]
                tuned = " ".join(f"{prefix}{k}={v:.4g}" for k, v in best.items())
                print(f"[HypergradientSearchCV] {combo or ''} {tuned} "
                      f"(CV {objective} {value:.6g}, {len(path)} evaluations, "
                      f"{len(scoring.scored)} scored)")

    # -- helpers ----------------------------------------------------------------------------
    def _resolve(self, estimator=None):
        """``(key prefix, adapter, {name: (low, high)})`` of ``estimator`` (None: the
        search's), or a ValueError naming what is supported."""
        _, final, last = _split_pipeline(self.estimator if estimator is None else estimator)
        adapter = adapter_for(final)
        if adapter is None:
            raise ValueError(f"HypergradientSearchCV supports {_SUPPORTED}, alone or as the "
                             f"last step of a Pipeline; got {type(final).__name__}")
        adapter.check(final)
        prefix = "" if last is None else f"{last}__"
        names = {prefix + name: name for name in adapter.params}
        required = prefix + adapter.param
        if required not in self.param_bounds or set(self.param_bounds) - set(names):
            optional = [k for k in names if k != required]
            also = f" and optionally {optional}" if optional else ""
            raise ValueError(f"param_bounds must have the key {required!r} (the penalty of "
                             f"{type(final).__name__}){also}; supported: {_SUPPORTED}; got "
                             f"{sorted(self.param_bounds)}")
        # The adapter's order (the penalty first), whatever the user's.
        bounds = {names[k]: adapter.parse_bounds(names[k], k, self.param_bounds)
                  for k in names if k in self.param_bounds}
        grids = [self.param_grid] if isinstance(self.param_grid, dict) else \
            (self.param_grid or [])
        for key in names:
            if key in self.param_bounds and any(key in grid for grid in grids):
                raise ValueError(f"{key!r} is tuned within param_bounds; remove it from "
                                 "param_grid")
        return prefix, adapter, bounds

    def _objective(self, adapter):
        """The engine's criterion for the refit metric (see ``scoring``)."""
        scoring = self.scoring
        if isinstance(scoring, (list, tuple, set, dict)):
            name = self.refit if isinstance(self.refit, str) else None
            scoring = scoring.get(name) if isinstance(scoring, dict) else name
        if scoring is not None and not isinstance(scoring, str):
            return adapter.default_objective  # a callable: not differentiable here
        return adapter.objectives.get(scoring, adapter.default_objective)


def _tune_combination(estimator, adapter, X, y, fit_params, folds, score_weight, bounds,
                      objective, max_iter, tol, verbose, label, on_point=None):
    """One combination's tuning (a joblib task with ``n_jobs``): fit the prefix of
    ``estimator`` (one ``param_grid`` combination) on each training fold, then tune its
    final step on the transformed folds.

    Returns the adapter's path, plain floats; ``on_point`` (None in a task) gets each
    point as it is evaluated. With ``verbose >= 2`` every evaluation is printed as it is
    made, by the process that runs the tuning (a Dask worker's log).
    """
    transformers, final, last = _split_pipeline(estimator)
    if isinstance(X, MomentFolds):  # a dask array's, from the cluster (_search_dask.py)
        data = X
    else:
        data = [_transform_fold(transformers, last, X, y, fit_params, tr, va)
                for tr, va in folds]
    if score_weight is not None:
        for fold, (_, va) in zip(data, folds):
            fold.score_weight = _weights(_safe_indexing(score_weight, va))
    progress = None if verbose < 2 else (lambda describe, callback: Progress(
        verbose - 1, describe=describe, prefix=label, callback=callback))
    with reporting(progress, on_point):
        return adapter.tune(final, data, bounds, objective, max_iter=max_iter, tol=tol)
