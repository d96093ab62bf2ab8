"""``LogisticRegression``'s fold problems and held-out log-loss, for every tuner of ``C``.

``BilevelLogisticRegressionCV`` and the search adapters of ``LogisticRegression`` and
``HDMLogisticRegression`` build their folds with these functions (one definition of the
model), and solve them with the solvers and tolerances of :mod:`._proximal_parts`.
"""

from __future__ import annotations

import torch

from .engine.inner import ProximalProblem, Shifted
from .engine.outer import HeldOutLogLoss


def logistic_problem(X, codes, n_classes, sample_weight, penalty, fit_intercept):
    """``LogisticRegression``'s objective on one training set, at ``theta = -log C``.

    Sigmoid for two classes (``codes`` in {0, 1}, the second class positive), softmax over
    ``n_classes`` otherwise, the intercept unpenalised. ``C`` multiplies the *sum* of the
    weighted losses: the mean loss is penalised with strength ``1 / (C S)``, ``S`` the
    training weight, which ``Shifted(penalty, -log S)`` applies to ``penalty``'s
    ``exp(theta)`` (tensors in).
    """
    shifted = Shifted(penalty, -float(torch.log(sample_weight.sum())))
    if n_classes == 2:
        return ProximalProblem.logistic(X, codes.to(X.dtype), shifted, sample_weight,
                                        fit_intercept)
    return ProximalProblem.multinomial(X, codes, n_classes, shifted, sample_weight,
                                       fit_intercept)


def logistic_criterion(problem, X, codes, sample_weight=None):
    """The weighted mean log-loss of ``problem``'s solutions on held-out ``(X, codes)``:
    ``log_loss(y, predict_proba(X), labels=classes)`` of the fold's model."""
    binary = problem.datafit.n_columns == 1
    return HeldOutLogLoss.for_problem(problem, X, codes.to(X.dtype) if binary else codes,
                                      sample_weight)
