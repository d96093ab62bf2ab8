"""Data and opponents of ``bench_cleaning.py``: the issue's digits protocol, its noise,
the scikit-learn baselines, cleanlab, and the large synthetic problem."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

from _common import PeakMemory


def final_estimator():
    """The issue's final classifier."""
    return LogisticRegression(C=1, max_iter=1000)


def add_noise(y, kind, rate, rng, n_classes=10):
    """Exactly ``round(rate n)`` labels moved: ``"uniform"`` to a uniformly random *other*
    class, ``"pair"`` to the next class (``k -> k + 1 mod K``, the asymmetric case)."""
    n = len(y)
    idx = rng.choice(n, int(round(rate * n)), replace=False)
    noisy = y.copy()
    shift = rng.integers(1, n_classes, len(idx)) if kind == "uniform" else 1
    noisy[idx] = (y[idx] + shift) % n_classes
    flipped = np.zeros(n, dtype=bool)
    flipped[idx] = True
    return noisy, flipped


def digits_split(seed, kind, rate):
    """``load_digits``, X/16, 60/10/30 stratified (train 1078, trusted 179, test 540)."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, train_size=0.6, stratify=y,
                                                  random_state=seed)
    X_val, X_te, y_val, y_te = train_test_split(X_rest, y_rest, train_size=0.25,
                                                stratify=y_rest, random_state=seed)
    noisy, flipped = add_noise(y_tr, kind, rate, np.random.default_rng(seed))
    return dict(X=X_tr, y_clean=y_tr, y=noisy, flipped=flipped, X_val=X_val, y_val=y_val,
                X_test=X_te, y_test=y_te)


def blobs_split(seed, n=50_000, d=50, n_classes=10, n_val=500, rate=0.3):
    """The large problem: Gaussian blobs, ``rate`` of the labels moved uniformly."""
    X, y = make_blobs(n + n_val + 5000, n_features=d, centers=n_classes, cluster_std=12.0,
                      random_state=seed)
    noisy, flipped = add_noise(y[:n], "uniform", rate, np.random.default_rng(seed),
                               n_classes)
    return dict(X=X[:n], y=noisy, flipped=flipped, X_val=X[n:n + n_val],
                y_val=y[n:n + n_val], X_test=X[n + n_val:], y_test=y[n + n_val:])


def detection(flipped, quality, issues):
    """(F1 of the flags, AUROC of ``-quality``) for the flipped samples."""
    return (float(f1_score(flipped, issues)) if issues is not None else None,
            float(roc_auc_score(flipped, -quality)) if quality is not None else None)


def refit(data, weights=None, with_val=False):
    """Test accuracy of the final classifier on the weighted training set (zero weights
    dropped), with the trusted set appended at weight 1 when ``with_val``."""
    w = np.ones(len(data["y"])) if weights is None else np.asarray(weights, dtype=float)
    keep = w > 0
    X, y, w = data["X"][keep], data["y"][keep], w[keep]
    if with_val:
        X, y = np.vstack([X, data["X_val"]]), np.r_[y, data["y_val"]]
        w = np.r_[w, np.ones(len(data["y_val"]))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(final_estimator().fit(X, y, sample_weight=w).score(
            data["X_test"], data["y_test"]))


def baseline_rows(data):
    """oracle, noisy, trusted only, noisy + trusted: (name, accuracy) pairs."""
    clean = dict(data, y=data["y_clean"])
    trusted = final_estimator().fit(data["X_val"], data["y_val"]).score(data["X_test"],
                                                                      data["y_test"])
    return [("oracle (clean labels)", refit(clean)), ("noisy", refit(data)),
            ("trusted only", float(trusted)), ("noisy + trusted", refit(data, with_val=True))]


def cleanlab_rows(data, seed):
    """cleanlab ``CleanLearning`` and "drop flagged, refit with trusted", as result dicts;
    [] when cleanlab is not importable."""
    try:
        from cleanlab.classification import CleanLearning
    except ImportError:
        return []
    with PeakMemory() as mem, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        cl = CleanLearning(final_estimator(), seed=seed, verbose=False).fit(data["X"],
                                                                          data["y"])
        wall = time.perf_counter() - t0
    issues = cl.get_label_issues()
    flags = issues["is_label_issue"].to_numpy()
    f1, auroc = detection(data["flipped"], issues["label_quality"].to_numpy(), flags)
    common = dict(f1=f1, auroc=auroc, wall=wall, iters=None, mem=mem.rss_peak)
    t0 = time.perf_counter()
    dropped = refit(data, (~flags).astype(float), with_val=True)
    return [dict(common, method="cleanlab CleanLearning", refit="-",
                 acc=float(cl.score(data["X_test"], data["y_test"]))),
            dict(common, method="cleanlab drop flagged", refit="+trusted", acc=dropped,
                 wall=wall + time.perf_counter() - t0)]


def development_seeds(first, last):
    """The ``--seeds`` of a development script (default ``first..last``), refusing the
    benchmark's seeds 0-4: defaults are chosen on other seeds than those reported."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default=",".join(map(str, range(first, last + 1))),
                        help="comma-separated development seeds (never 0-4)")
    seeds = [int(s) for s in parser.parse_args().seeds.split(",")]
    if set(seeds) & set(range(5)):
        parser.error("seeds 0-4 are the benchmark's: choose on others")
    return seeds
