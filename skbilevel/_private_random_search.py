"""DP random search with private selection: the baseline of :class:`PrivateHyperparamSearch`.

Papernot & Steinke ("Hyperparameter tuning with Renyi differential privacy", ICLR 2022): run
a private mechanism ``K`` times, ``K`` drawn at random from a truncated negative binomial
distribution (geometric by default), and release only the best run. One run here draws a
candidate ``theta`` uniformly in ``theta_bounds`` (data-independent), trains the model
privately on the training rows of ``task.splits[0]`` and scores it by a noisy validation
loss of a bounded loss on the validation rows. The whole search is ONE
``RepeatAndSelectDpEvent(ComposedDpEvent([training, score]), mean, shape)``, accounted by
dp-accounting's RDP accountant; one noise multiplier, calibrated to the method's budget,
serves both releases of a run (each noise is that multiplier times its own sensitivity).

Why a single split and not all folds: a row is in the training rows of ``k - 1`` folds, so
training on every fold composes ``k - 1`` training releases per run (noise up to ``sqrt(k)``
larger) to average scores that are already cheap (the validation blocks are disjoint, so
one noisy score per block costs what one costs).

What is released: the selected run's ``theta``, its noisy score and its private model. Not
the other candidates, their scores or their number ``K``: the guarantee of repeat-and-select
is for the best run alone and rests on ``K`` staying secret (with ``K`` known it is a
best-of-``K`` with ``K`` fixed, which the accounting does not cover). For the same reason
``n_iter`` is 1 (one private selection) and no progress is reported per run.
"""

from __future__ import annotations

import functools
import math

import dp_accounting
import numpy as np
from dp_accounting.dp_event import RepeatAndSelectDpEvent
from scipy.optimize import brentq
from scipy.special import expit

from ._private_base import PrivateMethod, PrivateTuning
from ._private_erm import intercept_design, symmetric_noise
from ._private_logistic import STEPS, private_logistic_fit, release_grams
from .engine.dp import calibrate, gaussian_event


def _tnb_mean(gamma: float, shape: float) -> float:
    """Mean of the truncated negative binomial distribution TNB(shape, gamma) (on k >= 1)."""
    if shape == 0:  # the logarithmic distribution
        return (1 - gamma) / (gamma * math.log(1 / gamma))
    return shape * (1 - gamma) / (gamma * (1 - gamma ** shape))


@functools.lru_cache(maxsize=256)
def repetition_gamma(mean: float, shape: float) -> float:
    """The ``gamma`` of the TNB(``shape``, ``gamma``) distribution of mean ``mean``.

    dp-accounting's accountant solves the same equation by bisection and keeps the lower
    end (a larger mean, so a larger epsilon): accounting with it is conservative for the
    exact root used here.
    """
    if mean < 1 or shape < 0 or not math.isfinite(shape):
        raise ValueError(f"need mean >= 1 and a finite shape >= 0, got {mean}, {shape}")
    if mean == 1:
        return 1.0
    if shape == 1:
        return 1 / mean
    log_gamma = brentq(lambda t: _tnb_mean(math.exp(t), shape) - mean, -60.0, -1e-12,
                       xtol=1e-14, rtol=1e-14)
    return math.exp(log_gamma)


def sample_repetitions(mean: float, shape: float, rng) -> int:
    """A number of runs ``K >= 1`` from the distribution ``RepeatAndSelectDpEvent(event,
    mean, shape)`` assumes: geometric (``shape=1``), logarithmic (``shape=0``) or truncated
    negative binomial (``0 < shape < inf``) of mean ``mean``."""
    gamma = repetition_gamma(mean, shape)
    if gamma == 1.0:
        return 1
    if shape == 1:
        return int(rng.geometric(gamma))
    if shape == 0:
        return int(rng.logseries(1 - gamma))
    while True:  # the negative binomial conditioned on k >= 1, by rejection
        k = int(rng.negative_binomial(shape, gamma))
        if k >= 1:
            return k


