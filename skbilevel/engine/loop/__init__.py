"""The outer loop, made of parts with one job each.

* :class:`FoldEvaluator` maps ``theta`` to the fold-averaged criterion and hypergradient,
  with a :class:`GradientTransform` hook (clipping, calibrated noise);
* :class:`GridScreening` evaluates a coarse safety grid before the driver starts;
* stopping rules (:class:`Stall`, :class:`HoldoutPatience`) read each record;
* drivers move ``theta``: :class:`OptimizerDriver` around a black-box outer optimizer,
  :class:`StepwiseDriver` (``init / step / terminate``) for fixed-step and single-loop
  methods, e.g. :class:`FixedStepGradientDescent`;
* selection returns the answer: :class:`BestEvaluated`, :class:`LastIterate`,
  :class:`AverageIterates`;
* :class:`Progress` reports every evaluation as it is made (``verbose`` lines, a callback),
  with a ``describe`` hook that names ``theta`` in the caller's units.

:class:`OuterLoop` runs them; :func:`minimize_hyperparams` is the composition the
``Bilevel*CV`` estimators use, and :func:`broadcast_first_stage` joins a shared-penalty
search and the per-feature search that starts from it. Drivers are named in :data:`DRIVERS`
for :func:`make_driver`.
"""

from ._context import LoopContext
from ._drivers import (DRIVERS, FixedStepGradientDescent, OptimizerDriver, StepwiseDriver,
                       make_driver)
from ._evaluator import Fold, FoldEvaluator
from ._facade import minimize_hyperparams
from ._outer_loop import OuterLoop
from ._progress import Progress, format_theta
from ._screening import GridScreening
from ._selection import AverageIterates, BestEvaluated, LastIterate, Selection
from ._stages import broadcast_first_stage
from ._stopping import HoldoutPatience, Stall, StoppingRule, StopSearch
from ._transforms import ClipGradient, GradientTransform

__all__ = ["DRIVERS", "AverageIterates", "BestEvaluated", "ClipGradient",
           "FixedStepGradientDescent", "Fold", "FoldEvaluator", "GradientTransform",
           "GridScreening", "HoldoutPatience", "LastIterate", "LoopContext", "OptimizerDriver",
           "OuterLoop", "Progress", "Selection", "Stall", "StepwiseDriver", "StopSearch",
           "StoppingRule", "broadcast_first_stage", "format_theta", "make_driver",
           "minimize_hyperparams"]
