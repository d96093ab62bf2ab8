"""Accounting by dp-accounting, pinned to published values (issue 14's golden table)."""

import math
import warnings

import dp_accounting
import numpy as np
import pytest
from dp_accounting.dp_event import RepeatAndSelectDpEvent

from skbilevel._private_refit import calibrate_after
from skbilevel.engine.dp import _ledger
from skbilevel.engine.dp import (PrivacyLedger, calibrate, epsilon_lower_bound, epsilon_of,
                                 gaussian_event)

DELTA = 1e-5


def poisson_gaussian(sigma, q=0.01, steps=1000):
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)


@pytest.mark.parametrize("accountant, expected", [("rdp", 96.1163), ("pld", 91.8173)])
def test_gaussian_composed_100_times(accountant, expected):
    assert epsilon_of(gaussian_event(1.0, 100), DELTA, accountant) == \
        pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("accountant, expected", [("rdp", 2.1014), ("pld", 1.8282)])
def test_poisson_subsampled_gaussian(accountant, expected):
    assert epsilon_of(poisson_gaussian(1.0), DELTA, accountant) == \
        pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("accountant, expected", [("rdp", 1.5131), ("pld", 1.4156)])
def test_calibrated_sigma_for_epsilon_one(accountant, expected):
    sigma = calibrate(poisson_gaussian, 1.0, DELTA, accountant=accountant, lower=0.5)
    assert sigma == pytest.approx(expected, abs=2e-3)
    assert epsilon_of(poisson_gaussian(sigma), DELTA, accountant) <= 1.0 + 1e-9


def test_single_gaussian_sigma():
    assert dp_accounting.get_sigma_gaussian(1, 1e-5) == pytest.approx(3.7306, abs=1e-4)


def test_ledger_composes_what_it_spent_in_order():
    ledger = PrivacyLedger()
    ledger.spend("tuning", gaussian_event(2.0, 50), mechanism="gaussian",
                 noise_multiplier=2.0, releases=50, sensitivity=0.1)
    ledger.spend("refit", gaussian_event(3.0), mechanism="gaussian", noise_multiplier=3.0)
    report = ledger.report(DELTA)
    # The total is the accountant's epsilon of the composed event, recomputable from it.
    assert report["epsilon"] == pytest.approx(epsilon_of(report["dp_event"], DELTA))
    assert report["epsilon"] < sum(p["epsilon_alone"] for p in report["phases"])
    assert report["epsilon"] > max(p["epsilon_alone"] for p in report["phases"])
    assert [p["phase"] for p in report["phases"]] == ["tuning", "refit"]


def test_repeat_and_select_needs_rdp():
    event = RepeatAndSelectDpEvent(gaussian_event(2.0), 10.0, 1.0)  # geometric repetitions
    assert epsilon_of(event, DELTA) > epsilon_of(gaussian_event(2.0), DELTA)
    with pytest.raises(ValueError, match="rdp"):
        PrivacyLedger("pld").spend("search", event, mechanism="repeat and select")


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("seed", range(3))
def test_calibration_meets_random_budgets(seed, accountant):
    rng = np.random.default_rng(seed)
    eps, delta, steps = rng.uniform(0.2, 8), 10 ** rng.uniform(-9, -4), int(rng.integers(1, 300))
    sigma = calibrate(lambda s: gaussian_event(s, steps), eps, delta, accountant=accountant)
    assert epsilon_of(gaussian_event(sigma, steps), delta, accountant) <= eps + 1e-9
    # and is tight
    assert epsilon_of(gaussian_event(0.98 * sigma, steps), delta, accountant) > eps


def test_audit_lower_bound_pinned():
    assert epsilon_lower_bound(900, 100, 100, 900, delta=0.0) == pytest.approx(1.9897,
                                                                                abs=1e-4)
    assert epsilon_lower_bound(50, 50, 50, 50) == 0.0
    assert math.isfinite(epsilon_lower_bound(1000, 0, 0, 1000))


def test_report_groups_consecutive_releases_of_a_phase_and_its_shares_add_up():
    ledger = PrivacyLedger("pld")
    for sens in (1.0, 3.0, 2.0):  # one phase, three steps (each its own sensitivity)
        ledger.spend("tuning", gaussian_event(4.0, 6), mechanism="gaussian",
                     noise_multiplier=4.0, releases=6, sensitivity=sens)
    ledger.spend("refit", gaussian_event(2.0), mechanism="gaussian", noise_multiplier=2.0)
    ledger.spend("tuning", gaussian_event(4.0), mechanism="gaussian", noise_multiplier=4.0)
    report = ledger.report(DELTA)
    assert [(p["phase"], p["releases"], p["sensitivity"]) for p in report["phases"]] == [
        ("tuning", 18, 3.0), ("refit", 1, None), ("tuning", 1, None)]
    # The event is the composition as recorded (five events), not regrouped.
    assert len(report["dp_event"].events) == 5
    assert report["epsilon"] == pytest.approx(epsilon_of(report["dp_event"], DELTA, "pld"))
    first = dp_accounting.ComposedDpEvent([gaussian_event(4.0, 6)] * 3)
    assert report["phases"][0]["epsilon_alone"] == pytest.approx(
        epsilon_of(first, DELTA, "pld"))
    shares = [p["epsilon_share"] for p in report["phases"]]
    assert sum(shares) == pytest.approx(report["epsilon"], rel=1e-9)
    assert shares[0] == pytest.approx(report["phases"][0]["epsilon_alone"])
    assert sum(p["epsilon_alone"] for p in report["phases"]) > report["epsilon"]


