"""Group splitters and routed ``fit`` parameters, for every CV estimator (issue 13, item 1).

``fit(X, y, sample_weight=None, **params)``: ``groups`` always reaches the splitter (as in
``GridSearchCV.fit``), other parameters need metadata routing, under which ``fit`` routes
to ``cv.split`` what the splitter requests (as ``LassoCV`` does).
"""

import copy
import inspect
import re
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.model_selection import (GridSearchCV, GroupKFold, GroupShuffleSplit, KFold,
                                     LeaveOneGroupOut, StratifiedGroupKFold, cross_val_score)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .zoo import CV_ZOO, ZOO, parametrize, problem

N_GROUPS = 9


def grouped_problem(entry, n_samples=90, seed=0):
    """``(X, y, groups)``: ``problem(entry)`` with ``N_GROUPS`` groups of unequal sizes,
    interleaved (not contiguous, so that KFold would cut every one of them)."""
    X, y = problem(entry, n_samples=n_samples, seed=seed)
    groups = np.random.default_rng(seed + 1).integers(0, N_GROUPS, n_samples)
    return X, y, groups


def recording(splitter):
    """A copy of ``splitter`` whose ``split`` records ``(groups, splits)`` in ``.calls``
    (its metadata requests are the splitter's: a subclass inherits them)."""
    base = type(splitter)

    class Recording(base):
        def split(self, X, y=None, groups=None):
            splits = list(base.split(self, X, y, groups))
            self.calls.append((None if groups is None else np.asarray(groups), splits))
            return iter(splits)

    copied = copy.copy(splitter)
    copied.__class__ = Recording
    copied.calls = []
    return copied


def group_splitters(entry):
    splitters = [GroupKFold(3), LeaveOneGroupOut(),
                 GroupShuffleSplit(n_splits=3, test_size=0.3, random_state=0)]
    return splitters + ([StratifiedGroupKFold(3)] if entry.classifier else [])


def fitted_answer(model):
    """What a fit chose: its selected hyperparameters, coefficients and CV score."""
    chosen = model.C_ if hasattr(model, "C_") else model.alpha_
    return np.atleast_1d(chosen), np.ravel(model.coef_), model.best_score_


def assert_same_fit(a, b):
    for left, right in zip(fitted_answer(a), fitted_answer(b)):
        np.testing.assert_allclose(left, right, rtol=1e-12, atol=0)


@pytest.fixture
def routing():
    """Metadata routing on for the test, off again after it."""
    with sklearn.config_context(enable_metadata_routing=True):
        yield


# -- groups without metadata routing ------------------------------------------------------
@parametrize(CV_ZOO)
def test_every_group_splitter_gets_the_groups_and_never_cuts_one(entry):
    X, y, groups = grouped_problem(entry)
    for splitter in group_splitters(entry):
        spy = recording(splitter)
        model = entry(cv=spy).fit(X, y, groups=groups)
        assert np.isfinite(model.coef_).all()
        (seen, splits), = spy.calls  # split once, with the groups of all the samples
        np.testing.assert_array_equal(seen, groups)
        assert len(splits) == spy.get_n_splits(X, y, groups)
        for train, val in splits:
            assert not set(groups[train]) & set(groups[val]), type(splitter).__name__


@parametrize(CV_ZOO)
def test_groups_give_the_fit_of_the_explicit_group_splits(entry):
    X, y, groups = grouped_problem(entry)
    by_groups = entry(cv=GroupKFold(3)).fit(X, y, groups=groups)
    explicit = entry(cv=list(GroupKFold(3).split(X, y, groups))).fit(X, y)
    assert_same_fit(by_groups, explicit)
    # The groups changed the folds: KFold's answer is another one.
    assert by_groups.best_score_ != entry(cv=KFold(3)).fit(X, y).best_score_


