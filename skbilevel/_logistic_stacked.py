"""K-fold cross-validation of a large binary L2 logistic problem, the folds side by side.

``BilevelLogisticRegressionCV`` solves each fold on its own rows by default, from one
reordered copy of the data (:func:`~skbilevel._tuning.contiguous_folds`). On a large dense
problem it solves the folds as one problem on the rows of ``X`` as given
(:class:`~skbilevel.engine.inner.StackedLogisticDatafit`, whose Hessian sketch is
block-diagonal over the folds): no copy, and one pass over ``X`` per evaluation for all
the folds. At 50,000 x 1,000 the copy (1.8 times the data) took 8 s of a 21 s fit on a
virtual machine where fresh memory is slow to touch, and a product with 5 columns costs
about 2 products with one (``benchmarks/results/logistic_cv.md``).
"""

from __future__ import annotations

import numpy as np
import torch

from .engine import Fold
from .engine.inner import ProximalProblem, Shifted, StackedLogisticDatafit, stacked_shift
from .engine.outer import HeldOutStackedLogLoss

# Designs from this many entries: below it a fold's copy is cheap and the folds' own
# solves (parallel with n_jobs) are as fast.
STACK_MIN_ENTRIES = 2_000_000


def stack_applies(estimator, X, solver_name, layout, held):
    """Whether ``estimator`` (a ``BilevelLogisticRegressionCV``) solves its folds side by
    side: a binary L2 problem on a dense design of at least ``STACK_MIN_ENTRIES`` entries,
    tuned by implicit differentiation with L-BFGS, whose folds partition the rows (no
    early-stopping holdout)."""
    return layout is not None and held is None and estimator.penalty == "l2" and \
        not estimator.C_per_feature and len(estimator.classes_) == 2 and \
        estimator.hypergradient == "implicit" and solver_name == "lbfgs" and \
        isinstance(X, np.ndarray) and X.size >= STACK_MIN_ENTRIES


class SideBySideFolds:
    """The folds of ``splits`` as one :class:`Fold` on all the rows.

    Parameters
    ----------
    X, codes, sample_weight : torch.Tensor
        The design ``(n, d)``, labels in {0, 1} and weights of all the rows.
    splits : list of (train, validation) index arrays
        The folds.
    penalty : L2
        The shared penalty, ``exp(theta) = 1 / C`` before the weight shift.
    fit_intercept : bool
        Whether the models have an unpenalised intercept.
    """

    def __init__(self, X, codes, sample_weight, splits, penalty, fit_intercept):
        n, K = X.shape[0], len(splits)
        train = X.new_zeros(n, K)
        validation = X.new_zeros(n, K)
        for k, (tr, va) in enumerate(splits):
            tr, va = (torch.as_tensor(i, device=X.device) for i in (tr, va))
            train[tr, k] = sample_weight[tr]
            validation[va, k] = sample_weight[va]
        self.datafit = StackedLogisticDatafit(X, codes.to(X.dtype), train, fit_intercept)
        problem = ProximalProblem(self.datafit, Shifted(penalty, stacked_shift(train)))
        self.fold = Fold(problem, HeldOutStackedLogLoss(self.datafit, validation))
        self.splits, self.sample_weight, self.codes = splits, sample_weight, codes

    def unstack(self, w):
        """Each fold's ``(d [+ 1], 1)`` solution in the joint solution ``w``."""
        return self.datafit.unstack(w)

    def unstack_path(self, path):
        """The per-fold layout of a kept solution path (one joint solution a call)."""
        return [self.unstack(solutions[0]) for solutions in path]

    def fold_accuracies(self, w):
        """Each fold's weighted accuracy on its validation rows at the joint ``w``: the
        sign of its column of ``[X, 1] W`` (one pass for all the folds)."""
        decision = self.datafit.scores(w).detach().cpu().numpy()
        codes = self.codes.cpu().numpy()
        weight = self.sample_weight.cpu().numpy()
        return [float(np.average((decision[va, k] > 0) == codes[va], weights=weight[va]))
                for k, (_, va) in enumerate(self.splits)]
