"""``HDMLogisticRegression``: the logistic adapter's folds, refitted by HDM."""

from __future__ import annotations

from .._logistic import HDMLogisticRegression
from ._logistic import LogisticAdapter


class HDMLogisticAdapter(LogisticAdapter):
    """``HDMLogisticRegression(C)``: ``theta = -log(C)``, as ``LogisticRegression(C)``.

    Its objective is ``LogisticRegression``'s L2 one (the mean weighted log-loss plus
    ``||coef||^2 / (2 C S)``), so the fold problems, criterion and solvers are the
    logistic adapter's: the engine tunes ``C`` on the exact fold minimisers (L-BFGS and
    implicit differentiation), and scikit-learn scores each evaluated ``C`` and refits the
    best with ``HDMLogisticRegression``'s own ``fit`` (HDM, to its ``tol``).
    """

    estimator_class = HDMLogisticRegression

    def check(self, estimator):
        if estimator.get_params()["class_weight"] is not None:
            raise ValueError("HypergradientSearchCV does not yet tune HDMLogisticRegression "
                             "with class_weight; pass class_weight=None")
