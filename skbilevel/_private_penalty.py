"""``method="penalty"``: Kornowski's first-order, Hessian-free DP bilevel method
(arXiv 2409.19800; ``doc/../shared/ALGORITHMS.md`` section 4 and Appendix B).

The hyperparameter is ``theta = log alpha`` (ridge) or ``theta = log C`` (logistic, whose
inner penalty is ``alpha = 1 / C``). In scikit-learn's (sum) units, fold k has

    g_k(theta, w) = sum_{train_k} l(w) + alpha / 2 ||w||^2,
    f_k(w)        = sum_{val_k} l(w),

and the outer objective is ``F = (1/K) sum_k f_k(w_k*(theta))``: every row's validation
loss once, over K. Only public constants normalise it. Under add/remove-one neighbours the
block sizes ``n_train_k``, ``n_val_k`` are not public (``n`` is not), and anything computed
from them (a mean validation loss's ``1 / n_val_k``, a ratio ``n_train_k / n_val_k`` in
``lambda`` or in the projection radius) would leak through the iterates, and through the
noise scale of every later release (``alpha_t`` sets it). Dividing ``F`` by ``n`` would not
move its minimiser, and the step below is invariant to the gradient's scale, so nothing is
lost. The penalty surrogate with ``lambda = penalty`` gives
``y_lambda = argmin f_k / lambda + g_k``, i.e. the validation rows join the training rows
with weight ``1 / penalty <= 1``, and

    dF_k/dtheta ~ lambda (d_theta g_k(y_lambda) - d_theta g_k(y*))
               = lambda s alpha / 2 (||y_lambda||^2 - ||y*||^2),   s = +1 ridge, -1 logistic,

up to ``O(1 / penalty)``: only gradients, no Hessian.

Which releases read the data. ``d_theta g = s alpha/2 ||w||^2`` reads no row and ``f``
does not depend on theta, so once the two inner minimisers are released privately the
hypergradient is post-processing: free. (In the paper ``grad_x g(x, y)`` reads the data in
general, hence its Gaussian noise on the x-gradient, whose sensitivity the projection of
``y_lambda`` onto ``B(y, C_y / lambda)`` keeps independent of lambda; here neither the noise
nor the projection is needed for privacy.) The only releases are, at each step and fold,
the two output-perturbed inner minimisers. Adding or removing one row adds or removes one
term ``l`` or ``l / penalty`` (weight ``<= 1``) of gradient norm at most ``L`` (the per-row
bound of :func:`skbilevel._private_erm.row_gradient_bound`) to an ``alpha_t``-strongly
convex objective, so the minimiser moves by at most ``L / alpha_t``: the sensitivity (see
:mod:`skbilevel._private_erm`, which adds the solver's slack). Each of the ``2 K T``
releases is a Gaussian mechanism with noise ``s_mult * L / alpha_t``; the one multiplier
``s_mult`` is calibrated on their composition before the data are read. ``alpha_t`` is a
function of the earlier releases and public constants only (``penalty``, ``radius``,
``K``, the steps, the box), so each release is a Gaussian mechanism of multiplier
``s_mult`` chosen adaptively, which the composition covers. A row is in the training rows
of K - 1 folds and the validation rows of one, so the folds compose (no parallel
composition is claimed).

Folds or one split: under Gaussian composition, K folds cost each release sqrt(K) times
the noise, and averaging K independent fold hypergradients divides it by sqrt(K): the same
noise as one split, with a validation loss over all n rows instead of n / K. So the method
uses whatever splits the task has (the estimator's ``cv`` or ``validation_fraction``).

The projection is kept as what it is here, a variance control: ``y_lambda - y`` is
projected onto the ball of radius ``radius / (penalty c)``, ``c = max(K - 1, 1)``: K
blocks of equal expected size (as the estimator draws them) have
``n_train / n_val ~ K - 1``, a public stand-in for the ratio by which
``||y_lambda - y|| ~ (n_val / n_train) / penalty``. The hypergradient is taken by
polarisation, ``lambda s alpha <(y + y_lambda) / 2, P(y_lambda - y)>`` (the paper's formula
when the projection is inactive): the midpoint's noise is independent of the difference's
(equal noise variances), so a saturated projection shrinks the signal without biasing it.
The step is AdaGrad-norm's ``eta G_t / sqrt(sum_{s<=t} G_s^2)``, which no positive scale
of all the ``G`` changes; it is clipped to ``max_step`` in theta; the output is the
average of the iterates after ``burn_in`` (no value-based selection, which would have to
be paid for).
"""