def repeat_and_select_event(noise_multiplier: float, mean: float, shape: float,
                            kind: str = "ridge"):
    """The repeated run's event: repeat-and-select of (training, score). Training is one
    Gaussian release for ridge (the moments) and :data:`STEPS` for logistic regression (the
    gradients of the fit; the Gram is released once, before the search)."""
    training = gaussian_event(noise_multiplier, 1 if kind == "ridge" else STEPS)
    run = dp_accounting.ComposedDpEvent([training, gaussian_event(noise_multiplier)])
    return RepeatAndSelectDpEvent(run, float(mean), float(shape))


def search_event(noise_multiplier: float, mean: float, shape: float, kind: str = "ridge"):
    """Everything the search releases: for logistic regression, the blocks' Grams (one
    Gaussian release) and then the repeat-and-select."""
    search = repeat_and_select_event(noise_multiplier, mean, shape, kind)
    if kind == "ridge":
        return search
    return dp_accounting.ComposedDpEvent([gaussian_event(noise_multiplier), search])


def calibrated_noise(epsilon: float, delta: float, mean: float, shape: float,
                     kind: str = "ridge") -> float:
    """The smallest noise multiplier with which the search spends at most (epsilon, delta)
    (:func:`calibrate` memoises it: the bisection costs ~0.3 s and audits ask thousands of
    times)."""
    if math.isinf(epsilon):
        return 0.0
    return calibrate(lambda s: search_event(s, mean, shape, kind), epsilon, delta,
                     lower=1e-8)


# --- one run: private training and noisy scoring --------------------------------------

def train_ridge(Z, y, alpha, *, norm, y_bound, intercept, sigma, rng):
    """Ridge from noisy sufficient statistics ``(Z'Z, Z'y)``.

    Adding a row ``(z, y)`` changes them by ``(zz', zy)``, of L2 norm (upper triangle of
    ``zz'`` and ``zy``) at most ``sqrt(norm^4 + norm^2 y_bound^2)``. The noisy Gram is made
    positive semi-definite by clipping its eigenvalues (post-processing); the intercept's
    coordinate is not penalised, as in scikit-learn's ``Ridge``.
    """
    d = Z.shape[1]
    sensitivity = math.sqrt(norm ** 4 + norm ** 2 * y_bound ** 2)
    gram = Z.T @ Z + symmetric_noise(d, sigma * sensitivity, rng)
    moment = Z.T @ y + rng.normal(0.0, sigma * sensitivity, d)
    eigval, eigvec = np.linalg.eigh(gram)
    gram = (eigvec * np.maximum(eigval, 0.0)) @ eigvec.T
    penalty = np.full(d, alpha)
    if intercept:
        penalty[-1] = 0.0
    return np.linalg.lstsq(gram + np.diag(penalty), moment, rcond=None)[0]


def bounded_losses(kind, Z, y, w, *, y_bound=None, p_min=0.01):
    """Per-row losses in ``[0, bound]`` and ``bound`` (the sensitivity of their sum).

    Ridge: squared error of the prediction clipped to ``+-y_bound`` (``bound = (2
    y_bound)^2``). Logistic: the log-loss of the probability clipped to ``[p_min, 1 -
    p_min]``, minus its floor ``-log(1 - p_min)`` (``bound = log((1 - p_min) / p_min)``).
    The clipped log-loss rather than the 0/1 loss (sensitivity 1): accuracy is flat over
    most of the range of ``C`` and would not rank the candidates.
    """
    margin = Z @ w
    if kind == "ridge":
        return (np.clip(margin, -y_bound, y_bound) - y) ** 2, 4 * y_bound ** 2
    p = np.clip(expit(np.where(y == 1, margin, -margin)), p_min, 1 - p_min)
    return np.log1p(-p_min) - np.log(p), math.log((1 - p_min) / p_min)


