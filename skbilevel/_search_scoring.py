"""Which points of a tuning path scikit-learn scores for ``HypergradientSearchCV``, and
when."""

from __future__ import annotations

import numpy as np


class PathScoring:
    """Send one ``param_grid`` combination's path to scikit-learn's ``evaluate_candidates``.

    The path's points come through :meth:`add` in order, as ``(params, objective,
    hypergradient, phase)`` (see ``SearchAdapter.tune``): each as the engine evaluates it
    when the tuning runs in this process, or all of them once a joblib task returns the
    path. :meth:`finish` ends the path.

    Scored by default: the points of the hypergradient search (phase ``"optimize"``), each
    as soon as it is evaluated with ``stream`` (so a good point is scored before the search
    goes on; otherwise together at :meth:`finish`), then the path's best point if it is
    none of them (a screened or polished point). With ``score_screening``: every distinct
    point in the order of first evaluation, at :meth:`finish`, since a screened point may be
    evaluated again later with its hypergradient, which its row reports.

    Parameters
    ----------
    evaluate_candidates : callable
        scikit-learn's, from ``BaseSearchCV.fit``.
    combo : dict
        The combination's ``param_grid`` parameters.
    prefix : str
        The final step's key prefix (``"ridge__"``, or ``""`` for a bare estimator).
    names : list of str
        The tuned parameters, the penalty first (its hypergradient column is
        ``"hypergradient"``, the others' ``"hypergradient_<name>"``).
    score_screening, stream : bool
        See above.
    """

    def __init__(self, evaluate_candidates, combo, prefix, names, *, score_screening,
                 stream):
        self.evaluate_candidates, self.combo = evaluate_candidates, combo
        self.prefix, self.names = prefix, list(names)
        self.score_screening, self.stream = score_screening, stream
        self.path = []
        self.first, self.grads = {}, {}  # by point: position of its first evaluation,
        # and its hypergradients (each the first finite one evaluated)
        self.scored, self.pending = set(), []

    def _key(self, params):
        return tuple(params[name] for name in self.names)

    def _candidate(self, params):
        """The whole estimator's parameters at a point of the path."""
        return {**self.combo, **{self.prefix + k: v for k, v in params.items()}}

    def add(self, point):
        """The next point of the path (scored now with ``stream``, see the class)."""
        params, _, grad, phase = point
        key = self._key(params)
        self.first.setdefault(key, len(self.path))
        merged = self.grads.setdefault(key, dict(grad))
        for name in self.names:
            if np.isnan(merged[name]):
                merged[name] = grad[name]
        self.path.append(point)
        if not self.score_screening and phase == "optimize":
            self._queue(params)
            if self.stream:
                self.flush()

    def finish(self):
        """Queue what is scored once the path is over, and score the queue."""
        if self.score_screening:
            for point in self.path:
                self._queue(point[0])
        elif self.path:
            self._queue(min(self.path, key=lambda p: p[1])[0])
        self.flush()

    def _queue(self, params):
        key = self._key(params)
        if key not in self.scored:
            self.scored.add(key)
            self.pending.append(params)

    def flush(self):
        """Score the queued points (one ``evaluate_candidates`` call)."""
        if not self.pending:
            return
        keys = [self._key(params) for params in self.pending]
        more = {"iter": [self.first[key] for key in keys]}
        for i, name in enumerate(self.names):  # the penalty's column keeps the plain name
            more["hypergradient" if i == 0 else f"hypergradient_{name}"] = \
                [self.grads[key][name] for key in keys]
        candidates = [self._candidate(params) for params in self.pending]
        self.pending = []
        self.evaluate_candidates(candidates, more_results=more)

    def records(self):
        """The path as ``HypergradientSearchCV.path_`` lists it."""
        return [{"params": self._candidate(params),
                 "objective": float(value), "phase": phase,
                 "hypergradient": {k: float(g) for k, g in grad.items()},
                 "scored": self._key(params) in self.scored}
                for params, value, grad, phase in self.path]
