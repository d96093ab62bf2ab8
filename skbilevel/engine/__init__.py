"""The torch-only hypergradient engine (never imports scikit-learn).

Layers: :mod:`.inner` problems, :mod:`.solvers`, :mod:`.hypergrad` methods, :mod:`.linalg`
linear solvers and :mod:`.outer` criteria and optimizers, tied together by
:func:`minimize_hyperparams`.
"""

from .loop import Fold, minimize_hyperparams
from ._results import HypergradResult, InnerSolution, OuterResult, WarmStart

__all__ = ["Fold", "minimize_hyperparams", "HypergradResult", "InnerSolution", "OuterResult",
           "WarmStart"]
