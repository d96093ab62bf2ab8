"""The penalty method's hypergradient norm against epsilon * n (not run in CI).

Kornowski (arXiv 2409.19800) bounds the hypergradient norm at the output by
``O((sqrt(d_x)/(eps n))^(1/2) + (sqrt(d_y)/(eps n))^(1/3))``; with d_x = 1 the second term
dominates, so ``|F'(theta_out)|`` should fall roughly like ``(eps n)^(-1/3)`` until it
reaches the surrogate's O(1 / penalty) floor. ``F`` is the exact 5-fold validation loss of
ridge (computed here, non-privately, only to measure the output). On a flat stretch of
the validation curve a small ``|F'|`` says little, so the excess CV loss over the grid
optimum is printed too. The output of the method is scale-free in the noise-dominated
regime (AdaGrad-norm steps), hence identical rows while the noise swamps the signal.

    python benchmarks/bench_private_penalty_trend.py [--seeds 3] [--max-iter 30]
"""

import argparse

import numpy as np
from sklearn.model_selection import KFold

from skbilevel._private_base import PrivateTask
from skbilevel._private_penalty import PenaltyMethod
from skbilevel.engine.dp import PrivacyLedger


def ridge_task(n, d=10, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 0.2, d)
    X = rng.standard_normal((n, d)) * scales / np.sqrt((scales ** 2).sum())
    X /= np.maximum(np.linalg.norm(X, axis=1), 1.0)[:, None]
    y = np.clip(X @ (0.1 * rng.standard_normal(d)) + rng.standard_normal(n), -3, 3)
    splits = list(KFold(5, shuffle=True, random_state=seed).split(X))
    return PrivateTask(X, y, "ridge", 1.0, 3.0, False, (np.log(1e-4), np.log(1e4)),
                       lambda t: {"alpha": float(np.exp(t))}, splits)


def cv_loss(task, theta):
    losses = []
    for tr, va in task.splits:
        Xt, yt = task.X[tr], task.y[tr]
        w = np.linalg.solve(Xt.T @ Xt + np.exp(theta) * np.eye(Xt.shape[1]), Xt.T @ yt)
        losses.append(0.5 * np.mean((task.X[va] @ w - task.y[va]) ** 2))
    return float(np.mean(losses))


def hypergradient_norm(task, theta, h=1e-4):
    return abs(cv_loss(task, theta + h) - cv_loss(task, theta - h)) / (2 * h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=30)
    args = parser.parse_args()
    rows = []
    print(f"{'n':>7} {'eps':>7} {'eps*n':>10} {'|F`(theta)|':>12} {'theta':>7} "
          f"{'theta*':>7} {'excess CV loss':>14}")
    for n in (2000, 8000, 32000):
        task = ridge_task(n)
        grid = np.linspace(-4, 9, 131)
        best = grid[np.argmin([cv_loss(task, t) for t in grid])]
        for eps in (1.0, 10.0, 1e2, 1e3, 1e4, 1e5):
            norms, thetas, excess = [], [], []
            for seed in range(args.seeds):
                result = PenaltyMethod().tune(task, eps, 1e-6, PrivacyLedger(),
                                              np.random.default_rng(seed),
                                              max_iter=args.max_iter)
                norms.append(hypergradient_norm(task, result.theta))
                thetas.append(result.theta)
                excess.append(cv_loss(task, result.theta) / cv_loss(task, best) - 1)
            rows.append((eps * n, np.mean(norms)))
            print(f"{n:>7} {eps:>7g} {eps * n:>10.0f} {np.mean(norms):>12.3e} "
                  f"{np.mean(thetas):>7.2f} {best:>7.2f} {np.mean(excess):>14.2e}")
    x, v = np.log([r[0] for r in rows]), np.log([r[1] for r in rows])
    print(f"slope of log|F'| against log(eps n): {np.polyfit(x, v, 1)[0]:.2f} "
          "(paper: -1/3 while the privacy term dominates)")


if __name__ == "__main__":
    main()
