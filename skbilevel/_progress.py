"""What ``verbose`` prints during a fit, with the hyperparameters in the user's units.

The engine reports each evaluation through :class:`~skbilevel.engine.loop.Progress`; this
module gives it the estimator's names and units (``describe``) and one clock started when
``fit`` begins, and prints the lines around the search: a header before any heavy work,
the screening grid, the per-feature stage and a final line.

With scikit-learn >= 1.9 it also drives the estimator's callbacks (``set_callbacks``,
e.g. ``sklearn.callback.ProgressBar``): the fit is the root task and every evaluation (an
HDM iteration for :class:`HDMLogisticRegression`) one subtask, their number not known in
advance. A subtask is reported once it is done (its begin and end hooks back to back, with
no data: an evaluation fits the folds, not the whole training set), and a callback's
request to stop is not honoured yet, as in scikit-learn's own ``LogisticRegression``.
"""

from __future__ import annotations

import time

import numpy as np

from .engine.loop import Progress


def format_params(params: dict) -> str:
    """``{"alpha": 0.5, "l1_ratio": 0.9}`` -> ``"alpha=0.5, l1_ratio=0.9"``; a vector
    (one value per feature) as its min / median / max."""
    parts = []
    for name, value in params.items():
        value = np.asarray(value, dtype=float).ravel()
        if value.size == 1:
            parts.append(f"{name}={value[0]:.4g}")
        else:
            parts.append(f"{name} min/median/max={value.min():.4g}/{np.median(value):.4g}/"
                         f"{value.max():.4g}")
    return ", ".join(parts)


def format_ranges(points) -> str:
    """The range of each hyperparameter over ``points`` (dicts of user values)."""
    parts = []
    for name in points[0]:
        values = np.concatenate([np.ravel(p[name]) for p in points]).astype(float)
        low, high = values.min(), values.max()
        parts.append(f"{name}={low:.4g}" if low == high else
                     f"{name} in [{low:.4g}, {high:.4g}]")
    return ", ".join(parts)


class FitProgress:
    """The progress lines of one fit.

    Parameters
    ----------
    estimator : estimator
        Its class names the lines and its ``verbose`` sets the level.
    to_user : callable or None
        ``theta (numpy) -> dict`` of the user's hyperparameters (e.g. ``{"C": 0.5}``);
        None for an estimator without an outer loop.
    """

    def __init__(self, estimator, to_user=None):
        self.name = type(estimator).__name__
        self.verbose = int(estimator.verbose)
        self.to_user = to_user
        # The clock starts with fit: the elapsed times include the set-up (folds, moments).
        self.start = time.perf_counter()
        # The fitted theta plus theta_shift is the user's (data rescaled, see _scaling).
        self.theta_shift = 0.0
        describe = None if to_user is None else (lambda theta: format_params(self.user(theta)))
        self.loop = Progress(self.verbose, describe=describe, prefix=f"[{self.name}]",
                             start=self.start)
        self.estimator, self.context, self.data = estimator, None, {}

    def begin(self, X, y, sample_weight=None) -> None:
        """Open the fit's callback task (scikit-learn >= 1.9), on the validated data."""
        if not hasattr(self.estimator, "_init_callback_context"):
            return
        self.data = {"X": X, "y": y, "metadata": None if sample_weight is None else
                     {"sample_weight": sample_weight}}
        self.context = self.estimator._init_callback_context(max_subtasks=None)
        self.context.call_on_fit_task_begin(estimator=self.estimator, **self.data)
        self.loop.callback = lambda k, record: self.task(f"{record['phase']} evaluation")

    def user(self, theta) -> dict:
        """The user's hyperparameters at the fitted ``theta``."""
        return self.to_user(np.asarray(theta, dtype=float) + self.theta_shift)

    def task(self, name) -> None:
        """Report one finished subtask (an evaluation) to the callbacks."""
        if self.context is not None:
            sub = self.context.subcontext(task_name=name)
            sub.call_on_fit_task_begin(estimator=self.estimator)
            sub.call_on_fit_task_end(estimator=self.estimator)

    @property
    def elapsed(self) -> float:
        return self.loop.elapsed

    def say(self, text: str) -> None:
        self.loop.say(text)

    def header(self, X, n_folds, n_hyper, label) -> None:
        """The first line: the data, the folds and the hyperparameters to tune."""
        if self.verbose:
            self.say(f"fit on {X.shape[0]} samples x {X.shape[1]} features: {n_folds} CV "
                     f"folds, {n_hyper} hyperparameter{'s' * (n_hyper > 1)} ({label})")

    def grid(self, thetas, what="screening grid") -> None:
        """The candidates about to be evaluated, in the user's units."""
        if self.verbose:
            points = [self.user(t) for t in thetas]
            self.say(f"{what}: {len(points)} points, {format_ranges(points)}")

    def done(self, params: dict, cv_error=None, score=None, n_iter=None) -> None:
        """The last line: the chosen hyperparameters, their CV error (the tuned criterion)
        and score (``best_score_``), the total time and the iterations; closes the fit's
        callback task (call it once the fitted attributes are set)."""
        if self.context is not None:
            self.context.call_on_fit_task_end(estimator=self.estimator, **self.data,
                                              reconstruction_attributes={})
        if self.verbose:
            cv = "" if cv_error is None else f", cv={cv_error:.6g}"
            best = "" if score is None else f", best_score_={score:.6g}"
            evals = f", {self.loop.count} evaluations" if self.loop.count else ""
            iters = "" if n_iter is None else f", n_iter={n_iter}"
            self.say(f"done in {self.elapsed:.2f}s: {format_params(params)}{cv}{best}{iters}"
                     f"{evals}")
