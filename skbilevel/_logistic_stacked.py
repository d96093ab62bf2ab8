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
# inner_tol="auto" of the search's solves (the screening grid and the refit keep their
# tolerances, GRID_TOL and REFIT_TOL times 1e-6): one penalty, tuned by the bracketing
# search from adjoints to 1e-3, which 1e-5 serves. At 50,000 x 1,000: 7-10 L-BFGS
# iterations a search evaluation instead of 9-12, the same C to 1e-3 and CV log-loss to
# 1e-8; at d = 200 the same C and time.
STACK_AUTO_TOL = 1e-5


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
    inner_tol : float or None
        The search's inner tolerance (None: the estimator's).
    """

    def __init__(self, X, codes, sample_weight, splits, penalty, fit_intercept,
                 inner_tol=None):
        n, K = X.shape[0], len(splits)
        train = X.new_zeros(n, K)
        validation = X.new_zeros(n, K)
        for k, (tr, va) in enumerate(splits):
            tr, va = (torch.as_tensor(i, device=X.device) for i in (tr, va))
            train[tr, k] = sample_weight[tr]
            validation[va, k] = sample_weight[va]
        # One penalty: adjoints to BRACKET_ADJOINT_RTOL (1e-3), which float32 products
        # (relative errors ~1e-6) serve at half the cost.
        self.datafit = StackedLogisticDatafit(X, codes.to(X.dtype), train, fit_intercept,
                                              low_precision_hvp=True)
        problem = ProximalProblem(self.datafit, Shifted(penalty, stacked_shift(train)))
        self.fold = Fold(problem, HeldOutStackedLogLoss(self.datafit, validation))
        self.splits, self.sample_weight, self.codes = splits, sample_weight, codes
        self.inner_tol = inner_tol

    def screening_solver(self, solver):
        """``solver`` with its solves' products in float32 (see :class:`LowPrecisionSolves`):
        for the screening grid, whose values only rank starting points and whose solves
        stop 1000 times looser than the search's."""
        return LowPrecisionSolves(solver, self.datafit.design)

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


class LowPrecisionSolves:
    """An inner solver whose solves run ``design``'s products in float32.

    Solves to a loose tolerance (the screening grid's, ``GRID_TOL`` times the search's)
    read gradients to about ``1e-3`` of their scale; float32 products err by about
    ``1e-6`` and cost half (``LinearDesign.low_precision``). The criterion's value at the
    solution is computed after the solve, in float64. Everything else is ``solver``'s.
    """

    def __init__(self, solver, design):
        self.solver, self.design = solver, design

    def solve(self, problem, theta, w0=None, **options):
        with self.design.low_precision():
            return self.solver.solve(problem, theta, w0, **options)

    def __getattr__(self, name):
        if name in ("solver", "design"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.solver, name)
