"""The torch-only hypergradient engine (never imports scikit-learn).

Layers, bottom-up; a module imports only from its own layer or the layers below it (checked by
``tests/engine/test_layers.py``):

1. :mod:`.linalg` (linear solvers, recycle spaces, spectral estimates), :mod:`.hdm` (the HDM
   update rules), the result records and small torch helpers;
2. :mod:`.inner` problems;
3. :mod:`.solvers` of the inner problems;
4. :mod:`.hypergrad` methods;
5. :mod:`.outer` criteria and optimizers;
6. :mod:`.loop`, the outer loop in parts: a fold evaluator (with a gradient-transform hook
   and values that can be withheld), screening, stopping rules, drivers (a black-box outer
   optimizer, or ``init / step / terminate`` for fixed-step and single-loop methods) and
   selection, run by :class:`~skbilevel.engine.loop.OuterLoop`; :func:`minimize_hyperparams`
   is the composition the ``Bilevel*CV`` estimators use.

Each solver, hypergradient method and driver declares what it needs (``requires``,
``optional``), checked once with an error naming what is missing (:func:`check`,
:func:`provides`); registries (``solvers.SOLVERS``, ``hypergrad.METHODS``,
``linalg.LINEAR_SOLVERS``, ``outer.OPTIMIZERS``, ``loop.DRIVERS``) name them, so a new part is
one class and one registry line (user guide: "The engine").

Code outside the engine imports only the names listed in ``__all__`` of this package and of
its subpackages.
"""

from .loop import Fold, minimize_hyperparams
from ._capabilities import check, provides, require
from ._results import HypergradResult, InnerSolution, OuterResult, WarmStart
from ._torch import limit_torch_threads, quiet_sparse_beta

__all__ = ["Fold", "minimize_hyperparams", "HypergradResult", "InnerSolution", "OuterResult",
           "WarmStart", "check", "limit_torch_threads", "provides", "quiet_sparse_beta",
           "require"]