@parametrize([e for e in CV_ZOO if "early_stopping" in e().get_params()])
def test_early_stopping_holds_out_whole_groups(entry):
    X, y, groups = grouped_problem(entry, n_samples=150)
    per_feature = "C_per_feature" if "C_per_feature" in entry().get_params() \
        else "alpha_per_feature"
    spy = recording(GroupKFold(3))
    entry(cv=spy, early_stopping=True, random_state=0, **{per_feature: True}).fit(
        X, y, groups=groups)
    seen = spy.calls[0][0]  # the groups of the samples left to the CV folds
    counts, left = np.bincount(groups, minlength=N_GROUPS), \
        np.bincount(seen, minlength=N_GROUPS)
    assert len(seen) < len(groups)  # a holdout was taken ...
    assert np.all((left == counts) | (left == 0))  # ... of whole groups only
    # Three groups, one held out: GroupKFold(3) cannot split the two left, and says why.
    few = np.repeat(np.arange(3), 50)
    with pytest.raises(ValueError, match="number of groups: 2.*early-stopping holdout"):
        entry(cv=GroupKFold(3), early_stopping=True, **{per_feature: True}).fit(
            X, y, groups=few)


@parametrize(CV_ZOO)
def test_missing_or_misshapen_groups_are_named(entry):
    X, y, groups = grouped_problem(entry)
    for splitter in (GroupKFold(3), LeaveOneGroupOut()):
        with pytest.raises(ValueError, match=rf"{entry.name}: cv=.*splits by groups"):
            entry(cv=splitter).fit(X, y)
    with pytest.raises(ValueError, match="groups must have one label per sample"):
        entry(cv=GroupKFold(3)).fit(X, y, groups=groups[:-1])


@parametrize(CV_ZOO)
def test_groups_are_ignored_by_splitters_that_do_not_split_by_groups(entry):
    """As GridSearchCV without routing: KFold and split lists take groups and ignore them."""
    X, y, groups = grouped_problem(entry)
    splits = list(KFold(3).split(X))
    with pytest.warns(UserWarning, match="The groups parameter is ignored by KFold"):
        by_kfold = entry(cv=KFold(3)).fit(X, y, groups=groups)
    assert_same_fit(by_kfold, entry(cv=splits).fit(X, y))
    assert_same_fit(entry(cv=splits).fit(X, y, groups=groups), entry(cv=splits).fit(X, y))


@parametrize(CV_ZOO)
def test_a_generator_of_splits_is_read_by_fit_alone(entry):
    """The routing code must not read ``cv`` when it is a one-shot iterable."""
    X, y, groups = grouped_problem(entry)
    expected = entry(cv=list(GroupKFold(3).split(X, y, groups))).fit(X, y)
    assert_same_fit(entry(cv=GroupKFold(3).split(X, y, groups)).fit(X, y), expected)
    with sklearn.config_context(enable_metadata_routing=True):
        assert_same_fit(entry(cv=GroupKFold(3).split(X, y, groups)).fit(X, y), expected)


@parametrize(CV_ZOO)
def test_other_params_need_metadata_routing(entry):
    X, y, groups = grouped_problem(entry)
    with pytest.raises(ValueError, match=rf"{entry.name}.fit is only supported if "
                                         "enable_metadata_routing=True.*'subject'"):
        entry(cv=GroupKFold(3)).fit(X, y, subject=groups)


@parametrize(CV_ZOO)
def test_pipeline_passes_groups_by_step_name(entry):
    X, y, groups = grouped_problem(entry)
    pipe = make_pipeline(StandardScaler(), entry(cv=GroupKFold(3)))
    step = pipe.steps[-1][0]
    pipe.fit(X, y, **{f"{step}__groups": groups})
    alone = entry(cv=GroupKFold(3)).fit(StandardScaler().fit_transform(X), y, groups=groups)
    assert_same_fit(pipe[-1], alone)


# -- with metadata routing ------------------------------------------------------------------
@parametrize(CV_ZOO)
def test_routing_declares_the_splitter_request(entry, routing):
    router = entry(cv=GroupKFold(3)).get_metadata_routing()
    assert router.consumes("fit", {"groups", "sample_weight"}) == {"groups"}
    assert entry(cv=KFold(3)).get_metadata_routing().consumes("fit", {"groups"}) == set()


