"""Helpers shared by the benchmarks: machine description, peak memory, common CV error.

Every competitor of a benchmark is scored by the same functions here, on the same folds, from
the penalties it selected, so that no estimator's own notion of "CV score" enters a table.
"""

from __future__ import annotations

import datetime
import gc
import os
import platform
import threading
import time
import tracemalloc

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

# ---------------------------------------------------------------------------------------
# machine


def machine_info():
    """A dict describing the machine and the library versions."""
    import scipy
    import sklearn
    import torch
    info = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or "(empty)",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        # Fresh numpy memory costs ~15x more where the kernel compacts on a huge-page
        # fault (results/measurements.md): the fits of the package turn the advice off.
        "NUMPY_MADVISE_HUGEPAGE": os.environ.get("NUMPY_MADVISE_HUGEPAGE", "(unset)"),
    }
    try:
        with open("/sys/kernel/mm/transparent_hugepage/defrag") as fh:
            info["thp_defrag"] = fh.read().strip()
    except OSError:
        pass
    try:
        from threadpoolctl import threadpool_info
        info["thread_pools"] = "; ".join(
            f"{p['internal_api']}({p.get('prefix', '')})={p['num_threads']}"
            for p in threadpool_info())
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version
    for mod in ("himalaya", "bbai"):
        try:
            info[mod] = version(mod)
        except PackageNotFoundError:
            info[mod] = "not installed"
    return info


def load_average():
    try:
        return tuple(round(v, 2) for v in os.getloadavg())
    except OSError:
        return None


# ---------------------------------------------------------------------------------------
# CPU time


def _child_pids(pid):
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out += [int(c) for c in fh.read().split()]
    except OSError:
        pass
    return out


def _proc_cpu(pid):
    """utime + stime of ``pid`` in seconds, from /proc (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_seconds():
    """CPU seconds of this process and of its live child processes and their children.

    Children matter for bbai, which computes in a helper process it keeps running. Under
    contention from other processes, CPU time measures the work done where wall time also
    counts the time spent waiting for a CPU.
    """
    total = time.process_time()
    stack = _child_pids(os.getpid())
    while stack:
        pid = stack.pop()
        total += _proc_cpu(pid)
        stack += _child_pids(pid)
    return total


# ---------------------------------------------------------------------------------------
# memory

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:  # not Linux: fall back to the high-water mark (coarser)
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reset_high_water():
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where it cannot
    (not Linux >= 4.0, or /proc not writable)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _high_water_bytes():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


class PeakMemory:
    """Peak resident memory above the starting RSS.

    Covers everything the process allocates (numpy, scipy, torch's CPU allocator, BLAS
    buffers), unlike tracemalloc which sees only Python/numpy allocations. On Linux the
    kernel's own high-water mark is reset on entry and read on exit, so no short-lived peak
    is missed; elsewhere a thread samples the RSS every ``interval`` s. Either way it is a
    lower bound within a long-lived process: memory that glibc kept from earlier fits and
    hands out again does not raise the RSS. (Pinning glibc's mmap threshold would make it
    exact, but then every temporary vector above the threshold is mmapped afresh, which made
    the Krylov solvers ~3x slower.) :func:`run_isolated` measures in a fresh process, where
    that reuse cannot happen. With ``trace=True`` tracemalloc runs as well (slower: it hooks
    every allocation) and its peak is reported in ``traced_peak``.
    """

    def __init__(self, interval=0.005, trace=False):
        self.interval, self.trace = interval, trace
        self.rss_peak = self.traced_peak = None

    def __enter__(self):
        gc.collect()
        self._stop = threading.Event()
        self._base = _rss_bytes()
        self._peak = self._base
        self._kernel = _reset_high_water()

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, _rss_bytes())
                time.sleep(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        if not self._kernel:
            self._thread.start()
        if self.trace:
            tracemalloc.start()
        return self

    def __exit__(self, *exc):
        if self.trace:
            self.traced_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if self._kernel:
            self._peak = _high_water_bytes()
        else:
            self._peak = max(self._peak, _rss_bytes())
            self._stop.set()
            self._thread.join()
        self.rss_peak = self._peak - self._base
        return False


def _measured_call(fn, args, kwargs):
    with PeakMemory() as mem:
        out = fn(*args, **kwargs)
    return out, mem.rss_peak


def run_isolated(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), peak bytes above the RSS before the call)``, run in a fresh
    interpreter (multiprocessing "spawn"): no memory freed by earlier runs can be reused
    unseen, so on Linux the peak is exact. ``fn`` must be importable (module level); the
    arguments and the result travel by pickle."""
    import multiprocessing
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_measured_call, (fn, args, kwargs))


# ---------------------------------------------------------------------------------------
# the common CV error: one ridge per fold with the selected per-feature penalties


