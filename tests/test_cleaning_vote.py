"""The neighbour vote of HyperCleaningClassifier (``n_neighbors``, issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from skbilevel import HyperCleaningClassifier
from skbilevel._cleaning_data import VOTE_CUT, VOTE_HIGH, neighbor_vote, vote_weights


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def brute_force_vote(X, codes, X_val, codes_val, quality, kept, k):
    """The rule written out: band = kept and quality < VOTE_HIGH; the k nearest of the kept
    samples and the trusted set by full sorting of the distances; voted out below
    VOTE_CUT."""
    ref_X = np.vstack([X[kept], X_val])
    ref_codes = np.concatenate([codes[kept], codes_val])
    voted = np.zeros(len(codes), dtype=bool)
    for i in np.flatnonzero(kept & (quality < VOTE_HIGH)):
        nearest = np.argsort(((ref_X - X[i]) ** 2).sum(axis=1), kind="stable")[:k]
        voted[i] = (ref_codes[nearest] == codes[i]).mean() < VOTE_CUT
    return voted


def test_vote_is_the_k_nearest_neighbours_share_in_the_band():
    rng = np.random.default_rng(0)
    X, codes = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    X_val, codes_val = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    quality = rng.uniform(0, 1, 300)
    kept = quality >= 0.1
    for k in (1, 7, 10, 15):  # 10: shares of exactly VOTE_CUT (3 of 10) stay
        voted = neighbor_vote(X, codes, X_val, codes_val, quality, kept, k)
        np.testing.assert_array_equal(
            voted, brute_force_vote(X, codes, X_val, codes_val, quality, kept, k))
        # Only kept samples of the band are voted out; with random labels some are.
        assert not voted[~kept | (quality >= VOTE_HIGH)].any()
        assert voted.any() == (k > 1)
    # k = 1 (above): the sample is its own nearest neighbour and agrees with itself.
    assert not neighbor_vote(X, codes, X_val, codes_val, quality, kept, None).any()


def test_vote_weights_zero_the_voted_and_keep_the_user_weights():
    X = np.array([[0.0], [0.1], [0.2], [0.3], [0.4], [5.0], [5.1], [5.2]])
    codes = np.array([0, 0, 0, 1, 0, 1, 1, 1])  # sample 3 is a 1 among the 0s
    quality = np.array([0.9, 0.9, 0.9, 0.2, 0.2, 0.9, 0.05, 0.9])
    base = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 0.5])
    X_val, codes_val = np.array([[0.15], [5.05]]), np.array([0, 1])
    weights, voted = vote_weights(quality, 0.1, base, X, codes, X_val, codes_val, 3)
    # Sample 3's 3 nearest: itself and two 0s, a share 1/3 >= VOTE_CUT: it stays. Its 4
    # nearest add the trusted 0 at 0.15: 1/4 < VOTE_CUT, voted out. Sample 4 (a 0 in the
    # band) has 3 of 4 and stays; sample 6 (quality 0.05) is not kept, so never voted.
    assert not voted.any()
    np.testing.assert_array_equal(weights, base * (quality >= 0.1))
    weights, voted = vote_weights(quality, 0.1, base, X, codes, X_val, codes_val, 4)
    np.testing.assert_array_equal(voted, np.arange(8) == 3)
    np.testing.assert_array_equal(weights, [1, 1, 1, 0, 2, 1, 0, 0.5])
    # Soft weights (refit_threshold=None): every positive quality is kept and may vote.
    weights, voted = vote_weights(quality, None, base, X, codes, X_val, codes_val, 4)
    np.testing.assert_array_equal(voted, np.arange(8) == 3)
    np.testing.assert_allclose(weights, base * quality * (np.arange(8) != 3))


def one_flip_in_a_clean_cluster():
    """Three separated blobs; the sample nearest the centre of class 0 labelled 1. A
    strongly regularised final model makes its out-of-fold quality ~0.17, in the band,
    while every clean sample's stays above 0.4."""
    X, y = make_blobs(200, n_features=2, centers=[[-4, 0], [4, 0], [0, 6]],
                      cluster_std=1.0, random_state=0)
    X_val, y_val, X, y = X[150:], y[150:], X[:150], y[:150].copy()
    flip = int(np.argmin(np.where(y == 0, np.linalg.norm(X - [-4, 0], axis=1), np.inf)))
    y[flip] = 1
    return X, y, X_val, y_val, flip


def test_a_flip_in_the_band_is_voted_out_of_the_refit():
    X, y, X_val, y_val, flip = one_flip_in_a_clean_cluster()
    kw = dict(estimator=LogisticRegression(C=0.0015), method="reweight", max_iter=20,
              threshold=0.1, random_state=0)
    on = HyperCleaningClassifier(**kw).fit(X, y, X_val=X_val, y_val=y_val)
    off = HyperCleaningClassifier(n_neighbors=None, **kw).fit(X, y, X_val=X_val, y_val=y_val)
    assert 0.1 <= on.label_quality_[flip] < VOTE_HIGH
    assert np.delete(on.label_quality_, flip).min() > VOTE_HIGH
    # The vote changes the refit and the flags, not the quality.
    np.testing.assert_array_equal(on.label_quality_, off.label_quality_)
    np.testing.assert_array_equal(on.voted_out_, np.arange(len(y)) == flip)
    assert not off.voted_out_.any()
    assert on.sample_weight_[flip] == 0 and off.sample_weight_[flip] == 1
    np.testing.assert_array_equal(np.delete(on.sample_weight_, flip), 1.0)
    # threshold=0.1 would not flag it; the vote does, and get_label_issues agrees.
    assert on.label_issues_[flip] and not off.label_issues_[flip]
    assert on.label_issues_.sum() == 1
    by_hand = LogisticRegression(C=0.0015).fit(
        np.vstack([X, X_val]), np.concatenate([y, y_val]),
        sample_weight=np.concatenate([on.sample_weight_, np.ones(len(y_val))]))
    np.testing.assert_allclose(on.estimator_.coef_, by_hand.coef_)
    assert np.abs(on.estimator_.coef_ - off.estimator_.coef_).max() > 1e-6


def test_the_vote_needs_cv_confidence():
    X, y, X_val, y_val, flip = one_flip_in_a_clean_cluster()
    clf = HyperCleaningClassifier(LogisticRegression(C=0.0015), method="reweight",
                                  max_iter=20, confidence=None, n_neighbors=7,
                                  random_state=0).fit(X, y, X_val=X_val, y_val=y_val)
    assert not clf.voted_out_.any()
    np.testing.assert_array_equal(clf.sample_weight_, clf.label_quality_ >= 0.1)


def test_held_out_trusted_part_is_never_voted_out():
    X, y, _, _, _ = one_flip_in_a_clean_cluster()
    clf = HyperCleaningClassifier(LogisticRegression(C=0.0015), method="reweight",
                                  max_iter=20, validation_fraction=0.3,
                                  n_neighbors=1000, random_state=0).fit(X, y)
    held = clf.label_quality_ == 1.0
    assert held.sum() >= 45 and not clf.voted_out_[held].any()
    np.testing.assert_array_equal(clf.sample_weight_[held], 1.0)


@pytest.mark.parametrize("value", [0, -3, 2.5, "7"])
def test_bad_n_neighbors_is_named(value):
    X, y, X_val, y_val, _ = one_flip_in_a_clean_cluster()
    with pytest.raises(ValueError, match="'n_neighbors' parameter"):
        HyperCleaningClassifier(n_neighbors=value, max_iter=2).fit(X, y, X_val=X_val,
                                                                   y_val=y_val)