@parametrize(CV_ZOO)
def test_routed_groups_and_aliases_reach_the_splitter(entry, routing):
    X, y, groups = grouped_problem(entry)
    expected = entry(cv=list(GroupKFold(3).split(X, y, groups))).fit(X, y)
    assert_same_fit(entry(cv=GroupKFold(3)).fit(X, y, groups=groups), expected)
    aliased = GroupKFold(3).set_split_request(groups="subject")
    assert_same_fit(entry(cv=aliased).fit(X, y, subject=groups), expected)
    with pytest.raises(TypeError, match=rf"{entry.name}.fit got unexpected.*'groups'"):
        entry(cv=KFold(3)).fit(X, y, groups=groups)  # nothing requests them
    with pytest.raises(ValueError, match=rf"{entry.name}: cv=.*splits by groups"):
        entry(cv=GroupKFold(3)).fit(X, y)


@parametrize(CV_ZOO)
def test_routed_groups_through_pipeline_and_cross_val_score(entry, routing):
    X, y, groups = grouped_problem(entry)
    weights = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    # sample_weight keeps its meaning next to the routed groups (fits and validation).
    step = entry(cv=GroupKFold(3)).set_fit_request(sample_weight=True)
    scaler = StandardScaler().set_fit_request(sample_weight=False)
    pipe = make_pipeline(scaler, step).fit(X, y, groups=groups, sample_weight=weights)
    alone = entry(cv=GroupKFold(3)).fit(StandardScaler().fit_transform(X), y, groups=groups,
                                        sample_weight=weights)
    assert_same_fit(pipe[-1], alone)
    unweighted = entry(cv=GroupKFold(3)).fit(StandardScaler().fit_transform(X), y,
                                             groups=groups)
    assert alone.best_score_ != unweighted.best_score_

    outer = GroupKFold(3)
    scores = cross_val_score(entry(cv=GroupKFold(2)), X, y, cv=outer,
                             params={"groups": groups})
    by_hand = [entry(cv=GroupKFold(2)).fit(X[tr], y[tr], groups=groups[tr]).score(X[te], y[te])
               for tr, te in outer.split(X, y, groups)]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)


@parametrize(CV_ZOO)
def test_routed_groups_through_grid_search(entry, routing):
    X, y, groups = grouped_problem(entry)
    search = GridSearchCV(entry(cv=GroupKFold(3)), {"fit_intercept": [True, False]},
                          cv=GroupKFold(2)).fit(X, y, groups=groups)
    best = clone(search.estimator).set_params(**search.best_params_)
    assert_same_fit(search.best_estimator_, best.fit(X, y, groups=groups))


# -- messages name public classes -----------------------------------------------------------
# A class of the package that users cannot import by that name: _LinearRegressionCV, ...
PRIVATE_NAME = re.compile(r"(?<![\w.])_[A-Z]\w*|\b\w+\._[A-Z]\w*")
METHODS = ("fit", "predict", "predict_proba", "predict_log_proba", "decision_function")


@parametrize(ZOO)
def test_methods_are_named_after_the_estimator(entry):
    """Python's argument errors name the class that defines the method: the estimator's
    own methods must be defined on (or named after) it, not on a private base."""
    for name in METHODS:
        method = getattr(type(entry()), name, None)
        if method is None:
            continue
        function = inspect.unwrap(method)
        if function.__module__.startswith("skbilevel"):
            assert function.__qualname__ == f"{entry.name}.{name}"


@parametrize(ZOO)
def test_error_messages_name_public_classes(entry):
    X, y = problem(entry)
    calls = {
        "fit without y": (TypeError, lambda: entry().fit(X)),
        "extra positional": (TypeError, lambda: entry().fit(X, y, None, None)),
        "predict without X": (TypeError, lambda: entry().predict()),
        "too few samples": (ValueError, lambda: entry().fit(X[:2], y[:2])),
    }
    if entry.cv:
        calls["unknown fit param"] = (ValueError, lambda: entry().fit(X, y, subject=1))
        calls["groups missing"] = (ValueError, lambda: entry(cv=GroupKFold(3)).fit(X, y))
    for what, (kind, call) in calls.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(kind) as error:
                call()
        for message in [str(error.value)] + [str(w.message) for w in caught]:
            assert not PRIVATE_NAME.search(message), (what, message)
        if kind is TypeError or what in ("unknown fit param", "groups missing"):
            assert entry.name in str(error.value), (what, str(error.value))