@pytest.fixture
def fresh_memo(monkeypatch):
    """An empty calibration memo of 4 entries, and a counter of dp-accounting's
    bisections (the memo's misses)."""
    memo = _ledger._Memo(4)
    monkeypatch.setattr(_ledger, "_CALIBRATIONS", memo)
    calls = []
    bisect = dp_accounting.calibrate_dp_mechanism

    def counted(*args, **kwargs):
        calls.append(1)
        return bisect(*args, **kwargs)

    monkeypatch.setattr(dp_accounting, "calibrate_dp_mechanism", counted)
    return memo, calls


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_calibrate_memo_is_the_uncached_answer_and_bisects_once(fresh_memo, accountant):
    memo, calls = fresh_memo
    family = lambda s: gaussian_event(s, 20)  # noqa: E731
    first = calibrate(family, 1.5, 1e-6, accountant=accountant)
    misses = len(calls)
    assert misses >= 1
    again = calibrate(lambda s: gaussian_event(s, 20), 1.5, 1e-6, accountant=accountant)
    assert again == first and len(calls) == misses  # a new lambda, the same family: a hit
    uncached = _ledger._calibrate(family, 1.5, 1e-6, accountant=accountant, lower=1e-3,
                                  upper=1e6)
    assert uncached == first  # bit for bit
    # The budget and the search interval are part of the key.
    assert calibrate(family, 1.6, 1e-6, accountant=accountant) < first
    assert calibrate(family, 1.5, 1e-6, accountant=accountant, lower=1e3) == 1e3


def test_calibrate_memo_tells_event_families_apart(fresh_memo):
    """Same budget, different families, including two that agree at the scale 1 (a key
    on ``make_event(1.0)`` alone would hand the second the first one's answer)."""
    memo, _ = fresh_memo
    families = {"G(s)": lambda s: gaussian_event(s),
                "G(s^2)": lambda s: gaussian_event(s ** 2),
                "G(s) x 4": lambda s: gaussian_event(s, 4),
                "refit after G(10)": lambda s: dp_accounting.ComposedDpEvent(
                    [gaussian_event(10.0), gaussian_event(s)])}
    cached = {name: calibrate(f, 1.0, 1e-5, lower=1e-8) for name, f in families.items()}
    assert len(memo) == 4
    for name, f in families.items():
        assert cached[name] == _ledger._calibrate(f, 1.0, 1e-5, accountant="rdp",
                                                  lower=1e-8, upper=1e6), name
    assert cached["G(s^2)"] == pytest.approx(math.sqrt(cached["G(s)"]), rel=1e-6)
    assert cached["G(s) x 4"] == pytest.approx(2 * cached["G(s)"], rel=1e-6)  # RDP
    assert cached["refit after G(10)"] > cached["G(s)"]
    calibrate(lambda s: gaussian_event(s, 7), 1.0, 1e-5)  # bounded: the oldest goes
    assert len(memo) == 4


def test_calibrate_after_depends_on_what_was_spent(fresh_memo):
    small, large = PrivacyLedger(), PrivacyLedger()
    small.spend("tuning", gaussian_event(10.0), mechanism="gaussian")
    large.spend("tuning", gaussian_event(4.0), mechanism="gaussian")
    a, b = calibrate_after(small, 2.0, 1e-5), calibrate_after(large, 2.0, 1e-5)
    assert a < b  # more spent, more noise left to add
    for ledger, multiplier in ((small, a), (large, b)):
        ledger.spend("refit", gaussian_event(multiplier), mechanism="gaussian")
        assert ledger.epsilon(1e-5) <= 2.0 + 1e-9
        assert ledger.epsilon(1e-5) >= 1.98


@pytest.mark.parametrize("kind, steps, q, rdp, prv", [("gaussian", 100, 1.0, 96.1163, 91.8295),
                                                      ("poisson", 1000, 0.01, 2.1014, 1.8384)])
def test_opacus_accountants_agree_with_the_ledgers_events(kind, steps, q, rdp, prv):
    """A second, independent accountant (opacus, optional): its RDP accountant finds the
    ledger's epsilon for the same events, and its PRV accountant the published values
    (close to dp-accounting's PLD, 91.8173 / 1.8282)."""
    accountants = pytest.importorskip("opacus.accountants")
    event = gaussian_event(1.0, steps) if kind == "gaussian" else \
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.0)), steps)
    ours = epsilon_of(event, 1e-5)
    theirs = accountants.RDPAccountant()
    theirs.history = [(1.0, q, steps)]
    assert theirs.get_epsilon(1e-5) == pytest.approx(ours, rel=1e-4)
    assert ours == pytest.approx(rdp, abs=1e-4)
    with warnings.catch_warnings():  # opacus' PRV takes log(0) at q = 1, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        prv_accountant = accountants.PRVAccountant()
        prv_accountant.history = [(1.0, q, steps)]
        assert prv_accountant.get_epsilon(1e-5) == pytest.approx(prv, abs=1e-3)
