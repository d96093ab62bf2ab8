"""Progress of the outer loop: every evaluation reported as soon as it is recorded."""

from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np


def format_theta(theta) -> str:
    """``theta`` for a progress line: its entries up to three, else min / median / max.

    The engine only knows the unconstrained ``theta``; what a user reads (named
    hyperparameters in their own units) is the caller's ``describe``.
    """
    theta = np.asarray(theta, dtype=float).ravel()
    if theta.size == 1:
        return f"theta={theta[0]:.4g}"
    if theta.size <= 3:
        return "theta=[" + ", ".join(f"{t:.4g}" for t in theta) + "]"
    return (f"theta min/median/max={theta.min():.4g}/{np.median(theta):.4g}/"
            f"{theta.max():.4g} (n={theta.size})")


class Progress:
    """Reports each evaluation of the outer loop: a line on stdout, a callback, or both.

    One instance may serve several loops in a row (the stages of one fit): it numbers
    the evaluations and measures the elapsed time across them.

    Parameters
    ----------
    verbose : int, default=0
        0 prints nothing; 1 one line per evaluation, the screening grid's included: its
        number, phase, seconds since ``start``, criterion (and the holdout's) and
        ``describe(theta)``; 2 adds the hypergradient norm and the inner and Krylov
        iteration counts.
    describe : callable or None, default=None
        ``theta (numpy) -> str``, e.g. ``"C=0.5"``: the hyperparameters in the caller's
        units. None: :func:`format_theta`.
    prefix : str, default="[skbilevel]"
        Start of every line.
    start : float or None, default=None
        ``time.perf_counter()`` the elapsed times count from (e.g. the start of a fit,
        before any set-up); None: when the instance is made.
    callback : callable or None, default=None
        ``callback(k, record)`` after each evaluation (``k`` counts from 1), after its
        line; e.g. to forward progress to a GUI or to scikit-learn's callbacks.
    """

    def __init__(self, verbose: int = 0, *, describe: Optional[Callable] = None,
                 prefix: str = "[skbilevel]", start: Optional[float] = None,
                 callback: Optional[Callable] = None):
        self.verbose = int(verbose)
        self.describe = format_theta if describe is None else describe
        self.prefix, self.callback = prefix, callback
        self.start = time.perf_counter() if start is None else start
        self.count = 0

    @property
    def elapsed(self) -> float:
        """Seconds since ``start``."""
        return time.perf_counter() - self.start

    def say(self, text: str) -> None:
        """Print ``text`` after the prefix when ``verbose`` (flushed: it shows as it goes)."""
        if self.verbose:
            print(f"{self.prefix} {text}", flush=True)

    def report(self, record: dict) -> None:
        """Report one record of the loop's history."""
        self.count += 1
        if self.verbose:
            self.say(self.line(self.count, record))
        if self.callback is not None:
            self.callback(self.count, record)

    def line(self, k: int, rec: dict) -> str:
        """The text of the ``k``-th evaluation's line."""
        holdout = f"  holdout={rec['holdout_objective']:.6g}" \
            if "holdout_objective" in rec else ""
        text = (f"eval {k:3d} {rec['phase']:>8}  t={self.elapsed:.2f}s  "
                f"cv={rec['objective']:.6g}{holdout}  {self.describe(rec['theta'])}")
        if self.verbose > 1:
            text += (f"  |grad|={rec['grad_norm']:.2e}  inner={rec['n_inner_iter']} "
                     f"krylov={rec['n_linsys_iter']}")
        return text
