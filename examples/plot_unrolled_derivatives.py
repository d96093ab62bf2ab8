"""
Unrolled derivatives converge at the rate of the iterates
=========================================================

Forward-mode differentiation of a proximal solver propagates the derivative iterate
``J_k = dw_k / dtheta`` alongside the iterate ``w_k``. Mehmood and Ochs (ICML 2025) show
that ``J_k`` converges to the derivative ``Dpsi = dw*/dtheta`` of the solution map at the
rate at which ``w_k`` converges to ``w*``, even when the step sizes never settle. This
example checks it on a Lasso whose solution and derivative are known to machine precision,
for four solvers: proximal gradient (ISTA) with the constant step ``1 / L``, with the
oscillating step ``(1 + 0.9 sin k) / L``, with backtracking, and FISTA. It then compares the
hypergradients of forward mode, reverse mode and implicit differentiation when the inner
solver is stopped early.

See the :ref:`User Guide <unrolled_guide>` for the method.
"""

# %%
# A Lasso with a known solution
# -----------------------------
# 100 samples, 40 Gaussian features, 5 of them informative. The objective is
# scikit-learn's ``Lasso``, ``1/(2n) ||y - X w - b||^2 + alpha ||w||_1``, with
# ``theta = log(alpha)``. At ``alpha = 0.5`` the solution keeps exactly the 5 informative
# features, with a comfortable margin: every inactive feature's correlation with the
# residual stays well below ``alpha``, so the support does not change near ``alpha``.
#
# On the support ``S`` the optimality condition ``H_SS w_S - c_S + alpha sign(w*_S) = 0``
# (``H = X^T X / n`` and ``c = X^T y / n`` on centred data) is smooth in ``alpha``. It gives
# ``w*`` to machine precision from the signs of an accurate FISTA solution, and the
# reference derivative ``Dpsi_S = -alpha H_SS^{-1} sign(w*_S)``, 0 off the support.
import matplotlib.pyplot as plt
import numpy as np
import torch

from skbilevel.engine.hypergrad import ForwardMode, ImplicitSupport, ReverseMode
from skbilevel.engine.inner import L1, ProximalProblem
from skbilevel.engine.outer import HeldOutMSE
from skbilevel.engine.solvers import FISTA, ProximalGradient

torch.set_num_threads(1)
F64 = torch.float64
rng = np.random.default_rng(0)
n, n_val, d = 100, 60, 40
X_all = rng.standard_normal((n + n_val, d))
coef = np.zeros(d)
coef[:5] = rng.uniform(1, 3, 5) * rng.choice([-1, 1], 5)
y_all = X_all @ coef + rng.standard_normal(n + n_val)
X, y = torch.as_tensor(X_all[:n]), torch.as_tensor(y_all[:n])
X_val, y_val = torch.as_tensor(X_all[n:]), torch.as_tensor(y_all[n:])

problem = ProximalProblem.least_squares(X, y, L1())
alpha = 0.5
theta = torch.tensor([np.log(alpha)], dtype=F64)

w_fista = FISTA(tol=1e-13, max_iter=100000).solve(problem, theta).w[:, 0].numpy()
S, sign = w_fista != 0, np.sign(w_fista)
H = problem.smooth_hvp(None, None, torch.eye(d, dtype=F64)).numpy()
c = problem.datafit.xty.numpy()[:, 0]
w_star = np.zeros(d)
w_star[S] = np.linalg.solve(H[np.ix_(S, S)], c[S] - alpha * sign[S])
d_psi = np.zeros(d)
d_psi[S] = -alpha * np.linalg.solve(H[np.ix_(S, S)], sign[S])
margin = 1 - np.abs(c - H @ w_star)[~S].max() / alpha
print(f"support {np.flatnonzero(S)}, same signs as FISTA: "
      f"{np.array_equal(np.sign(w_star), sign)}, complementarity margin {margin:.2f}")

