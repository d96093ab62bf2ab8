"""
Cleaning noisy labels with a trusted set
========================================

:class:`~skbilevel.HyperCleaningClassifier` learns one weight in [0, 1] per training sample
so that a model fitted on the weighted noisy data does best on a small *trusted* set, then
refits your classifier with those weights. This example moves a share of the digits'
training labels to a wrong class, looks at the weights the method learns for the flipped
and the clean samples, and compares the test accuracy with fitting on the noisy labels and
with fitting on the trusted set alone, at several noise rates.

See the :ref:`User Guide <cleaning_guide>` for the methods, the threshold and how
hyper-cleaning compares with cleanlab; ``benchmarks/bench_cleaning.py`` runs the full
comparison over five seeds (its results: ``benchmarks/results/cleaning.md``).
"""

# %%
# Data: digits with flipped labels
# --------------------------------
# The bundled digits (pixels scaled to [0, 1]) are split, stratified, into 60% training
# data, 10% trusted data and 30% test data. A fraction ``p`` of the training labels is
# moved to a uniformly random *different* class; the trusted and test labels stay clean.
# These problems are small: one thread (torch's and the BLAS's) is faster than waking a
# thread pool, and much faster on a busy machine.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from skbilevel import HyperCleaningClassifier

torch.set_num_threads(1)
threadpool_limits(limits=1)

X, y = load_digits(return_X_y=True)
X = X / 16
X_train, X_rest, y_train, y_rest = train_test_split(X, y, train_size=0.6, stratify=y,
                                                    random_state=0)
X_trusted, X_test, y_trusted, y_test = train_test_split(X_rest, y_rest, train_size=0.25,
                                                        stratify=y_rest, random_state=0)
print(f"train {len(y_train)}, trusted {len(y_trusted)}, test {len(y_test)}")


