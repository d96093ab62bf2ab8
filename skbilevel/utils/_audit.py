"""Empirical privacy audits: a membership test that can refute a claimed epsilon.

A mechanism claiming (epsilon, delta)-DP cannot let any test tell "the canary row was in the
data" from "it was not" better than ``TPR <= e^epsilon FPR + delta``. The audit runs a
randomised release many times on a dataset ``D`` and on ``D`` plus a canary row (each run
with its own seed), picks a threshold on one scalar output using half of the runs, counts
the test's outcomes on the other half and turns them into a lower bound on epsilon that
holds with confidence ``1 - alpha`` (Clopper-Pearson intervals,
:func:`skbilevel.engine.dp.epsilon_lower_bound`). A bound above the claimed epsilon
refutes the claim; one below it does not prove anything, so an audit is only worth its
*power*: run the same audit with the noise switched off (or scaled down) and check that it
then exceeds the claim.

How to audit a mechanism
------------------------
1. Write ``release(data, rng) -> float``: one cheap private run on ``data`` with all of its
   randomness from ``rng`` (a :class:`numpy.random.Generator`), returning one scalar of
   what it publishes (a coefficient, the chosen hyperparameter, a noisy score). For a
   :class:`~skbilevel._private_base.PrivateMethod`, :func:`method_release` builds it.
2. Choose ``D`` and a canary so that the canary moves that scalar as much as the bounds
   allow: a row at the bounds (:func:`canary_row`: norm ``data_norm``, ``y = +y_bound``) in
   a direction the rest of ``D`` leaves empty, in the rows the output depends on (the
   training rows for a coefficient, the validation rows for a score).
3. :func:`audit` with ``delta`` the mechanism's delta: ``epsilon_lb`` must stay below the
   claimed epsilon, and exceed it with the noise off (a private test hook of the mechanism).

Each side's ``n_runs`` bounds what the audit can show: with no error at all on
``n_runs / 2`` evaluation runs per side, ``epsilon_lb`` is about
``log(n_runs / 2 / 3.7)`` (4.9 for 1000 runs, 6.3 for 4000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.stats import beta

from ..engine.dp import epsilon_lower_bound


@dataclass(frozen=True)
class AuditResult:
    """What an audit found.

    Attributes
    ----------
    epsilon_lb : float
        The epsilon the test proves at confidence ``1 - alpha`` (0 when it proves nothing).
    tp, fn, fp, tn : int
        The test's outcomes on the evaluation half: ``tp, fn`` on runs with the canary,
        ``fp, tn`` on runs without.
    threshold : float
        The threshold chosen on the calibration half.
    canary_above : bool
        True: "canary present" is guessed when the output is above ``threshold``; False:
        below.
    without, with_canary : ndarray
        Every run's output (calibration half first).
    """

    epsilon_lb: float
    tp: int
    fn: int
    fp: int
    tn: int
    threshold: float
    canary_above: bool
    without: np.ndarray
    with_canary: np.ndarray

    def __str__(self):
        side = ">" if self.canary_above else "<"
        return (f"epsilon_lb={self.epsilon_lb:.3f} (guess canary when output {side} "
                f"{self.threshold:.4g}: TP={self.tp} FN={self.fn} FP={self.fp} TN={self.tn})")


def canary_row(n_features: int, data_norm: float, y_bound: float = 1.0, *, feature: int = 0):
    """A row at the bounds: ``x = data_norm * e_feature`` and ``y = y_bound`` (pass
    ``y_bound=1`` for a 0/1 classification target)."""
    x = np.zeros(n_features)
    x[feature] = data_norm
    return x, float(y_bound)


def with_row(X, y, x_row, y_row):
    """``(X, y)`` with the row ``(x_row, y_row)`` appended last."""
    return np.vstack([X, np.asarray(x_row)[None, :]]), np.append(y, y_row)


def method_release(method, make_task: Callable, epsilon: float, delta: float,
                   output: Callable = lambda tuning: tuning.theta, *,
                   max_iter: int = 10) -> Callable:
    """``release(data, rng)`` running ``method.tune(make_task(data), epsilon, delta, ...,
    max_iter=max_iter)`` with a fresh ledger, returning ``output(tuning)`` (a scalar of
    what it publishes, e.g. ``lambda tuning: tuning.history["coef"][0]``)."""
    from ..engine.dp import PrivacyLedger

    def release(data, rng):
        tuning = method.tune(make_task(data), epsilon, delta, PrivacyLedger(), rng,
                             max_iter=max_iter)
        return float(output(tuning))
    return release


def _upper(errors, trials, alpha):
    """Vectorised two-sided Clopper-Pearson upper bounds (as the engine's scalar one)."""
    errors = np.asarray(errors, dtype=float)
    safe = np.minimum(errors, trials - 1)
    return np.where(errors >= trials, 1.0, beta.ppf(1 - alpha / 2, safe + 1, trials - safe))


def _epsilon_lbs(tp, fp, n_in, n_out, delta, alpha):
    """:func:`epsilon_lower_bound` of every threshold at once (calibration only)."""
    fpr, fnr = _upper(fp, n_out, alpha), _upper(n_in - tp, n_in, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((1 - fnr - delta > 0) & (fpr > 0), np.log((1 - fnr - delta) / fpr), 0.0)
        b = np.where((1 - fpr - delta > 0) & (fnr > 0), np.log((1 - fpr - delta) / fnr), 0.0)
    return np.maximum(0.0, np.maximum(a, b))


def choose_threshold(without, with_canary, delta=0.0, alpha=0.05):
    """The threshold and side that prove the largest epsilon on these runs."""
    out, inn = np.sort(without), np.sort(with_canary)
    ts = np.unique(np.concatenate([out, inn]))
    best = (-1.0, 0.0, True)
    for above in (True, False):
        if above:  # guess "in" when output > t
            tp = inn.size - np.searchsorted(inn, ts, "right")
            fp = out.size - np.searchsorted(out, ts, "right")
        else:  # guess "in" when output < t
            tp, fp = np.searchsorted(inn, ts, "left"), np.searchsorted(out, ts, "left")
        lbs = _epsilon_lbs(tp, fp, inn.size, out.size, delta, alpha)
        i = int(np.argmax(lbs))
        if lbs[i] > best[0]:
            best = (float(lbs[i]), float(ts[i]), above)
    return best[1], best[2]


def audit(release: Callable, without, with_canary, *, n_runs: int = 1000, delta: float = 0.0,
          alpha: float = 0.05, seed: int = 0) -> AuditResult:
    """Audit ``release`` with a threshold test on its output.

    Parameters
    ----------
    release : callable
        ``release(data, rng) -> float``; all randomness from ``rng``.
    without, with_canary : object
        The two neighbouring datasets, passed to ``release`` as they are (e.g. ``(X, y)``
        and :func:`with_row` of it).
    n_runs : int, default=1000
        Runs on each dataset (half calibrate the threshold, half evaluate it).
    delta : float, default=0.0
        The mechanism's delta (it lowers the bound).
    alpha : float, default=0.05
        One minus the confidence of the bound.
    seed : int, default=0
        Root of the runs' independent seeds (:class:`numpy.random.SeedSequence` children).

    Returns
    -------
    AuditResult
    """
    if n_runs < 4:
        raise ValueError(f"n_runs must be at least 4, got {n_runs}")
    seeds = np.random.SeedSequence(seed).spawn(2 * n_runs)
    outputs = np.array([release(data, np.random.default_rng(s))
                        for data, s in zip([without] * n_runs + [with_canary] * n_runs,
                                           seeds)], dtype=float)
    if not np.all(np.isfinite(outputs)):
        raise ValueError("release returned a non-finite output")
    out, inn = outputs[:n_runs], outputs[n_runs:]
    half = n_runs // 2
    threshold, above = choose_threshold(out[:half], inn[:half], delta, alpha)
    guess_out = out[half:] > threshold if above else out[half:] < threshold
    guess_in = inn[half:] > threshold if above else inn[half:] < threshold
    tp, fp = int(guess_in.sum()), int(guess_out.sum())
    fn, tn = guess_in.size - tp, guess_out.size - fp
    lb = epsilon_lower_bound(tp, fn, fp, tn, delta=delta, alpha=alpha)
    return AuditResult(lb, tp, fn, fp, tn, threshold, above, out, inn)
