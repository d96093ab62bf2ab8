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

import copy
from dataclasses import replace

import numpy as np
import torch

from .engine import Fold
from .engine.inner import ProximalProblem, Shifted, StackedLogisticDatafit, stacked_shift
from .engine.outer import HeldOutStackedLogLoss

# Designs from this many entries: below it a fold's copy is cheap and the folds' own
# solves (parallel with n_jobs) are as fast.
STACK_MIN_ENTRIES = 2_000_000
# inner_tol="auto" of the search's solves (the screening grid and the refit keep their
# tolerances: GRID_TOL times inner_tol, REFIT_TOL times this): one penalty, tuned by the
# bracketing search from adjoints to 1e-3. Solved in float32 first (see search_solver),
# whose rounding stalls L-BFGS near 1e-6 at 50,000 x 1,000, and then checked in float64.
# There: the same C to 1e-3 and CV log-loss to 1e-6 as at 1e-5 in float64, 6.3-7.6 s a
# fit against 7.9-8.8 s; at d = 200 the same C and time.
STACK_AUTO_TOL = 3e-5
# Line searches of the float32 stage of the search's solves: at most this many
# evaluations. Float32's rounding can stall them near 3e-5 (50,000 x 1,000 seed 2: 72
# evaluations, 5.3 s, for a solve that took 14 with this cap, and 3 in float64 after it).
LOW_PRECISION_LINE_SEARCH = 3


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

    def search_solver(self, solver):
        """The search's solves: ``solver`` in float32 (line searches of at most
        ``LOW_PRECISION_LINE_SEARCH`` evaluations), then in float64 from its answer (a
        check, one evaluation, where float32 met the tolerance; see
        :class:`LowPrecisionSolves`). ``solver`` alone at a user's ``inner_tol``, which may
        lie below where float32 stalls, and where it sketches each fold's Hessian
        (``LBFGS.sketch_max``): from a warm start it then takes 3-6 evaluations, and two
        solves cost more than float32 saves (50,000 x 200: 0.73 against 0.44 s). Also
        alone on a float32 design (``dtype="float32"``), where there is nothing to save."""
        per_fold = self.datafit.n_features + int(self.datafit.fit_intercept)
        if self.inner_tol is None or per_fold <= getattr(solver, "sketch_max", 0) or \
                self.datafit.design.X.dtype != torch.float64:
            return solver
        coarse = copy.copy(solver)
        coarse.max_line_search = LOW_PRECISION_LINE_SEARCH
        return LowPrecisionSolves(coarse, self.datafit.design, finish=solver)

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
    """An inner solver whose solves run ``design``'s products in float32, and optionally
    finish in float64.

    Solves to a loose tolerance (the screening grid's, ``GRID_TOL`` times the search's)
    read gradients to about ``1e-3`` of their scale; float32 products err by about
    ``1e-6`` and cost half (``LinearDesign.low_precision``). The criterion's value at the
    solution is computed after the solve, in float64. With ``finish``, the float32
    solution is the start of ``finish``'s float64 solve (which stops at once where the
    float32 one already meets its tolerance): ``solver``'s tolerance must lie above where
    float32's rounding stalls it (a relative gradient near 1e-6 at 50,000 x 1,000, from
    the rounding of the loss). Everything else is ``finish``'s, or else ``solver``'s.
    """

    def __init__(self, solver, design, finish=None):
        self.solver, self.design, self.finish = solver, design, finish

    def solve(self, problem, theta, w0=None, **options):
        with self.design.low_precision():
            solution = self.solver.solve(problem, theta, w0, **options)
        if self.finish is None:
            return solution
        exact = self.finish.solve(problem, theta, solution.w, **options)
        # The adjoint's preconditioner (L-BFGS's curvature pairs): the longer stage's, whose
        # pairs sample more of the Hessian near the solution (a finish of 0-2 iterations
        # has 0-2 pairs: 5 CG products against 3 with the float32 stage's 5-9).
        better = exact if exact.n_iter >= solution.n_iter or \
            solution.preconditioner is None else solution
        return replace(exact, preconditioner=better.preconditioner,
                       n_iter=solution.n_iter + exact.n_iter,
                       n_func_eval=solution.n_func_eval + exact.n_func_eval,
                       n_grad_eval=solution.n_grad_eval + exact.n_grad_eval)

    def __getattr__(self, name):
        if name in ("solver", "design", "finish"):  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.solver if self.finish is None else self.finish, name)