from __future__ import annotations

import dp_accounting
import numpy as np

from ._private_base import PrivateMethod, PrivateTuning
from ._private_erm import (RELATIVE_TOL, RidgeMoments, intercept_design, logistic_solve,
                           row_gradient_bound, sensitivity)
from .engine.dp import calibrate, gaussian_event


def _calibrate(steps, per_step, epsilon, delta, accountant):
    """The noise multiplier of ``steps`` x ``per_step`` Gaussian mechanisms spending
    ``epsilon``, calibrated on the very event the ledger records (one composition of
    ``per_step`` releases per step: PLD's discretisation depends on the grouping).
    :func:`~skbilevel.engine.dp.calibrate` caches it (data-free, reused by repeated fits)."""
    def make_event(s):
        return dp_accounting.ComposedDpEvent([gaussian_event(s, per_step)] * steps)

    return calibrate(make_event, epsilon, delta, accountant=accountant, lower=1e-4)


class _Fold:
    """One fold's data and its two inner solvers (plain and penalised)."""

    def __init__(self, X, y, train, val, kind, penalty, coef_bound):
        self.kind, self.coef_bound = kind, coef_bound
        rows = np.concatenate([train, val])
        self.X, self.y = X[rows], y[rows]
        self.weights = {False: np.r_[np.ones(len(train)), np.zeros(len(val))],
                        True: np.r_[np.ones(len(train)), np.full(len(val), 1 / penalty)]}
        if kind == "ridge":
            self.moments = {pen: RidgeMoments(self.X, self.y, w)
                            for pen, w in self.weights.items()}
        self.warm = {False: np.zeros(X.shape[1]), True: np.zeros(X.shape[1])}

    def solve(self, alpha, penalised, gtol):
        """The exact (pre-noise) minimiser: this is what reads the data."""
        if self.kind == "ridge":
            return self.moments[penalised].solve(alpha, self.coef_bound)
        return logistic_solve(self.X, self.y, self.weights[penalised], alpha,
                              self.warm[penalised], gtol)


