"""What a private fit spends: every release that touched the data, as dp-accounting events.

The privacy accounting is the specification of a private method, so it is never written by
hand here: each release is a ``dp_accounting`` :class:`~dp_accounting.DpEvent` (a Gaussian
mechanism, its self-composition, a repeat-and-select), the ledger composes them in the order
they happened into one event, and an accountant of ``dp_accounting`` turns that event into
``epsilon`` at a ``delta``. Anyone holding the event can recompute what was spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import dp_accounting
from dp_accounting import pld, rdp
from dp_accounting.dp_event import RepeatAndSelectDpEvent

ACCOUNTANTS = ("rdp", "pld")


def make_accountant(name: str = "rdp"):
    """A fresh ``dp_accounting`` accountant: ``"rdp"`` (Rényi DP, which alone supports
    :class:`RepeatAndSelectDpEvent`) or ``"pld"`` (privacy loss distributions, tighter for
    Gaussian compositions)."""
    if name == "rdp":
        return rdp.RdpAccountant()
    if name == "pld":
        return pld.PLDAccountant()
    raise ValueError(f"accountant must be one of {ACCOUNTANTS}, got {name!r}")


def epsilon_of(event, delta: float, accountant: str = "rdp") -> float:
    """The ``epsilon`` of ``event`` at ``delta`` by the named accountant."""
    acc = make_accountant(accountant)
    acc.compose(event)
    return float(acc.get_epsilon(delta))


def gaussian_event(noise_multiplier: float, releases: int = 1):
    """``releases`` Gaussian mechanisms of noise multiplier ``sigma / sensitivity``."""
    event = dp_accounting.GaussianDpEvent(float(noise_multiplier))
    return event if releases == 1 else dp_accounting.SelfComposedDpEvent(event, int(releases))


def calibrate(make_event: Callable[[float], object], epsilon: float, delta: float, *,
              accountant: str = "rdp", lower: float = 1e-3, upper: float = 1e6) -> float:
    """The smallest parameter ``s`` in ``[lower, upper]`` (a noise scale: larger is more
    private) with ``epsilon_of(make_event(s), delta) <= epsilon``, by dp-accounting's
    bisection (:func:`dp_accounting.calibrate_dp_mechanism`).

    For ``"pld"`` the search is bracketed near the RDP answer first: RDP's epsilon bounds
    PLD's from above, so its noise level suffices, and PLD is usually within a few percent
    below it. Far from it, at a tiny noise level, a PLD would discretise a privacy loss
    range far wider than memory allows.
    """
    if accountant == "pld":
        upper = calibrate(make_event, epsilon, delta, accountant="rdp", lower=lower,
                          upper=upper)
        if epsilon_of(make_event(upper), delta, "pld") > epsilon:  # never, but be sure
            return upper
        lower = max(lower, upper / 2)
        while lower > 1e-3 and epsilon_of(make_event(lower), delta, "pld") <= epsilon:
            lower /= 2
    elif epsilon_of(make_event(upper), delta, accountant) > epsilon:
        raise ValueError(f"no noise level up to {upper:g} reaches epsilon={epsilon:g} at "
                         f"delta={delta:g}")
    bracket = dp_accounting.ExplicitBracketInterval(lower, upper)
    return float(dp_accounting.calibrate_dp_mechanism(
        lambda: make_accountant(accountant), make_event, epsilon, delta, bracket))


@dataclass(frozen=True)
class Release:
    """One phase of a private fit: what was released and the event that accounts for it.

    ``mechanism`` names it ("gaussian", "output perturbation", "repeat and select", ...);
    ``noise_multiplier`` is ``sigma / sensitivity`` (None where it does not apply);
    ``releases`` counts the mechanisms the event composes; ``sensitivity`` is the L2
    sensitivity the noise was scaled to.
    """

    phase: str
    event: object
    mechanism: str
    noise_multiplier: Optional[float] = None
    releases: int = 1
    sensitivity: Optional[float] = None


class PrivacyLedger:
    """The releases of one private fit, in order, and what they spend together.

    Parameters
    ----------
    accountant : {"rdp", "pld"}, default="rdp"
        The accountant of :meth:`epsilon` and :meth:`report`. A ledger holding a
        repeat-and-select release needs ``"rdp"``.
    """

    def __init__(self, accountant: str = "rdp"):
        make_accountant(accountant)  # validates the name
        self.accountant = accountant
        self.releases: list[Release] = []

    def spend(self, phase: str, event, *, mechanism: str,
              noise_multiplier: Optional[float] = None, releases: int = 1,
              sensitivity: Optional[float] = None) -> None:
        """Record one phase's release (call it when the data are read, not after)."""
        if self.accountant == "pld" and isinstance(event, RepeatAndSelectDpEvent):
            raise ValueError("a repeat-and-select release needs the 'rdp' accountant")
        self.releases.append(Release(phase, event, mechanism, noise_multiplier, releases,
                                     sensitivity))

    @property
    def event(self):
        """Everything recorded, as one :class:`~dp_accounting.ComposedDpEvent`."""
        return dp_accounting.ComposedDpEvent([r.event for r in self.releases])

    def epsilon(self, delta: float) -> float:
        """The ``epsilon`` spent so far at ``delta``."""
        if not self.releases:
            return 0.0
        return epsilon_of(self.event, delta, self.accountant)

    def report(self, delta: float) -> dict:
        """``{"phases": [...], "dp_event", "accountant", "epsilon", "delta"}``: per phase its
        mechanism, noise multiplier, number of releases, sensitivity and the epsilon it
        would spend alone (the total is less than their sum under composition)."""
        phases = [dict(phase=r.phase, mechanism=r.mechanism,
                       noise_multiplier=r.noise_multiplier, releases=r.releases,
                       sensitivity=r.sensitivity,
                       epsilon_alone=epsilon_of(r.event, delta, self.accountant))
                  for r in self.releases]
        return dict(phases=phases, dp_event=self.event, accountant=self.accountant,
                    epsilon=self.epsilon(delta), delta=delta)