def flip_labels(y, p, seed):
    """Move exactly ``round(p * n)`` labels of ``y`` to a uniformly random other class."""
    rng = np.random.default_rng(seed)
    y_noisy = y.copy()
    flipped = rng.choice(len(y), round(p * len(y)), replace=False)
    y_noisy[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    return y_noisy


def test_accuracy(X_fit, y_fit, sample_weight=None):
    """Test accuracy of LogisticRegression (C=1) fitted on the given data."""
    # lbfgs needs more than its default 100 iterations on the noisiest labels.
    model = LogisticRegression(max_iter=1000).fit(X_fit, y_fit, sample_weight=sample_weight)
    return model.score(X_test, y_test)


def clean_fit(y_noisy):
    """Learn the weights with pgd-cqa and a linear inner model, refit LogisticRegression."""
    clf = HyperCleaningClassifier(LogisticRegression(max_iter=1000), model="linear",
                                  method="pgd-cqa", random_state=0)
    return clf.fit(X_train, y_noisy, X_val=X_trusted, y_val=y_trusted)


# %%
# The learned weights of flipped and clean samples
# ------------------------------------------------
# At ``p = 0.2``, 216 of the 1,078 training labels are wrong. With the default
# ``confidence="cv"``, ``label_quality_`` is the out-of-fold probability of each sample's
# given label under your classifier, fitted on folds weighted by the bilevel weights
# (``bilevel_weight_``, learned here by ``method="pgd-cqa"``) with the trusted set added.
# The detection AUROC says how well the quality *ranks* the flipped samples below the clean
# ones; ``label_issues_`` flags the samples whose quality is below ``threshold`` (0.5: the
# given label is less likely than not).
y_noisy = flip_labels(y_train, 0.2, seed=0)
is_flipped = y_noisy != y_train
clf = clean_fit(y_noisy)
quality = clf.label_quality_
flagged = clf.label_issues_
print(f"flipped labels: {is_flipped.sum()} of {len(y_noisy)}")
print(f"weights: flipped median {np.median(quality[is_flipped]):.4f}, "
      f"clean median {np.median(quality[~is_flipped]):.4f}, "
      f"range [{quality.min():.4f}, {quality.max():.4f}]")
print(f"detection AUROC of the weights: {roc_auc_score(is_flipped, -quality):.3f}")
print(f"label_issues_: {flagged.sum()} flagged, precision "
      f"{is_flipped[flagged].mean():.3f}, recall {flagged[is_flipped].mean():.3f}")

fig, ax = plt.subplots(figsize=(6, 4))
bins = np.linspace(quality.min(), quality.max(), 40)
ax.hist(quality[~is_flipped], bins=bins, alpha=0.6, label=f"clean ({(~is_flipped).sum()})")
ax.hist(quality[is_flipped], bins=bins, alpha=0.6, label=f"flipped ({is_flipped.sum()})")
ax.axvline(clf.threshold, color="k", ls="--", label=f"threshold = {clf.threshold}")
ax.set_xlabel("label_quality_")
ax.set_ylabel("training samples")
ax.set_title("HyperCleaningClassifier(method='pgd-cqa'), p = 0.2")
ax.legend()
fig.tight_layout()

# %%
# With ``method="pgd-cqa"`` the bilevel weights of the flipped samples fall toward 0
# within the default number of iterations, while the clean ones stay near 1/2 (the
# constraint also falls when every weight shrinks), so their *order* carries the signal.
# ``confidence="cv"`` turns that order into a calibrated quality; with
# ``confidence=None``, ``label_quality_`` is the raw weight and the default threshold of
# 1/2 flags many clean samples for this method (see the User Guide).
#
# :meth:`~skbilevel.HyperCleaningClassifier.get_label_issues` gives the same verdicts as a
# DataFrame shaped like cleanlab's (when pandas is installed); here the most suspect
# samples first.
try:
    import pandas  # noqa: F401
except ImportError:
    print("pandas is not installed: read label_issues_ and label_quality_ instead")
else:
    issues = clf.get_label_issues()
    issues["true_label"] = y_train
    print(issues.sort_values("label_quality").head(10).to_string())

# %%
# Test accuracy against the noise rate
# ------------------------------------
# At each noise rate, three ways to use the data: fit on all the noisy labels, fit on the
# trusted set alone (179 clean samples), and hyper-cleaning (the noisy labels, weighted by
# what the trusted set says). A fit on the clean training labels is the reference no
# method can see.
#
# One control matters: multiplying *every* sample weight by the same ``w`` rescales the
# data term of the logistic loss, i.e. acts as ``C * w``, so lower weights regularise the
# refit more strongly whatever their order. The dashed line fits the noisy labels with
# every weight equal to the mean learned weight: the gap between it and hyper-cleaning is
# what the *differences* between the weights buy.
rates = [0.1, 0.2, 0.4]
trusted_only = test_accuracy(X_trusted, y_trusted)
oracle = test_accuracy(X_train, y_train)
noisy, uniform, cleaned = [], [], []
for p in rates:
    y_p = flip_labels(y_train, p, seed=0)
    noisy.append(test_accuracy(X_train, y_p))
    fitted = clean_fit(y_p)
    cleaned.append(fitted.score(X_test, y_test))
    mean_weight = np.full(len(y_p), fitted.sample_weight_.mean())
    uniform.append(test_accuracy(X_train, y_p, sample_weight=mean_weight))
    auroc = roc_auc_score(y_p != y_train, -fitted.label_quality_)
    print(f"p={p:.1f}: noisy {noisy[-1]:.3f}, noisy with the mean weight {uniform[-1]:.3f}, "
          f"trusted only {trusted_only:.3f}, hyper-cleaning {cleaned[-1]:.3f} "
          f"(mean weight {mean_weight[0]:.3f}, detection AUROC {auroc:.3f})")
print(f"clean training labels (reference): {oracle:.3f}")

fig, ax = plt.subplots(figsize=(9, 4))
ax.plot(rates, noisy, "o-", label="fit on the noisy labels")
ax.plot(rates, uniform, "o--", mfc="none", ms=10,
        label="noisy labels, every weight = mean learned weight")
ax.plot(rates, [trusted_only] * len(rates), "s-", label="fit on the trusted set only")
ax.plot(rates, cleaned, "^-", label="HyperCleaningClassifier (pgd-cqa)")
ax.axhline(oracle, color="k", ls=":", label="clean labels (reference)")
ax.set_xlabel("fraction of training labels flipped")
ax.set_ylabel("test accuracy")
ax.set_xticks(rates)
ax.set_title("Digits, LogisticRegression refit, one noise draw per rate")
ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1))
fig.tight_layout()
plt.show()

# %%
# The noisy fit loses accuracy as ``p`` grows; hyper-cleaning refits the same classifier
# on the same noisy labels (plus the trusted set, ``refit_with_val=True``) with the learned
# weights, and stays closer to the clean-label reference, above the dashed control. One
# split and one noise draw per rate is not a measurement: ``benchmarks/results/cleaning.md`` has
# the comparison over five seeds, the other methods (``"implicit"``, ``"penalty"``,
# ``"reweight"``) and cleanlab.
