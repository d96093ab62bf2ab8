"""Pieces shared by the bilevel cross-validation estimators.

They build the folds, the optional early-stopping holdout, build engine parts from their
registries, turn the engine's history into numpy arrays and report outer-loop convergence,
so each estimator module only says what its inner problem and criterion are.
"""

from __future__ import annotations

import inspect

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GroupShuffleSplit, check_cv, train_test_split
from sklearn.utils import check_random_state

from .utils._sklearn_compat import _check_method_params
from .utils._warnings import warn



# The ``n_jobs`` parameter of every CV estimator (numpydoc, 4-space indent).
N_JOBS_DOC = """n_jobs : int, default=None
        Folds evaluated in parallel through joblib threads (a joblib backend such as dask
        set with :func:`joblib.parallel_config` takes over). The fitting thread's torch
        threads are divided among the workers: ``n_jobs`` shares the same cores between
        folds instead of adding any, and every evaluation pays joblib's dispatch
        (milliseconds). It pays only with more cores than one fold's kernels use well and
        folds that take long to fit; on two cores it never did (``n_jobs=2`` took 1.4 to 12
        times as long on 200 x 10 data, 0.7 to 1.5 times on 20000 x 100 and 100000 x 100;
        see the user guide)."""


def positive_bounds(param_bounds, key):
    """``(low, high)`` of ``param_bounds[key]`` as floats with ``0 < low < high < inf`` (a
    log-scale box), or a ValueError naming the entry."""
    try:
        low, high = (float(b) for b in param_bounds[key])
    except (TypeError, ValueError):
        low = high = np.nan
    if not 0 < low < high < np.inf:
        raise ValueError(f"param_bounds[{key!r}] must be a pair (low, high) with "
                         f"0 < low < high < inf, got {param_bounds[key]!r}")
    return low, high


def make_splits(cv, X, y, rows=None, classifier=False, params=None):
    """Materialise ``cv`` into a list of ``(train, validation)`` positions into ``X[rows]``.

    Raises a ValueError naming ``cv`` when there are fewer samples than folds, rather than
    the splitter's less direct message. ``rows`` are the samples left after an
    early-stopping holdout (None: all). A splitter is applied to them; an explicit list of
    splits indexes all samples, so it is mapped onto ``rows`` with held-out samples dropped.
    ``classifier=True`` stratifies an integer ``cv`` by ``y`` (``StratifiedKFold``).
    ``params`` are keyword arguments of the splitter's ``split`` (``groups``...): those
    with one entry per sample are taken on ``rows`` as ``X`` is.
    """
    rows = np.arange(X.shape[0]) if rows is None else rows
    params = _check_method_params(X, params or {}, indices=rows)
    if _is_split_list(cv):
        position = np.full(X.shape[0], -1)
        position[rows] = np.arange(len(rows))
        cv = [(_keep(position, tr), _keep(position, va)) for tr, va in cv]
    n_all = X.shape[0]
    if len(rows) != n_all:  # no copy when nothing is held out
        X, y = X[rows], y[rows]
    n_samples = len(rows)
    splitter = check_cv(cv, y, classifier=classifier)
    # Repeated splitters need n_splits samples, not n_splits * n_repeats.
    # Group splitters count the groups (LeaveOneGroupOut needs them to count at all).
    groups = params.get("groups")
    n_splits = getattr(splitter, "cvargs", {}).get("n_splits") or \
        (splitter.get_n_splits(X, y) if groups is None else splitter.get_n_splits(X, y, groups))
    if n_samples < n_splits:
        raise ValueError(f"cv={n_splits} folds need at least {n_splits} samples, "
                         f"got n_samples={n_samples}")
    try:
        splits = list(splitter.split(X, y, **params))
    except ValueError as error:
        if n_samples == n_all:
            raise
        # "n_splits=3 greater than the number of groups: 2", of 3 groups given: say why.
        raise ValueError(f"{error} (cv splits the {n_samples} of {n_all} samples that the "
                         f"early-stopping holdout leaves; early_stopping=False keeps them "
                         f"all)") from error
    for train, val in splits:
        if len(train) == 0 or len(val) == 0:
            raise ValueError(f"cv produced an empty training or validation fold "
                             f"(n_samples={n_samples})")
    return splits