# %%
# Forward-mode derivative iterates of four solvers
# ------------------------------------------------
# Each solver runs 200 iterations from ``w_0 = 0``, ``J_0 = 0`` with ``record=True``, which
# keeps ``w_k`` and ``J_k``. The step sizes, the backtracking decisions and FISTA's momentum
# coefficients are treated as constants in ``theta``. The log-slopes are fitted after the
# support has been identified (and kept) and before the errors reach rounding level, as in
# the test suite.
solvers = {
    "ISTA, step 1/L": ProximalGradient(tol=0.0),
    "ISTA, step (1 + 0.9 sin k)/L": ProximalGradient(tol=0.0,
                                                     step=lambda k: 1 + 0.9 * np.sin(k)),
    "ISTA, backtracking": ProximalGradient(tol=0.0, step="backtracking"),
    "FISTA": FISTA(tol=0.0),
}
n_iter = 200
errors = {}
for name, solver in solvers.items():
    J0 = torch.zeros(d, 1, dtype=F64)
    history = solver.run(problem, theta, None, J0, n_iter=n_iter, record=True)[0].history
    w_k = np.array([r["w"].numpy()[:, 0] for r in history])
    J_k = np.array([r["J"].numpy()[:, 0] for r in history])
    err_w = np.linalg.norm(w_k - w_star, axis=1)
    err_J = np.linalg.norm(J_k - d_psi, axis=1)
    same_support = np.all((w_k != 0) == S, axis=1)
    # index of the first w_k of the final run with the support of w* (w_k is history[k-1])
    first = 0 if same_support.all() else n_iter - np.argmin(same_support[::-1])
    window = np.arange(first + 5, n_iter)
    window = window[(err_w[window] > 1e-11 * err_w[0]) & (err_J[window] > 1e-11 * err_J[0])]
    slope_w = np.polyfit(window, np.log(err_w[window]), 1)[0]
    slope_J = np.polyfit(window, np.log(err_J[window]), 1)[0]
    errors[name] = err_w, err_J, first + 1
    print(f"{name:30s} support from k={first + 1:3d}; log-slope of ||w_k - w*||: "
          f"{slope_w:.4f}, of ||J_k - Dpsi||: {slope_J:.4f}")

# %%
# Both errors decay at the same rate for every solver. The oscillating steps and the
# backtracking steps (here the search accepts ``2 / L``, the largest step it tries) change
# the rate of the iterates, and the derivative iterates follow. FISTA without restart is
# slower than ISTA here once the support is found, and not monotone; its derivative
# iterates share the ripples. The dotted line marks the iteration from which ``w_k`` keeps
# the support of ``w*``; the flat ends are rounding error.
fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), sharex=True, sharey=True)
for ax, (name, (err_w, err_J, identified)) in zip(axes.ravel(), errors.items()):
    k = np.arange(1, n_iter + 1)
    ax.semilogy(k, err_w, label=r"$\|w_k - w^*\|$")
    ax.semilogy(k, err_J, "--", label=r"$\|J_k - D\psi\|$")
    ax.axvline(identified, color="gray", lw=0.8, ls=":", label="support identified")
    ax.set_title(name, fontsize=10)
    ax.grid(alpha=0.3)
for ax in axes[1]:
    ax.set_xlabel("iteration k")
axes[0, 0].legend(fontsize=8)
fig.suptitle("Derivative iterates converge at the rate of the iterates")
fig.tight_layout()

# %%
# Hypergradients with an early-stopped inner solver
# -------------------------------------------------
# The outer criterion is the MSE on 60 held-out samples, ``F(w)``; its hypergradient at the
# solution, ``Dpsi^T grad F(w*)``, is the reference. With FISTA stopped after ``K``
# iterations, forward and reverse mode both return the exact derivative of
# ``theta -> F(w_K(theta))``, the algorithm actually run (compare the central finite
# differences of that map), and converge to the reference at the rate of the iterates.
# Implicit differentiation solves the optimality system on the support of ``w_K`` as if
# ``w_K`` were the solution: it is exact only at convergence. Here all three errors are of
# the same order once the support is found; they differ in what they differentiate and in
# cost (see the User Guide).
criterion = HeldOutMSE.for_problem(problem, X_val, y_val[:, None])
grad_F = criterion.grad_w(torch.as_tensor(w_star)[:, None])[:, 0].numpy()
reference = float(d_psi @ grad_F)
print(f"reference hypergradient dF/dlog(alpha) = {reference:.10f}")
print("errors of the hypergradients against the reference:")
h = 1e-6
for K in [10, 30, 100, 300]:
    solver = FISTA(tol=0.0, max_iter=K)
    grads = {
        "forward": ForwardMode(max_iter=K).compute(problem, criterion, theta, solver=solver),
        "reverse": ReverseMode().compute(problem, criterion, theta, solver=solver),
        "implicit": ImplicitSupport().compute(problem, criterion, theta, solver=solver),
    }
    F_up, F_down = (float(criterion.value(solver.run(problem, theta + s * h)[0].w))
                    for s in (1, -1))
    finite_diff = (F_up - F_down) / (2 * h)
    print(f"K={K:3d}  " + "  ".join(f"{m}: {float(r.grad[0]) - reference:+.2e}"
                                    for m, r in grads.items())
          + f"  finite differences of F(w_K): {finite_diff - reference:+.2e}")
plt.show()
