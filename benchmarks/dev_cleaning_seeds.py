"""Development-seed selection of ``HyperCleaningClassifier``'s defaults (issue 15).

``bench_cleaning.py`` reports digits seeds 0-4; the defaults are chosen here, on seeds
5-14, which it never reports, so that the benchmark is not tuned on its own seeds. Same
protocol (``_cleaning_problems.digits_split``: train 1078, trusted 179, test 540, uniform
noise), the estimator's defaults (``method="auto"`` = pgd-cqa qp1, ``refit_threshold=0.1``,
``refit_with_val=True``) except the settings in the rows. Prints the mean test accuracy and
detection AUROC per noise rate and the paired difference to the first row in test samples
(540 per seed), per seed. Takes a few minutes on one thread.

What it selected: ``cv_rounds=2`` (the second cross-validation round). On seeds 5-14 it
gave 0.9576 / 0.9530 test accuracy at p = 0.2 / 0.4 against one round's 0.9561 / 0.9496
(+1.8 test samples a seed at p = 0.4, better on 9 of 10 seeds); a third round did not add.
Also measured there (with ad hoc scripts, not repeated here; all at two rounds unless
said): a larger inner ``reg`` (up to 0.1) or 30-200 iterations moved the accuracy by at
most 0.001 (``reg=1e-2`` raised the AUROC of the raw bilevel weights from 0.955 / 0.975
to 0.977 / 0.982, but not the accuracy); trusted samples at weight 2 in the refit
+0.002 / -0.001. With one round: the product or the rank average of the bilevel weight and
the cv probability as the score, 0.951 / 0.948 at best (the probability alone 0.956 /
0.950); leaving out the samples below Otsu's threshold 0.941 / 0.940; below 0.2 x the
median quality 0.952 / 0.952 (better at p = 0.4, worse at p = 0.2, and less than a
second round).

Measured later at two rounds (ad hoc scripts, seeds 5-14; mean test accuracy at p = 0.2
/ 0.4 against the defaults' 0.9576 / 0.9530, and the sum over the 10 seeds of the paired
differences in test samples). Relabelling the flagged samples with their out-of-fold
prediction when its probability is >= c, kept at weight w, instead of dropping them: c =
0.3, 0.5, 0.7, 0.9 at w = 1 gave -7 / -20, +1 / -7, +1 / -10, +0 / -3, at w = 0.5 +0 /
-9, +1 / -9, +0 / -4, +2 / -2; all flagged at weight = their confidence -1 / -10 (the
out-of-fold labels are right for about 96 % of the flagged, but they teach the refit
only what it already predicts, and the rest are its own mistakes made permanent: the
true labels on the same samples, c = 0.5, gave +21 / +34). Ensembling the refit over the
5 folds -5 / -4 (15 folds -7 / -4), the full refit averaged with the 5 -2 / -2, 10
bootstrap bags -7 / -3. Leaving out also the samples whose given label is not the
out-of-fold argmax -42 / -45 (only those with quality < 0.3: -24 / -35); weight 0.5 (or
the ramp quality / 0.3) for quality in [0.1, 0.3) -13 / -5 (-4 / -3); keeping flagged
samples whose label is the second choice -9 / -34 (-2 / -4 only those at quality >=
0.05). The ceiling of dropping: refitting without exactly the flipped samples gives
0.9624 / 0.9591 (+26 / +33), with all labels clean 0.9643 / 0.9643. At p = 0.4 the
defaults flag 422 samples: 414 of the 431 flips and 8 clean ones (17 flips kept, mostly
at quality 0.1-0.3 where as many clean samples sit); keeping those 8 would give +14,
leaving out those 17 +12: the clean ones flagged are the hard samples the refit most
needs, which is why every wider drop above loses (all counts are means over the seeds).

On seeds 5-24 the defaults give 0.9587 / 0.9516 / 0.9317 / 0.9473 (p = 0.2 / 0.4 / 0.6 /
pair 0.3). A neighbour vote inside the 0.1-0.3 band, the confident-joint count of
cleanlab and 10 folds were measured there: ``dev_cleaning_band.py`` (the vote wins at
p = 0.4 / 0.6 / pair and loses a little at p = 0.2); checked on fresh seeds 25-44 it
became the default (``n_neighbors=7``). Every number above was measured before, without
the vote: a rerun now includes it in every row (its first row is then the new defaults).

Usage::

    python benchmarks/dev_cleaning_seeds.py               # seeds 5-14
    python benchmarks/dev_cleaning_seeds.py --seeds 5,6   # a subset
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
from sklearn.metrics import roc_auc_score  # noqa: E402

from _cleaning_problems import development_seeds, digits_split, final_estimator  # noqa: E402
from skbilevel import HyperCleaningClassifier  # noqa: E402

# (row name, estimator parameters); the first row is the reference of the differences.
SETTINGS = [("cv_rounds=1", dict(cv_rounds=1)),
            ("cv_rounds=2 (default)", dict(cv_rounds=2)),
            ("cv_rounds=3", dict(cv_rounds=3)),
            ("cv_rounds=2, reg=1e-2", dict(cv_rounds=2, reg=1e-2))]


def run(seed, rate, params):
    """(test accuracy, AUROC of -label_quality_ for the flipped samples) of one fit."""
    data = digits_split(seed, "uniform", rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = HyperCleaningClassifier(final_estimator(), random_state=seed, **params).fit(
            data["X"], data["y"], X_val=data["X_val"], y_val=data["y_val"])
    return (float(est.score(data["X_test"], data["y_test"])),
            float(roc_auc_score(data["flipped"], -est.label_quality_)))


def main():
    seeds = development_seeds(5, 14)
    torch.set_num_threads(1)
    print(f"digits, seeds {seeds}: test accuracy (AUROC); per-seed difference to the first "
          f"row in test samples")
    print("| setting | p = 0.2 | p = 0.4 | diff p = 0.2 | diff p = 0.4 |")
    print("| --- | --- | --- | --- | --- |")
    reference = {}
    for name, params in SETTINGS:
        cells, diffs = [], []
        for rate in (0.2, 0.4):
            acc, auroc = np.array([run(seed, rate, params) for seed in seeds]).T
            reference.setdefault(rate, acc)
            cells.append(f"{acc.mean():.4f} ({auroc.mean():.4f})")
            diffs.append(" ".join(f"{d:+.0f}" for d in (acc - reference[rate]) * 540))
        print(f"| {name} | {cells[0]} | {cells[1]} | {diffs[0]} | {diffs[1]} |", flush=True)


if __name__ == "__main__":
    main()
