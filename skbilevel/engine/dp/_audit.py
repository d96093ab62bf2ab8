"""Empirical lower bounds on epsilon from a membership test (privacy audits)."""

from __future__ import annotations

import math

from scipy.stats import beta


def clopper_pearson_upper(errors: int, trials: int, alpha: float = 0.05) -> float:
    """Two-sided Clopper-Pearson upper bound on a rate seen ``errors`` times in ``trials``."""
    if errors >= trials:
        return 1.0
    return float(beta.ppf(1 - alpha / 2, errors + 1, trials - errors))


def epsilon_lower_bound(tp: int, fn: int, fp: int, tn: int, delta: float = 0.0,
                        alpha: float = 0.05) -> float:
    """The epsilon a threshold attack proves, at confidence ``1 - alpha``.

    ``tp, fn`` count the attack's guesses on outputs trained with the canary, ``fp, tn``
    on outputs trained without it. With Clopper-Pearson upper bounds ``FPR_ub, FNR_ub``,
    any (epsilon, delta)-DP mechanism satisfies ``1 - FNR - delta <= e^eps FPR`` and its
    mirror, so ``eps >= max(0, ln((1 - FNR_ub - delta) / FPR_ub),
    ln((1 - FPR_ub - delta) / FNR_ub))``.
    """
    fpr = clopper_pearson_upper(fp, fp + tn, alpha)
    fnr = clopper_pearson_upper(fn, fn + tp, alpha)
    bounds = [0.0]
    for num, den in ((1 - fnr - delta, fpr), (1 - fpr - delta, fnr)):
        if num > 0 and den > 0:
            bounds.append(math.log(num / den))
    return max(bounds)