class PenaltyMethod(PrivateMethod):
    """First-order penalty hypergradient with two output-perturbed inner solves per fold
    and step (see the module docstring for the derivation and the accounting).

    Parameters
    ----------
    penalty : float, default=10
        ``lambda`` (>= 1): validation rows enter the penalised problem with weight
        ``1 / penalty``; the surrogate's bias is ``O(1 / penalty)``.
    step_size : float, default=1
        ``eta``: the step is ``eta G_t / sqrt(sum_{s<=t} G_s^2)`` (AdaGrad-norm: scale-free,
        so one default fits every loss scale; a fixed schedule of the private iterates,
        post-processing like the rest).
    max_step : float, default=1
        Largest change of ``theta`` in one step (post-processing).
    burn_in : float, default=0.5
        Fraction of the iterates left out of the returned average.
    coef_bound : float or None
        Ridge: radius of the ball the inner problems are solved on (it bounds the per-row
        gradient). None: ``2 sqrt(d) y_bound / R`` with R the row norm bound.
    radius : float or None
        ``C_y``: ``y_lambda - y`` is projected onto ``B(0, C_y / (penalty c))`` with the
        public ``c = max(K - 1, 1)`` for K folds (module docstring). None: the
        ridge ``coef_bound``, or ``2 sqrt(d) / R`` for logistic.
    """

    name = "penalty"
    kinds = frozenset({"ridge", "logistic"})

    def __init__(self, penalty=10.0, step_size=1.0, max_step=1.0, burn_in=0.5,
                 coef_bound=None, radius=None):
        if penalty < 1:
            raise ValueError(f"penalty must be >= 1 (validation weight <= 1), got {penalty}")
        self.penalty, self.step_size, self.max_step = penalty, step_size, max_step
        self.burn_in, self.coef_bound, self.radius = burn_in, coef_bound, radius

    def _design(self, task):
        """The design the inner problems see (see :func:`intercept_design`)."""
        return intercept_design(task.X, task.fit_intercept, task.data_norm)

    def bounds(self, task):
        """``(row_norm, coef_bound, radius)``: data-free constants of the mechanism."""
        X, row_norm = self._design(task)
        scale = task.y_bound if task.kind == "ridge" else 1.0
        default = 2.0 * np.sqrt(X.shape[1]) * scale / row_norm
        coef_bound = self.coef_bound if self.coef_bound is not None else default
        radius = self.radius if self.radius is not None else coef_bound
        return row_norm, coef_bound, radius

    def tune(self, task, epsilon, delta, ledger, rng, *, max_iter, progress=None):
        if task.kind not in self.kinds:
            raise ValueError(f"method 'penalty' supports {sorted(self.kinds)}, "
                             f"not {task.kind!r}")
        X, row_norm = self._design(task)
        coef_bound, radius = self.bounds(task)[1:]
        sign = 1.0 if task.kind == "ridge" else -1.0  # d log(alpha) / d theta
        lip = row_gradient_bound(task.kind, row_norm, task.y_bound, coef_bound)
        folds = [_Fold(X, np.asarray(task.y, float), np.asarray(tr), np.asarray(va),
                       task.kind, self.penalty, coef_bound) for tr, va in task.splits]
        T, K = int(max_iter), len(folds)
        # Public constants only (the block sizes are not public): see the module docstring.
        r = radius / (self.penalty * max(K - 1, 1))

        # One multiplier for all 2 K T releases, calibrated before any row is read.
        noise_mult = _calibrate(T, 2 * K, float(epsilon), float(delta), ledger.accountant)
        low, high = task.theta_bounds
        theta = 0.5 * (low + high)
        hist = {k: [] for k in ("theta", "hypergradient", "coef_norm", "diff_norm",
                                "sensitivity")}
        thetas, sum_sq = [], 0.0
        for t in range(T):
            alpha = np.exp(sign * theta)
            sens = sensitivity(task.kind, alpha, row_norm, task.y_bound, coef_bound)
            # One event per step, as calibrated; one phase name for all of them, which the
            # ledger's report shows as one phase of 2 K T releases.
            ledger.spend("tuning: penalty hypergradient", gaussian_event(noise_mult, 2 * K),
                         mechanism="output perturbation", noise_multiplier=noise_mult,
                         releases=2 * K, sensitivity=sens)
            grads, coef_norms, diff_norms = [], [], []
            for fold in folds:
                released = {}
                for pen in (False, True):
                    exact = fold.solve(alpha, pen, RELATIVE_TOL * lip)
                    noise = rng.standard_normal(exact.shape) * (noise_mult * sens)
                    released[pen] = exact + self._noise_factor * noise
                    fold.warm[pen] = released[pen]  # warm start from a private output
                # Post-processing of the two private outputs only.
                diff = released[True] - released[False]
                diff_norm = np.linalg.norm(diff)
                if diff_norm > r:
                    diff = diff * (r / diff_norm)
                mid = 0.5 * (released[True] + released[False])
                grads.append(self.penalty * sign * alpha * (mid @ diff))
                coef_norms.append(np.linalg.norm(released[False]))
                diff_norms.append(diff_norm)
            grad = float(np.mean(grads))
            thetas.append(theta)
            hist["theta"].append(theta)
            hist["hypergradient"].append(grad)
            hist["coef_norm"].append(float(np.mean(coef_norms)))
            hist["diff_norm"].append(float(np.mean(diff_norms)))
            hist["sensitivity"].append(sens)
            sum_sq += grad ** 2
            step = self.step_size * grad / np.sqrt(sum_sq) if sum_sq > 0 else 0.0
            step = float(np.clip(step, -self.max_step, self.max_step))
            theta = float(np.clip(theta - step, low, high))
            if progress is not None:
                progress(step=t + 1, theta=theta, noisy_hypergradient=grad)
        start = min(int(self.burn_in * T), T - 1)
        theta_out = float(np.clip(np.mean(thetas[start:] + [theta]), low, high))
        hist["noise_multiplier"] = noise_mult
        return PrivateTuning(theta=theta_out, history=hist, n_iter=T)
