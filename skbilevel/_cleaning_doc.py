"""The docstring of :class:`~skbilevel.HyperCleaningClassifier` (kept apart: it is long)."""

DOC = """Learn one weight per training sample from a small trusted set, then refit.

Hyper-cleaning: the weight ``w_i`` in [0, 1] of every training sample is chosen so that a
model fitted on the weighted training data does best on the trusted set ``(X_val,
y_val)``, a bilevel problem. Samples whose label the trusted set contradicts get small
weights, so the weights both clean the fit and rank the samples by how suspect their
labels are. The final classifier is ``estimator`` refitted with the learned weights.

Read more in the :ref:`User Guide <cleaning_guide>`.

Parameters
----------
estimator : classifier, default=None
    The final classifier, refitted with ``sample_weight`` = the learned weights; any
    scikit-learn classifier whose ``fit`` takes ``sample_weight``. None is
    ``LogisticRegression()``.
model : {"linear", "mlp"}, default="linear"
    The model inside the bilevel problem, the one the weights are learned for:
    multinomial logistic regression, or a small torch MLP (``hidden``; nonconvex). It is
    fitted on the columns standardised by the training set's mean and deviation.
method : str, default="auto"
    How the weights are learned, by name in the engine's registry
    (``skbilevel.engine.cleaning.METHODS``): ``"pgd-cqa"`` (perturbed gradient descent
    with a convex quadratic approximation, nonconvex-safe), ``"implicit"`` (implicit
    differentiation of the weighted fit), ``"penalty"`` (value-function penalty) or
    ``"reweight"`` (the one-step look-ahead of learning-to-reweight, a cheap baseline).
    ``"auto"`` is the first registered of ``"pgd-cqa"``, ``"reweight"``, ``"implicit"``:
    on ``benchmarks/bench_cleaning.py`` (digits, results/cleaning.md, seeds 0-4), with
    the other defaults (``confidence="cv"`` with two rounds and the neighbour vote,
    ``refit_with_val=True``), pgd-cqa (qp1) had the best test accuracy at p = 0.4 (0.955,
    tied with reweight) and with class-pair noise (0.954), 0.001 below the best at
    p = 0.2 (0.959 vs 0.960) and 0.004 at p = 0.6 (0.937 vs 0.941), detection AUROC
    >= 0.996 everywhere, and pgd-cqa was the fastest method per run (0.74-0.80x reweight's
    wall time with the cross-validation, 0.05x implicit's). ``method_`` says which ran.
variant : {"qp1", "qp2"}, default="qp1"
    The step rule of ``method="pgd-cqa"`` (ignored by the methods without one).
hidden : tuple of int, default=(32,)
    Widths of the hidden layers of ``model="mlp"``.
reg : float, default=1e-4
    L2 penalty on the inner model's parameters.
max_iter : int, default=100
    Iterations of the method.
validation_fraction : float in (0, 1) or None, default=None
    What ``fit`` does without ``X_val`` and ``y_val``: None raises a ValueError (a
    trusted set is the point of the method); a fraction holds out that share of ``(X,
    y)``, stratified by class, as the trusted set, so that the estimator also works
    where a tool calls ``fit(X, y)`` alone. Held-out labels are only as trustworthy as
    the rest: the weights then find samples that disagree with the majority of a random
    part of the data, a weaker signal. The held-out samples keep weight 1 and are never
    flagged.
refit_with_val : bool, default=True
    Whether the final refit also gets the trusted set, with weight 1 per sample. On the
    digits benchmark it raised the test accuracy of every ``confidence="cv"`` row, by
    0.003-0.020 (p = 0.2 to 0.6 and class-pair noise, 5 seeds). Without ``X_val`` (the
    held-out ``validation_fraction``) the trusted part is in ``X`` already, at weight 1.
threshold : float in [0, 1], default=0.5
    ``label_issues_`` flags the samples whose ``label_quality_`` is below it. With
    ``confidence="cv"`` the quality is a probability of the given label: 0.5 flags the
    labels a model that never saw them finds less likely than not.
refit_threshold : float in [0, 1] or None, default=0.1
    The final refit leaves out the samples whose ``label_quality_`` is below it and keeps
    the others at full weight (times ``sample_weight``); None: every sample is weighted by
    its ``label_quality_``. Chosen on digits seeds 5-14, which the benchmark does not
    report (seeds 0-4): against the soft weights it raised the test accuracy by 0.008 /
    0.002 at p = 0.2 / 0.4 (mean paired difference over 5 seeds, ``confidence="cv"``,
    ``refit_with_val=True``), more than thresholds 0.2 or 0.5 (which removes too many
    clean samples: -0.006) or weights ``sqrt(quality)``. Lower than ``threshold``:
    flagging asks "less likely than not", leaving out asks "almost surely wrong".
confidence : {"cv"} or None, default="cv"
    How ``label_quality_`` is made from the learned (bilevel) weights. ``"cv"``: the
    out-of-sample probability of each sample's given label, by clones of ``estimator``
    fitted on the other ``n_folds`` folds weighted by the bilevel weights mapped affinely onto
    [0, 1] (their order counts, not their scale, which differs between methods),
    together with the trusted set at weight 1 (then ``cv_rounds - 1`` more rounds on
    the samples the previous one keeps). It combines the
    trusted-set signal (through the weights and the trusted set in every fold) with
    cross-validated confidence, and needs ``predict_proba``. On the digits benchmark it
    raised the detection AUROC of every method to >= 0.99 with uniform noise (reweight
    alone: 0.96-0.97); with class-pair noise to 0.994 for reweight (0.978 alone), while
    pgd-cqa's fell from 0.984 to 0.967.
    None: ``label_quality_`` is the bilevel weight itself.
n_folds : int, default=5
    Folds of ``confidence="cv"`` (stratified; fewer when a class has fewer samples).
cv_rounds : int >= 1, default=2
    Rounds of ``confidence="cv"``. Every round after the first refits the folds' models
    on the same folds, weighted by the previous round's refit weights (the samples with
    quality >= ``refit_threshold``, times ``sample_weight``; the quality itself when
    ``refit_threshold=None``) instead of the bilevel weights: the folds then learn without
    the labels the first round found wrong. 1 is a single round. Chosen on digits seeds
    5-14 (``benchmarks/dev_cleaning_seeds.py``; the benchmark reports seeds 0-4): two
    rounds raised the test accuracy from 0.956 / 0.950 to 0.958 / 0.953 at p = 0.2 / 0.4
    (better on 9 of 10 seeds at p = 0.4) and the detection AUROC from 0.997 to 0.998;
    three did not add. Each round costs ``n_folds`` fits of ``estimator``.
n_neighbors : int >= 1 or None, default=7
    The neighbour vote of ``confidence="cv"`` (ignored with ``confidence=None``). After
    the rounds, every sample kept for the refit whose ``label_quality_`` is below 0.3
    (``VOTE_HIGH`` in ``skbilevel._cleaning_data``) asks its ``n_neighbors`` nearest
    neighbours among the kept samples (itself included) and the trusted set; when fewer
    than 30 % of them (``VOTE_CUT``) share its given label, it is left out of the refit
    too and flagged (``voted_out_``). Distances are Euclidean on ``X`` as passed to
    ``fit``, so the scale of the columns matters: scale them first (a ``Pipeline``) when
    their units differ. None: no vote. Chosen on digits dev seeds 5-24
    (``benchmarks/dev_cleaning_band.py``) and checked, unchanged, on fresh seeds 25-44:
    over 20 seeds, +1 / +41 / +79 / +41 test samples of 10,800 at p = 0.2 / 0.4 / 0.6 /
    class-pair noise (0.9483 to 0.9521 at p = 0.4, better on 15 seeds, worse on none).
    One nearest-neighbour query for the samples of the band.
device : str or torch.device, default="cpu"
    Where the inner problem runs (e.g. ``"cuda"``); float64 there.
random_state : int, RandomState instance or None, default=None
    Seeds the torch generator of the method (the MLP's initialisation, any perturbation)
    and the split of ``validation_fraction``.
verbose : int, default=0
    0: silent; 1: a header, progress lines at iterations 1, 2, 5, 10, 20, 50 and every
    100th, a final line; 2: a line every iteration.

Attributes
----------
sample_weight_ : ndarray of shape (n_samples,)
    The weights of the refit: 0 for the samples whose ``label_quality_`` is below
    ``refit_threshold`` and 1 for the others (``label_quality_`` itself when
    ``refit_threshold=None``), times the ``sample_weight`` given to ``fit`` (1 without);
    0 for the samples of ``voted_out_``.
label_quality_ : ndarray of shape (n_samples,)
    A score in [0, 1] per training sample, low is suspect: the cross-validated
    probability of the given label (``confidence="cv"``) or the learned weight
    (``sigmoid`` of its logit, ``confidence=None``). The neighbour vote does not change
    it: a voted-out sample keeps its probability (below 0.3), and ``voted_out_`` says
    it was left out.
voted_out_ : ndarray of bool of shape (n_samples,)
    The samples the neighbour vote (``n_neighbors``) left out of the refit; all False
    with ``n_neighbors=None`` or ``confidence=None``.
bilevel_weight_ : ndarray of shape (n_inner_samples,)
    The weights the bilevel method learned, one per sample of the inner problem (the
    training samples not held out by ``validation_fraction``).
label_issues_ : ndarray of bool of shape (n_samples,)
    ``label_quality_ < threshold``, or voted out (``voted_out_``; with the default
    ``threshold`` those are below it anyway). With ``confidence="cv"``: the given label
    is less likely than not out of sample. With ``confidence=None`` a sample is flagged when the
    method moved its weight below the starting point (every logit starts at 0, weight
    1/2); pgd-cqa's clean weights sit near or a little under 1/2, so there the flags
    catch some clean samples too and the order of ``label_quality_`` is what to read.
    Raise ``threshold`` to flag more.
estimator_ : classifier
    The clone of ``estimator`` fitted on ``X`` with ``sample_weight_`` (and the trusted
    set with weight 1 when ``refit_with_val``); predictions come from it.
method_ : str
    The method that ran (``"auto"`` resolved).
history_ : dict of ndarray
    Per iteration: ``outer_value`` (trusted-set log-loss of the inner model),
    ``sqrt_h`` (norm of the inner gradient, how far the inner model is from fitting the
    weighted data), ``stationarity`` (the method's stationarity measure), ``lambda``
    (its multiplier, NaN without one) and ``time`` (seconds).
kkt_residual_ : float
    The last ``stationarity``.
n_iter_ : int
    Iterations run.
classes_ : ndarray of shape (n_classes,)
    The classes of ``y`` (``np.unique``).
n_features_in_ : int
    Number of features seen during :meth:`fit`.
feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :meth:`fit`, when they are all strings.

See Also
--------
sklearn.ensemble.HistGradientBoostingClassifier : Its ``fit`` takes ``X_val``, ``y_val``
    in the same way.

Notes
-----
**Metadata routing.** ``X_val`` and ``y_val`` are ``fit`` metadata. In a
:class:`~sklearn.pipeline.Pipeline` or another meta-estimator, with
``sklearn.set_config(enable_metadata_routing=True)``, request them:
``clf.set_fit_request(X_val=True, y_val=True)``; a pipeline built with
``transform_input=["X_val"]`` (scikit-learn >= 1.6) passes ``X_val`` through its
transformers first.

**GridSearchCV pitfall.** Routed to :class:`~sklearn.model_selection.GridSearchCV`
(or ``cross_validate``), metadata with as many rows as ``X`` is sliced per fold like
``X``: a trusted set the size of the training set would be cut into the folds' parts,
silently. Keep ``X_val`` a different length (it is meant to be small), or use
``validation_fraction``.

Examples
--------
>>> import numpy as np
>>> from sklearn.datasets import make_blobs
>>> from skbilevel import HyperCleaningClassifier
>>> X, y = make_blobs(300, centers=3, random_state=0)
>>> noisy = y.copy()
>>> noisy[:200:10] = (noisy[:200:10] + 1) % 3  # 20 wrong labels
>>> clf = HyperCleaningClassifier(method="reweight", random_state=0)
>>> clf = clf.fit(X[:200], noisy[:200], X_val=X[200:230], y_val=y[200:230])
>>> clf.sample_weight_.shape
(200,)
>>> bool(clf.label_quality_[:200:10].mean() < clf.label_quality_.mean())
True
"""
