"""Inner solvers, tolerances and hypergradient methods of the proximal CV tunings.

One place for the settings that ``BaseProximalCV`` (``BilevelLassoCV``,
``BilevelElasticNetCV``, ``BilevelLogisticRegressionCV``) and the search adapters of the same
models (``_search_adapters``) share, so that an estimator and its adapter solve and
differentiate their folds identically.
"""

from __future__ import annotations

from ._coordinate_descent import CoordinateDescent
from ._logistic_newton import LogisticNewtonCD
from ._tuning import build_part
from .engine.hypergrad import METHODS, make_hypergradient
from .engine.solvers import SOLVERS, make_inner_solver

# The hypergradient options: "implicit" differentiates the optimality conditions on the
# support of the (sparse) solution.
HYPERGRADIENTS = {"implicit": METHODS["implicit_support"], "forward": METHODS["forward"],
                  "reverse": METHODS["reverse"]}
# The engine's inner solvers plus scikit-learn's coordinate descent, alone (the Lasso) and
# inside proximal Newton steps (binary L1 logistic regression).
INNER_SOLVERS = {**SOLVERS, "cd": CoordinateDescent, "newton-cd": LogisticNewtonCD}
# The estimators offer SOLVER_OPTIONS of the solvers; solver="auto" takes the first of
# AUTO_SOLVERS that can solve the problem under the chosen hypergradient method.
SOLVER_OPTIONS = ("auto", "fista", "ista", "cd", "newton-cd", "lbfgs")
AUTO_SOLVERS = ("cd", "newton-cd", "lbfgs", "fista")
# Why a solver named by the user cannot take the problem (the default: its own class).
UNSUPPORTED = {"cd": "a least-squares problem whose design can be held dense; use 'fista' "
                     "for a large sparse X",
               "newton-cd": "a binary problem with penalty='l1' (use 'fista' for more "
                            "classes)",
               "lbfgs": "a smooth (L2) penalty"}
REFIT_TOL = 1e-3  # the refit is solved this much tighter than the tuning's inner solves
# The safety grid only ranks starting points (values, no gradients), and its best point is
# solved again at inner_tol as the optimizer's first evaluation: 1000 times looser is ample
# to rank CV errors that differ in the fourth digit, and cuts its cost by a factor 2-5.
GRID_TOL = 1e3
# inner_tol="auto": tight fold fits where they are cheap (small designs; the tuned
# hyperparameter then does not move with the rounding of the solver's path), looser where
# each factor of 10 costs passes over a large design.
AUTO_TOL_ENTRIES = 10 ** 6
AUTO_TOL_SMALL, AUTO_TOL_LARGE = 1e-8, 1e-6
# Adjoint systems solved by CG to this relative residual: hypergradients to ~1e-5, ample
# for the outer search to place the minimum; 1e-10 cost a half more CG iterations.
ADJOINT_RTOL = 1e-5
# One penalty: the bracketing search reads the hypergradient's sign and a cubic's slopes,
# which 1e-3 places to the search's tolerance (50,000 x 1,000 logistic: the same C to 6e-5
# relative and CV error to 1e-8, with 11 of 20 CG products).
BRACKET_ADJOINT_RTOL = 1e-3


def auto_inner_tol(n_samples, n_features):
    """``inner_tol="auto"``: the inner tolerance of an ``n_samples x n_features`` design."""
    return AUTO_TOL_SMALL if n_samples * n_features <= AUTO_TOL_ENTRIES else AUTO_TOL_LARGE


def gradient_scale(problem, solver, method):
    """``||grad f(0)||_inf`` of ``problem``, the unit of the inner tolerances of ``solver``
    under the hypergradient ``method`` (keys of ``INNER_SOLVERS`` and ``HYPERGRADIENTS``).

    L-BFGS, and proximal gradient under implicit differentiation (``solve``), measure
    gradients in a diagonally scaled variable (see LBFGS and ProximalGradient.solve), which
    keeps one badly scaled feature from setting every tolerance: the scale is then measured
    per unit of each feature (``problem.unit_scale()``). The unrolled methods differentiate
    ``run()``, which iterates on ``w`` itself.
    """
    grad = problem.smooth_grad(problem.init_params())
    scaled = INNER_SOLVERS[solver].scaled_residual and \
        not HYPERGRADIENTS[method].differentiates_iterations
    scale = problem.unit_scale() if scaled else None
    if scale is not None:
        grad = grad / scale.reshape(grad.shape)
    return float(grad.abs().max()) or 1.0


def make_solver(name, scale, tol, *, max_iter, step="constant"):
    """The inner solver ``name``. ``tol`` is relative to the gradient scale ``scale`` for
    residuals in gradient units; a duality gap's goes as is (scikit-learn's coordinate
    descent makes it relative itself)."""
    if INNER_SOLVERS[name].residual_kind != "duality_gap":
        tol = tol * scale
    return build_part(make_inner_solver, INNER_SOLVERS, name, step=step, max_iter=max_iter,
                      tol=tol)


def make_method(name, n_hyper=None):
    """The hypergradient method ``name`` (a key of ``HYPERGRADIENTS``); its adjoint
    systems solved to ``BRACKET_ADJOINT_RTOL`` for one hyperparameter, ``ADJOINT_RTOL``
    otherwise (or when ``n_hyper`` is not given)."""
    rtol = BRACKET_ADJOINT_RTOL if n_hyper == 1 else ADJOINT_RTOL
    return build_part(make_hypergradient, HYPERGRADIENTS, name, rtol=rtol)


def select_solver(problem, solver, hypergradient):
    """The inner solver's name: ``solver``, checked against ``problem`` and the
    hypergradient method; for ``"auto"`` the first of ``AUTO_SOLVERS`` that can serve
    both. Shared by the estimators and the search adapters."""
    method = HYPERGRADIENTS[hypergradient]
    if solver == "auto":
        for name in AUTO_SOLVERS:
            candidate = INNER_SOLVERS[name]
            if candidate.supports(problem) and \
                    (candidate.unrollable or not method.differentiates_iterations):
                return name
        raise ValueError(f"no inner solver among {AUTO_SOLVERS} can solve this "
                         f"{type(problem).__name__}")
    chosen = INNER_SOLVERS[solver]
    if method.differentiates_iterations and not chosen.unrollable:
        unrollable = " or ".join(repr(name) for name in SOLVER_OPTIONS
                                 if name in INNER_SOLVERS and INNER_SOLVERS[name].unrollable)
        raise ValueError(f"hypergradient={hypergradient!r} differentiates the "
                         f"solver's iterations and needs solver={unrollable}, "
                         f"got solver={solver!r}")
    if not chosen.supports(problem):
        needs = UNSUPPORTED.get(solver, f"a problem {chosen.__name__} supports")
        raise ValueError(f"solver={solver!r} needs {needs}")
    return solver
