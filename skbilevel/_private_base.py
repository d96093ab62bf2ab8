"""What every private tuning method of :class:`PrivateHyperparamSearch` sees and returns.

The estimator validates the input, enforces the bounds it is given (rows of ``X`` scaled to
``data_norm``, ``y`` clipped to ``y_bound``), builds one :class:`PrivateTask` and hands it to
a :class:`PrivateMethod` with that method's share of the budget. The method reads the data
only through releases it records in the :class:`~skbilevel.engine.dp.PrivacyLedger` it is
given (each one a dp-accounting event), and returns the chosen ``theta`` with a history of
private quantities only. The private refit of ``best_estimator_`` is the estimator's, with
the rest of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np


@dataclass(frozen=True)
class PrivateTask:
    """The clipped data and the hyperparameter to tune.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows of L2 norm at most ``data_norm`` (dense float64).
    y : ndarray of shape (n_samples,)
        Targets in ``[-y_bound, y_bound]`` (``kind="ridge"``) or class codes 0/1
        (``kind="logistic"``).
    kind : {"ridge", "logistic"}
        The model family: squared loss + ``alpha/2 ||w||^2`` (scikit-learn's ``Ridge``:
        ``||y - Xw||^2 + alpha ||w||^2``), or scikit-learn's binary L2 ``LogisticRegression``
        (``C * sum(log-loss) + ||w||^2 / 2``).
    data_norm, y_bound : float
        The bounds above (``y_bound`` None for ``kind="logistic"``).
    fit_intercept : bool
        Whether the model has an unpenalised intercept.
    theta_bounds : (float, float)
        Box of ``theta``, the unconstrained hyperparameter (``log alpha`` or ``log C``).
    to_params : callable
        ``theta (float) -> {"alpha": ...}`` or ``{"C": ...}``, the user's parameter.
    splits : list of (ndarray, ndarray)
        ``(train, validation)`` row indices; the validation blocks are disjoint, so a
        release per block composes in parallel (each row is in one block).
    """

    X: np.ndarray
    y: np.ndarray
    kind: str
    data_norm: float
    y_bound: Optional[float]
    fit_intercept: bool
    theta_bounds: tuple
    to_params: Callable
    splits: list = field(default_factory=list)

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]


@dataclass
class PrivateTuning:
    """A method's answer: ``theta`` and a history of private quantities only (iterates,
    noisy gradients, noisy scores; never an exact validation loss).

    ``refit_moments`` (optional) are noisy total moments the method already released and
    paid for (a :class:`~skbilevel._private_sufficient.NoisyMoments`); a ridge refit reuses
    them at no further cost. A method that always provides them says so by the class
    attribute ``provides_refit_moments = True`` and then gets the whole budget.
    ``refit_gram`` (optional) is a noisy Gram of all the rows of the logistic design
    (:func:`skbilevel._private_erm.intercept_design`) already paid for; the logistic refit
    then releases only its gradients.
    """

    theta: float
    history: dict = field(default_factory=dict)
    n_iter: int = 0
    refit_moments: object = None
    refit_gram: object = None


class PrivateMethod:
    """A private tuning method: one class per method, registered by name.

    ``kinds`` lists the model families it supports. ``tune`` spends at most
    ``(epsilon, delta)`` (by the ledger's accountant, on the events it records) and takes
    all randomness from ``rng`` (a :class:`numpy.random.Generator`). ``progress``, when
    given, is called with keyword arguments only (private quantities, e.g.
    ``progress(step=3, theta=0.5)``) as the method goes.
    """

    name = "base"
    kinds = frozenset()
    # Test hook for audits ONLY, never a public option: scales the noise a method actually
    # adds (0 switches it off) while its ledger still records the calibrated event, so that
    # an audit can show its power. PrivateHyperparamSearch sets it on the method instance
    # from its own ``_noise_factor``; every method must scale all of its noise by it.
    _noise_factor = 1.0

    def tune(self, task: PrivateTask, epsilon: float, delta: float, ledger, rng, *,
             max_iter: int, progress=None) -> PrivateTuning:
        raise NotImplementedError