def contiguous_folds(splits):
    """A row order in which every fold's training and validation rows are slices.

    When the validation sets partition the samples (K-fold) and each training set is the
    rest, the order ``V_1 .. V_K, V_1 .. V_{K-1}`` (validation sets, the first ``K - 1``
    repeated) holds fold ``k``'s validation rows as ``V_k`` and its training rows as the
    run ``V_{k+1} .. V_{k-1}`` (cyclically). One gathered copy of ``2 - 1/K`` times the
    data then serves every fold as views, instead of ``K`` copies of the training rows.
    Returns ``(order, [(train_slice, val_slice), ...])`` positions into the split samples,
    or None when the splits are not such a partition (shuffle splits, repeated K-fold).
    """
    vals = [np.asarray(va) for _, va in splits]
    n = sum(len(v) for v in vals)
    everyone = np.concatenate(vals)
    if len(splits) < 2 or len(np.unique(everyone)) != n:
        return None
    for (train, _), val in zip(splits, vals):
        if len(train) != n - len(val) or not np.isin(train, everyone).all() or \
                np.isin(train, val).any():
            return None
    runs = vals + vals[:-1]
    starts = np.cumsum([0] + [len(v) for v in runs])
    slices = [(slice(starts[k + 1], starts[k + 1] + n - len(vals[k])),
               slice(starts[k], starts[k + 1])) for k in range(len(vals))]
    return np.concatenate(runs), slices


def holdout_split(n_samples, fraction, random_state, groups=None):
    """Indices ``(fit, holdout)`` of a random split used for early stopping.

    The split's seed is drawn from ``random_state`` rather than being ``random_state``:
    with the same integer, ``train_test_split`` draws the same permutation as
    ``KFold(shuffle=True, random_state=...)``, and the holdout would be a validation fold.
    With ``groups``, ``fraction`` of the groups is held out whole
    (:class:`~sklearn.model_selection.GroupShuffleSplit`): a group cut between the CV
    folds and the holdout would let the holdout judge on samples the folds have seen
    the like of, which is what the group splitter of ``cv`` prevents.
    """
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    idx = np.arange(n_samples)
    if groups is not None:
        split = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(split.split(idx, groups=groups))
    return train_test_split(idx, test_size=fraction, random_state=seed)


MIN_HOLDOUT = 100  # samples early_stopping='auto' needs to judge a per-feature path on


def early_stopping_rows(early_stopping, n_samples, several_penalties, fraction, random_state,
                        groups=None):
    """``(rows, held)``: the samples of the CV folds and of the early-stopping holdout
    (None without one). ``early_stopping="auto"`` holds samples out when there are
    several penalties to tune and the holdout would have at least ``MIN_HOLDOUT``.
    ``groups`` (of the group splitter, or None) are held out whole."""
    if early_stopping == "auto":
        early_stopping = several_penalties and n_samples * fraction >= MIN_HOLDOUT
    if not early_stopping:
        return np.arange(n_samples), None
    return holdout_split(n_samples, fraction, random_state, groups)


def build_part(make, registry, name, **options):
    """``make(name, registry, **accepted)``: an engine part from its registry, given the
    ``options`` its constructor takes.

    An estimator has one set of inner options (``step``, ``max_iter``, ``tol``, ``rtol``,
    ...); each goes to the solvers or methods that have such a parameter, so choosing a part
    by name needs no branch per name.

    Parameters
    ----------
    make : callable
        ``make_inner_solver``, ``make_hypergradient`` or ``make_linear_solver``.
    registry : dict
        Name to class.
    name : str
        The part to build, a key of ``registry``.
    **options
        Candidate constructor arguments.
    """
    accepted = inspect.signature(registry[name]).parameters
    return make(name, registry, **{k: v for k, v in options.items() if k in accepted})


def history_to_arrays(history, theta_to_user):
    """Turn the engine's per-evaluation records into a dict of numpy arrays.

    ``theta_to_user`` maps one unconstrained ``theta`` to the user's hyperparameters: a
    value stacked under the key ``"alpha"``, or a dict of them stacked under its keys.
    """
    if not history:
        return {}
    keys = dict.fromkeys(key for rec in history for key in rec)  # e.g. holdout in stage 2
    out = {key: np.array([rec.get(key, np.nan) for rec in history])
           for key in keys if key != "theta"}
    user = [theta_to_user(rec["theta"]) for rec in history]
    if isinstance(user[0], dict):
        out.update({key: np.array([u[key] for u in user]) for key in user[0]})
    else:
        out["alpha"] = np.array(user)
    out["theta"] = np.array([rec["theta"] for rec in history])
    return out


def warn_if_not_converged(result, name):
    """ConvergenceWarning when the outer loop or an inner solve stopped early."""
    if not result.converged:
        warn(f"{name}: the hyperparameter optimisation did not converge "
             f"({result.message}) after {result.n_iter} iterations; the best point "
             "found is used. Increase max_iter or loosen tol.", ConvergenceWarning)
    if result.history and not result.history[-1]["inner_converged"]:
        warn(f"{name}: an inner or adjoint solve hit its iteration cap; "
             "hypergradients may be inaccurate.", ConvergenceWarning)



def _is_split_list(cv):
    return not (cv is None or isinstance(cv, (int, np.integer)) or hasattr(cv, "split"))


def _keep(position, idx):
    mapped = position[np.asarray(idx)]
    return mapped[mapped >= 0]
