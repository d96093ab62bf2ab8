"""Development-seed measurement of a neighbour vote in the quality band (issue 15).

``HyperCleaningClassifier``'s defaults leave out the samples whose
``label_quality_`` (two rounds of out-of-fold probability of the given label) is below
0.1. At p = 0.4 the flips they miss sit in [0.1, 0.3) among about as many clean samples,
where neither the bilevel weight (AUROC 0.56 inside the band) nor the out-of-fold margin
(0.68) separates them. A vote of the ``k`` nearest neighbours (Euclidean, raw features)
among the kept training samples (quality >= 0.1, the sample itself included) and the
trusted set does: AUROC 0.96 inside the band (k = 5, seeds 5-24). This script refits with
the band samples whose vote share for their given label is below ``cut`` left out too.

Measured on seeds 5-24 (sum over the 20 seeds of the paired differences to the defaults,
in test samples of 540; the defaults' mean accuracy 0.9587 / 0.9516 / 0.9317 / 0.9473 at
p = 0.2 / 0.4 / 0.6 / pair 0.3), one of about 15 rules tried on the same seeds (so the
best is optimistic): k = 7, cut = 0.3: -1 / +38 / +91 / +41; k = 5, cut = 0.5: -5 / +32 /
+101 / +52; the band weight min(1, share / 0.5) instead of 0/1: -7 / +29 / +92 / +61;
only the kept samples at quality >= 0.3 as neighbours (k = 5, cut = 0.5): -32 / +15;
features standardised: -37 / +17; k = 10 or 20, or the band up to 0.5: worse. It loses a
little at p = 0.2 in every form on these seeds (the rule of issue 15: win at p = 0.2 and
0.4), so it was checked on fresh seeds first. Also measured there and not better: the
number left out from cleanlab's confident joint of the round-2 out-of-fold probabilities
(the lowest-quality that many, its estimate of the flips is within 2-3 % of the truth)
-10 / -31 / +78 / +30 (per class -33 / -36 / +69 / +25); 10 folds instead of 5 +2 / -4 /
+11 / -0, with the count +4 / -14 / +94 / +26. Dropping more samples helps at high noise
and costs at low noise: the clean samples in the band are the hard ones the refit needs.

Pre-registered check on fresh seeds 25-44 (never used before; k = 7, cut = 0.3 and the
band [0.1, 0.3) fixed beforehand, no other rule run on them; decision rule fixed before the
run: the default if p = 0.4 > 0, p = 0.2 >= -5 and p = 0.6 / pair not negative). Mean test
accuracy, sum of the paired differences in test samples [seeds better / worse]:

================  ===============  =================  =================  =================
rule              p = 0.2          p = 0.4            p = 0.6            pair p = 0.3
================  ===============  =================  =================  =================
no vote           0.9577           0.9483             0.9353             0.9488
k = 7, cut = 0.3  0.9578 +1 [7/7]  0.9521 +41 [15/0]  0.9426 +79 [16/2]  0.9526 +41 [16/4]
================  ===============  =================  =================  =================

It passed, and became ``HyperCleaningClassifier``'s default (``n_neighbors=7``).

Usage::

    python benchmarks/dev_cleaning_band.py                 # seeds 5-24, a few minutes
    python benchmarks/dev_cleaning_band.py --seeds 45,46   # fresh seeds (never 0-4; 25-44 spent)
"""

from __future__ import annotations

import os  # noqa: I001
# One BLAS thread: a 1078 x 64 logistic fit is far slower with two on a loaded machine.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
import sys  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

from _cleaning_problems import (development_seeds, digits_split,  # noqa: E402
                                final_estimator, refit)
from skbilevel import HyperCleaningClassifier  # noqa: E402

SETTINGS = [("p=0.2", "uniform", 0.2), ("p=0.4", "uniform", 0.4),
            ("p=0.6", "uniform", 0.6), ("pair p=0.3", "pair", 0.3)]
# (row name, k, cut); None: the defaults' refit weights.
RULES = [("defaults", None, None), ("k=7, cut=0.3", 7, 0.3), ("k=5, cut=0.5", 5, 0.5)]


def band_weights(data, quality, k, cut, low=0.1, high=0.3):
    """The defaults' 0/1 weights, with the band samples out-voted by their neighbours 0."""
    keep = quality >= low
    band = np.flatnonzero(keep & (quality < high))
    if k is None or not len(band):
        return keep.astype(float)
    ref_X = np.vstack([data["X"][keep], data["X_val"]])
    ref_y = np.r_[data["y"][keep], data["y_val"]]
    _, nb = NearestNeighbors(n_neighbors=k).fit(ref_X).kneighbors(data["X"][band])
    share = (ref_y[nb] == data["y"][band, None]).mean(axis=1)
    keep[band[share < cut]] = False
    return keep.astype(float)


def main():
    seeds = development_seeds(5, 24)
    torch.set_num_threads(1)
    acc = {(s[0], r[0]): [] for s in SETTINGS for r in RULES}
    for label, kind, rate in SETTINGS:
        for seed in seeds:
            data = digits_split(seed, kind, rate)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = HyperCleaningClassifier(final_estimator(), random_state=seed).fit(
                    data["X"], data["y"], X_val=data["X_val"], y_val=data["y_val"])
            for name, k, cut in RULES:
                w = band_weights(data, est.label_quality_, k, cut)
                acc[label, name].append(refit(data, w, with_val=True))
    print(f"digits, seeds {seeds}: mean test accuracy; sum of the paired differences to "
          f"the defaults in test samples [seeds better / worse]")
    print("| rule | " + " | ".join(s[0] for s in SETTINGS) + " |")
    print("| --- |" + " --- |" * len(SETTINGS))
    for name, _, _ in RULES:
        cells = []
        for label, _, _ in SETTINGS:
            a, b = np.array(acc[label, name]), np.array(acc[label, "defaults"])
            diff = np.round((a - b) * 540)
            cells.append(f"{a.mean():.4f} {diff.sum():+.0f} [{(diff > 0).sum()}/"
                         f"{(diff < 0).sum()}]")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