class RandomSearchMethod(PrivateMethod):
    """DP random search with private selection (the ``method="random-search"`` baseline).

    Parameters
    ----------
    mean_repetitions : float, default=10.0
        Mean of the random number of runs ``K`` (the event's ``mean``). The cost in noise
        grows only like ``log(mean)``; ``K`` is not truncated (that would void the
        accounting), so a run may occasionally take several times the mean.
    shape : float, default=1.0
        The event's ``shape``: 1 geometric, 0 logarithmic, else truncated negative binomial.
    p_min : float, default=0.01
        Probability clip of the logistic validation loss (its sensitivity is
        ``log((1 - p_min) / p_min)``).

    Notes
    -----
    ``max_iter`` is not used: the number of runs is random by design.
    """

    name = "random-search"
    kinds = frozenset({"ridge", "logistic"})

    def __init__(self, mean_repetitions: float = 10.0, shape: float = 1.0,
                 p_min: float = 0.01):
        repetition_gamma(mean_repetitions, shape)  # validates them
        if not 0 < p_min < 0.5:
            raise ValueError(f"p_min must be in (0, 0.5), got {p_min}")
        self.mean_repetitions, self.shape, self.p_min = mean_repetitions, shape, p_min

    def tune(self, task, epsilon, delta, ledger, rng, *, max_iter=None, progress=None):
        if task.kind not in self.kinds:
            raise ValueError(f"{self.name} supports {sorted(self.kinds)}, not {task.kind!r}")
        if task.kind == "ridge" and task.y_bound is None:
            raise ValueError("ridge needs y_bound")
        mean, shape = float(self.mean_repetitions), float(self.shape)
        sigma = calibrated_noise(float(epsilon), float(delta), mean, shape, task.kind)
        noise = sigma * self._noise_factor
        train, val = task.splits[0]
        Z, norm = intercept_design(task.X, task.fit_intercept, task.data_norm)
        refit_gram = None
        if task.kind == "logistic":
            # The Gram does not depend on C: released once for the training rows (and the
            # validation block, disjoint, in the same release) it serves every candidate
            # and, summed, the refit.
            train_gram, val_gram = release_grams(Z, [train, val], norm, sigma, ledger, rng,
                                                 phase="tuning: Grams",
                                                 noise_factor=self._noise_factor)
            refit_gram = train_gram + val_gram
        # Recorded before the runs read the data: the search is one release.
        ledger.spend("tuning: random search",
                     repeat_and_select_event(sigma, mean, shape, task.kind),
                     mechanism=f"repeat and select (K ~ TNB(shape={shape:g}), mean "
                               f"{mean:g}) of a private fit and a noisy validation loss",
                     noise_multiplier=sigma,
                     releases=2 if task.kind == "ridge" else STEPS + 1)
        low, high = task.theta_bounds
        best = None
        for _ in range(sample_repetitions(mean, shape, rng)):
            theta = float(rng.uniform(low, high))
            value = math.exp(theta)
            if task.kind == "ridge":
                w = train_ridge(Z[train], task.y[train], value, norm=norm,
                                y_bound=task.y_bound, intercept=task.fit_intercept,
                                sigma=noise, rng=rng)
            else:
                w = private_logistic_fit(Z[train], task.y[train], value, train_gram, norm,
                                         sigma, rng, noise_factor=self._noise_factor)
            losses, bound = bounded_losses(task.kind, Z[val], task.y[val], w,
                                           y_bound=task.y_bound, p_min=self.p_min)
            score = float(losses.sum() + rng.normal(0.0, noise * bound))
            if best is None or score < best[1]:
                best = (theta, score, w)
        theta, score, w = best
        coef, intercept = (w[:-1], w[-1] * task.data_norm) if task.fit_intercept else (w, 0.0)
        # The noisy *sum* as released: the validation block's size is not public under
        # add/remove-one (n is not), so dividing by it would leak outside the accounting.
        history = {"theta": [theta], "noisy_score_sum": [score],
                   "coef": coef.copy(), "intercept": float(intercept)}
        if progress is not None:
            # Keywords only, as the interface says (the estimator's printer formats them).
            progress(theta=theta, noisy_score_sum=score)
        return PrivateTuning(theta=theta, history=history, n_iter=1,
                             refit_gram=refit_gram)