class DenseRidgeCV:
    """K-fold CV MSE of ``Ridge`` with per-feature penalties on fixed folds (dense X).

    The centred fold Grams are computed once; each call is then one ``d x d`` Cholesky per
    fold. Same objective as :class:`sklearn.linear_model.Ridge` (intercept unpenalised, data
    centred with the training-fold means) and the same numbers as
    ``skbilevel._demo.ridge_cv_mse``.
    """

    def __init__(self, X, y, splits):
        self.folds = []
        for train, val in splits:
            xm, ym = X[train].mean(0), y[train].mean()
            Xc = X[train] - xm
            self.folds.append((Xc.T @ Xc, Xc.T @ (y[train] - ym), X[val] - xm, y[val] - ym))

    @staticmethod
    def _solve(gram, rhs, alpha):
        # Symmetric diagonal scaling: penalties can span 20 orders of magnitude (ARD, group
        # searches), which would make the unscaled system look ill-conditioned.
        s = 1.0 / np.sqrt(np.diag(gram) + alpha)
        H = s[:, None] * (gram + np.diag(alpha)) * s
        try:
            return s * scipy.linalg.solve(H, s * rhs, assume_a="pos")
        except np.linalg.LinAlgError:
            return s * scipy.linalg.lstsq(H, s * rhs)[0]

    def __call__(self, alpha):
        d = self.folds[0][0].shape[0]
        alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (d,))
        errors = [np.mean((yv - Xv @ self._solve(G, b, alpha)) ** 2)
                  for G, b, Xv, yv in self.folds]
        return float(np.mean(errors))

    @staticmethod
    def refit(X, y, alpha):
        """Coefficients and intercept of the ridge on all of ``(X, y)`` (sanity checks)."""
        xm, ym = X.mean(0), y.mean()
        Xc = X - xm
        alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (X.shape[1],))
        coef = DenseRidgeCV._solve(Xc.T @ Xc, Xc.T @ (y - ym), alpha)
        return coef, ym - xm @ coef


class SparseRidgeCV:
    """The same CV MSE for sparse ``X``, matrix-free: scipy CG on the centred normal equations.

    ``X_c = X - 1 mu^T`` is applied implicitly (never densified); the system
    ``(X_c^T X_c + diag(alpha)) w = X_c^T y_c`` is solved by Jacobi-preconditioned CG to a
    relative residual of ``rtol``.
    """

    def __init__(self, X, y, splits, rtol=1e-10):
        self.rtol = rtol
        self.folds = []
        for train, val in splits:
            Xt = sp.csr_matrix(X[train])
            mu = np.asarray(Xt.mean(0)).ravel()
            ym = y[train].mean()
            XtT = sp.csr_matrix(Xt.T)
            diag = np.asarray(Xt.multiply(Xt).sum(0)).ravel() - len(train) * mu ** 2
            rhs = XtT @ (y[train] - ym)
            self.folds.append((Xt, XtT, mu, diag, rhs, sp.csr_matrix(X[val]), y[val] - ym))

    def _solve(self, fold, alpha):
        Xt, XtT, mu, diag, rhs, _, _ = fold
        n, d = Xt.shape

        def matvec(v):
            u = Xt @ v - mu @ v
            return XtT @ u - mu * u.sum() + alpha * v

        H = spla.LinearOperator((d, d), matvec=matvec, dtype=float)
        M = spla.LinearOperator((d, d), matvec=lambda v: v / (diag + alpha), dtype=float)
        w, info = spla.cg(H, rhs, rtol=self.rtol, atol=0.0, maxiter=20 * d, M=M)
        if info != 0:
            raise RuntimeError(f"reference CG did not converge (info={info})")
        return w

    def __call__(self, alpha):
        d = self.folds[0][0].shape[1]
        alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (d,)).copy()
        errors = []
        for fold in self.folds:
            w = self._solve(fold, alpha)
            _, _, mu, _, _, Xv, yv = fold
            errors.append(np.mean((yv - (Xv @ w - mu @ w)) ** 2))
        return float(np.mean(errors))


# ---------------------------------------------------------------------------------------
# tables


def fmt(value, spec=".4g"):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return str(value)
    return format(value, spec)


def markdown_table(header, rows):
    def cell(c):  # a literal "|" (absolute values in headers) would split the cell
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def sparse_ridge_refit(X, y, alpha, rtol=1e-10):
    """Coefficients and intercept of the ridge on all of sparse ``(X, y)`` (sanity checks)."""
    n = X.shape[0]
    ref = SparseRidgeCV(X, y, [(np.arange(n), np.arange(0))], rtol=rtol)
    d = X.shape[1]
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (d,)).copy()
    coef = ref._solve(ref.folds[0], alpha)
    mu = ref.folds[0][2]
    return coef, float(y.mean() - mu @ coef)
