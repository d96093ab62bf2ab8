"""The data of :class:`~skbilevel.HyperCleaningClassifier`: the trusted set, checked against
the training set, or held out from it; and the inner problem on the engine's tensors."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_array, column_or_1d

from .engine.inner import LinearModel, MLPModel, WeightedModuleProblem


def check_trusted_set(estimator, X, X_val, y_val, dtype):
    """``(X_val, y_val)`` validated against the fitted ``X`` and ``classes_``.

    Raises a ValueError naming the parameter: one of the two missing, NaN or infinite
    values, a number of columns other than ``X``'s, lengths that differ, or labels in
    ``y_val`` that ``y`` does not have (the model cannot predict a class it never saw).
    """
    name = type(estimator).__name__
    if X_val is None or y_val is None:
        missing = "X_val" if X_val is None else "y_val"
        raise ValueError(f"{name}.fit got {'y_val' if missing == 'X_val' else 'X_val'} "
                         f"without {missing}: pass both, the trusted set's features and "
                         f"labels")
    X_val = check_array(X_val, dtype=dtype, input_name="X_val", estimator=estimator)
    y_val = column_or_1d(y_val, warn=True)
    if X_val.shape[1] != X.shape[1]:
        raise ValueError(f"X_val has {X_val.shape[1]} features, but X has {X.shape[1]}: "
                         f"the trusted set must have the training set's columns")
    if len(y_val) != X_val.shape[0]:
        raise ValueError(f"y_val has {len(y_val)} labels for the {X_val.shape[0]} rows of "
                         f"X_val")
    if y_val.dtype.kind == "f" and not np.isfinite(y_val).all():
        raise ValueError("y_val contains NaN or infinity")
    unseen = np.setdiff1d(y_val, estimator.classes_)
    if unseen.size:
        raise ValueError(f"y_val has labels that y does not have: {unseen.tolist()}; the "
                         f"model learns the classes of y ({estimator.classes_.tolist()})")
    return X_val, y_val


def hold_out(codes, fraction, seed):
    """``(train, trusted)`` indices: ``fraction`` of the samples, stratified by class when
    every class has two samples or more, drawn with the integer ``seed``."""
    n = len(codes)
    n_val = max(1, math.ceil(fraction * n))
    if n - n_val < 1:
        raise ValueError(f"validation_fraction={fraction} leaves no training sample out of "
                         f"n_samples={n}")
    stratify = np.bincount(codes).min() >= 2 and n_val >= len(np.unique(codes)) and \
        n - n_val >= len(np.unique(codes))
    splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(
        n_splits=1, test_size=n_val, random_state=seed)
    train, trusted = next(splitter.split(np.zeros((n, 1)), codes))
    return np.sort(train), np.sort(trusted)


def build_problem(estimator, X, codes, X_val, codes_val, base, n_classes, device):
    """The engine's :class:`~skbilevel.engine.inner.WeightedModuleProblem`, in float64 on
    ``device``, on features standardised by the training set's mean and deviation (the
    learned weights do not depend on the units of the columns; the step sizes do)."""
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std[~(std > 0)] = 1.0  # constant columns stay constant (zero)

    def tensor(A):  # torch.tensor copies: never a view of a read-only array of the user
        return torch.tensor((np.asarray(A, dtype=np.float64) - mean) / std,
                            dtype=torch.float64, device=device)

    def labels(t):
        return torch.tensor(np.asarray(t, dtype=np.int64), device=device)

    d = X.shape[1]
    model = LinearModel(d, n_classes) if estimator.model == "linear" else \
        MLPModel(d, n_classes, hidden=tuple(estimator.hidden))
    return WeightedModuleProblem(
        tensor(X), labels(codes), tensor(X_val), labels(codes_val), model,
        reg=estimator.reg,
        base_weights=torch.tensor(np.asarray(base, dtype=np.float64), device=device))


def refit_weights(quality, refit_threshold):
    """Per-sample weights of the final refit from ``label_quality_``: 1 at or above
    ``refit_threshold`` and 0 below (the suspect samples left out), or the quality itself
    when ``refit_threshold`` is None."""
    if refit_threshold is None:
        return quality
    return (quality >= refit_threshold).astype(np.float64)


# The neighbour vote of ``n_neighbors``: it looks at the kept samples whose quality is below
# VOTE_HIGH and leaves out those whose given label has a share below VOTE_CUT among their
# neighbours. Both chosen with n_neighbors=7 on digits dev seeds 5-24 and checked,
# unchanged, on fresh seeds 25-44 (benchmarks/dev_cleaning_band.py).
VOTE_HIGH = 0.3
VOTE_CUT = 0.3


def neighbor_vote(X, codes, X_val, codes_val, quality, kept, n_neighbors):
    """Boolean mask of the samples the neighbour vote leaves out of the refit.

    The band is the ``kept`` samples with ``quality < VOTE_HIGH``: their label is
    doubtful but was not left out. Each votes with its ``n_neighbors`` nearest neighbours
    (Euclidean on the features as given) among the kept samples, itself included, and
    the trusted set; it is voted out when the share of them with its given label is below
    ``VOTE_CUT`` (for 7 neighbours: at most one besides itself). In that band the
    out-of-fold probability no longer tells the flips from the hard clean samples; the
    neighbourhood's labels still do (AUROC 0.96 in the band on digits at p = 0.4).
    ``n_neighbors=None``: nobody is voted out.
    """
    voted = np.zeros(len(codes), dtype=bool)
    band = np.flatnonzero(kept & (quality < VOTE_HIGH))
    if n_neighbors is None or not len(band):
        return voted
    ref_X = np.concatenate([X[kept], X_val])
    ref_codes = np.concatenate([codes[kept], codes_val])
    n_neighbors = min(n_neighbors, len(ref_codes))
    _, neighbors = NearestNeighbors(n_neighbors=n_neighbors).fit(ref_X).kneighbors(X[band])
    share = (ref_codes[neighbors] == codes[band, None]).mean(axis=1)
    voted[band[share < VOTE_CUT]] = True
    return voted


def vote_weights(quality, refit_threshold, base, X, codes, X_val, codes_val, n_neighbors):
    """``(weights, voted)`` of the final refit: ``base`` times :func:`refit_weights`,
    then 0 for the samples :func:`neighbor_vote` leaves out (``voted``; the kept samples
    are those of nonzero weight). The estimator and the benchmark both call it."""
    weights = base * refit_weights(quality, refit_threshold)
    voted = neighbor_vote(X, codes, X_val, codes_val, quality, weights > 0, n_neighbors)
    weights[voted] = 0.0
    return weights, voted


def minmax(weights):
    """``weights`` mapped affinely onto [0, 1] (all ones when they are all equal): the
    learned weights' ORDER, whatever the method's scale (pgd-cqa's clean weights sit
    near 1/2, reweight's span [0, 1])."""
    low, high = weights.min(), weights.max()
    if not high > low:
        return np.ones_like(weights)
    return (weights - low) / (high - low)


def cv_confidence(estimator, X, codes, X_val, codes_val, weights, cv, seed):
    """Out-of-sample probability of each sample's given label (codes into ``classes_``).

    ``cv`` stratified folds (fewer when a class has fewer samples; none below 2): a clone
    of ``estimator`` is fitted on the other folds weighted by ``weights`` together with
    the whole trusted set at weight 1, and predicts the held-out fold. The trusted set
    makes every fold's model see clean labels; the weights (the bilevel ones) keep the
    samples the trusted set already distrusts from teaching it. Classes a fold's model
    never saw get probability 0.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    n_splits = min(cv, int(np.bincount(codes).min()))
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed) if n_splits >= 2 \
        else KFold(min(cv, len(codes)), shuffle=True, random_state=seed)
    quality = np.zeros(len(codes))
    for train, held in splitter.split(np.zeros((len(codes), 1)), codes):
        model = clone(estimator).fit(
            np.concatenate([X[train], X_val]), np.concatenate([codes[train], codes_val]),
            sample_weight=np.concatenate([weights[train], np.ones(len(codes_val))]))
        proba = model.predict_proba(X[held])
        column = {c: j for j, c in enumerate(model.classes_)}
        quality[held] = [proba[i, column[c]] if c in column else 0.0
                         for i, c in enumerate(codes[held])]
    return quality


def cv_quality(estimator, X, codes, X_val, codes_val, bilevel, base, cv, seed, rounds,
               refit_threshold):
    """``label_quality_`` of ``confidence="cv"``: :func:`cv_confidence` ``rounds`` times.

    The first round's folds are weighted by ``base`` times the min-max-scaled ``bilevel``
    weights; every later round's by ``base`` times :func:`refit_weights` of the previous
    round's quality (the samples the refit would keep), on the same folds. A second round
    lets the folds' models learn without the labels the first round already found wrong
    (confident learning iterated); on digits dev seeds 5-14 it added 0.0015 / 0.0033 test
    accuracy at p = 0.2 / 0.4 (``benchmarks/dev_cleaning_seeds.py``).
    """
    weights = base * minmax(bilevel)
    for _ in range(rounds):
        quality = cv_confidence(estimator, X, codes, X_val, codes_val, weights, cv, seed)
        weights = base * refit_weights(quality, refit_threshold)
    return quality
