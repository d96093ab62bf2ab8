"""Extreme but finite input: fit in a space rescaled by powers of two, then map back.

A linear model's fit on ``(X / s, y / t)`` maps exactly onto the fit on ``(X, y)``: the
coefficients by ``t / s``, the intercept by ``t``, squared errors by ``t ** 2`` and each
penalty by a power of ``s`` and ``t`` (the estimators say which). Powers of two divide
exactly in floating point, so the rescaled data are the user's numbers with another
exponent. Data whose largest entry lies in the safe window ``[2**-m, 2**m]`` (``m`` = 64
in float64, 16 in float32 computations; for the logistic models, features whose unit
lies in ``[2**-16, 2**16]``) are left as they are, bit for bit: inside it squares, sums
and penalties neither overflow nor underflow. Outside it they are brought to a largest
entry in ``[0.5, 1)`` (the logistic models: a unit in ``[0.5, 1)``); when a fitted attribute
cannot be represented back in the user's units (an ``alpha_`` beyond ``1e308``,
coefficients of ``1e-320``), the fit raises a ValueError naming the input and its scale
instead of returning it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.sparsefuncs import mean_variance_axis

# Exponent of the safe window per computation dtype: float64 squares of 2**64 times 1e9
# samples stay far below 1e308, and 2**-64 squared far above the smallest normal; float32
# (range 1e+-38) keeps the same headroom at 2**16.
_SAFE_EXPONENT = {torch.float64: 64, torch.float32: 16}
# The logistic solvers keep absolute constants (curvature and rounding guards) that bite
# long before overflow: the tuned C drifts by 1e-3 at features of 1e15 and the fit is
# null at 1e-8. They rescale when the features' unit leaves [2**-16, 2**16] (see
# feature_unit), which leaves unstandardised data such as breast cancer's untouched.
LOGISTIC_SAFE_EXPONENT = 16
_OBJECTIVE_KEYS = ("objective", "fold_objectives", "holdout_objective", "grad_norm")


def max_abs(A):
    """Largest absolute entry of a dense array or sparse matrix (0.0 when empty)."""
    data = A.data if sp.issparse(A) else np.asarray(A)
    # max and -min: two passes without the full-size temporary of np.abs
    return float(max(np.max(data), -np.min(data))) if data.size else 0.0


def exponent(A):
    """``e`` with ``max|A|`` in ``[2**(e-1), 2**e)``; 0 for an all-zero ``A``."""
    largest = max_abs(A)
    return int(np.frexp(largest)[1]) if largest > 0 else 0


def rescale_exponent(A, dtype):
    """0 if ``max|A|`` lies in the safe window of ``dtype``, else ``exponent(A)``: the
    power of two that ``A`` is divided by (``ldexp(A, -e)``) to fit in ``[0.5, 1)``."""
    e = exponent(A)
    return 0 if abs(e) <= _SAFE_EXPONENT[dtype] else e


def common_exponent(exponents, dtype):
    """One exponent that brings every input of ``exponents`` (name -> ``exponent``) into
    the safe window, or None when their spread is too wide for a single one."""
    safe = _SAFE_EXPONENT[dtype]
    low, high = min(exponents.values()), max(exponents.values())
    if high - low > 2 * safe:
        return None
    if -safe <= low and high <= safe:
        return 0
    return (low + high) // 2


def ldexp(A, e):
    """``A * 2**e``, exactly (no intermediate ``2**e`` to overflow); ``A`` itself for 0."""
    if e == 0:
        return A
    if sp.issparse(A):
        A = A.copy()
        A.data = np.ldexp(A.data, e)
        return A
    return np.ldexp(A, e).astype(np.asarray(A).dtype, copy=False)


def scale_back(values, e, attribute, estimator, inputs, dtype=np.float64):
    """``values * 2**e`` in ``dtype``, or a ValueError when that loses them: a finite
    value that overflows, or a nonzero one that underflows to a subnormal or zero.

    ``inputs`` names the inputs the attribute scales with (``{"X": X}``) for the message.
    """
    values = np.asarray(values, dtype=np.float64)
    if e == 0 and dtype == np.float64:
        return values
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(values, e).astype(dtype)
    tiny = np.finfo(dtype).tiny
    lost = (np.isfinite(values) & ~np.isfinite(out)) | ((values != 0) & (np.abs(out) < tiny))
    if np.any(lost):
        raise ValueError(out_of_range(estimator, inputs, f"its {attribute} would not fit in "
                                                          f"{np.dtype(dtype).name}"))
    return out


def out_of_range(estimator, inputs, why):
    """The message of an input whose scale the estimator cannot represent."""
    scales = " and ".join(f"{name} (largest |{name}| = {max_abs(A):.3g})"
                          for name, A in inputs.items())
    return (f"{estimator} cannot fit {scales} at this scale: {why}. Rescale "
            f"{' and '.join(inputs)}, e.g. with StandardScaler.")


def history_in_user_units(history, theta_shift, value_exponent):
    """The engine's records with ``theta`` shifted back (``theta + theta_shift``) and the
    objectives (and their gradient norms) scaled by ``2**value_exponent``."""
    if np.all(np.asarray(theta_shift) == 0) and value_exponent == 0:
        return history
    out = []
    for record in history:
        record = dict(record, theta=np.asarray(record["theta"]) + theta_shift)
        for key in _OBJECTIVE_KEYS:
            if key in record:
                record[key] = np.ldexp(np.asarray(record[key], dtype=np.float64),
                                       value_exponent)
        out.append(record)
    return out


def feature_unit(X, dtype, centre, safe=LOGISTIC_SAFE_EXPONENT):
    """``(e, log2_unit)``: the rescale exponent of a logistic model's ``X`` and the log2 of
    the unit of its features, ``u`` = the median standard deviation (root mean square
    without ``centre``) of the nonzero columns (1 when there are none).

    A logistic fit is best conditioned with features of about unit size, so ``X`` is
    divided by ``2**e`` with ``2**(e-1) <= u < 2**e`` when ``u`` leaves ``[2**-safe,
    2**safe]``, by the power of two of its largest entry when only that one leaves the
    window of ``dtype``, and not at all otherwise. The median is that of most features:
    a few in other units (1e6 times larger) do not move it.
    """
    top = exponent(X)
    if sp.issparse(X):
        Z = ldexp(X, -top)  # the spreads of X in [0.5, 1) cannot overflow
        mean, variance = mean_variance_axis(sp.csr_matrix(Z, dtype=np.float64), axis=0)
        spread, shift = np.sqrt(variance if centre else variance + mean ** 2), top
    else:
        # Squares of entries within 2**+-400 neither overflow nor underflow in float64
        # (n < 2**200 rows): only beyond that is X copied into [0.5, 1) first.
        shift = top if abs(top) > 400 else 0
        spread = _column_spread(ldexp(np.asarray(X), -shift), centre)
    spread = spread[spread > 0]
    log2_unit = float(np.log2(np.median(spread))) + shift if spread.size else 0.0
    if abs(log2_unit) > safe:
        return int(np.floor(log2_unit)) + 1, log2_unit
    e = top if abs(top) > _SAFE_EXPONENT[dtype] else 0  # rescale_exponent, top reused
    return e, log2_unit


def _column_spread(X, centre, rows=256):
    """Column standard deviations (root mean squares without ``centre``) of a dense ``X``,
    in float64, two passes over blocks of rows: no temporary of the size of ``X``.

    Blocks of 256 rows (2 MB at 1,000 features) stay in cache and below malloc's mmap
    threshold, so one buffer is reused: blocks of 4,096 rows (33 MB) were each mapped
    afresh, and faulting them in cost 0.9 s of system time at 50,000 x 1,000 (0.11 s
    now)."""
    n = X.shape[0]
    mean = X.sum(axis=0, dtype=np.float64) / n if centre else 0.0
    total = np.zeros(X.shape[1])
    for start in range(0, n, rows):
        block = np.asarray(X[start:start + rows], dtype=np.float64) - mean
        total += np.einsum("ij,ij->j", block, block)
    return np.sqrt(total / n)
