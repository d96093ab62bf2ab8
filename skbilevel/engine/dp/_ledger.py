"""What a private fit spends: every release that touched the data, as dp-accounting events.

The privacy accounting is the specification of a private method, so it is never written by
hand here: each release is a ``dp_accounting`` :class:`~dp_accounting.DpEvent` (a Gaussian
mechanism, its self-composition, a repeat-and-select), the ledger composes them in the order
they happened into one event, and an accountant of ``dp_accounting`` turns that event into
``epsilon`` at a ``delta``. Anyone holding the event can recompute what was spent.
"""

from __future__ import annotations

from collections import OrderedDict
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


class _Memo:
    """A bounded memo of data-free answers, least recently used out first.

    Keys are built from ``repr`` of dp-accounting events: they are attrs classes whose
    repr spells every field exactly (floats round-trip), so equal reprs mean equal events.
    """

    def __init__(self, size: int):
        self.size = size
        self._answers: OrderedDict = OrderedDict()

    def get(self, key, compute: Callable[[], float]) -> float:
        """The answer stored under ``key``, or ``compute()`` stored under it."""
        if key in self._answers:
            self._answers.move_to_end(key)
            return self._answers[key]
        value = compute()  # an error stores nothing
        self._answers[key] = value
        if len(self._answers) > self.size:
            self._answers.popitem(last=False)
        return value

    def __len__(self):
        return len(self._answers)

    def clear(self):
        self._answers.clear()


# A repeat-and-select event costs ~30 ms to account, and a private fit asks for the same
# epsilons several times (its total, its report), as repeated fits do.
_EPSILONS = _Memo(1024)


def epsilon_of(event, delta: float, accountant: str = "rdp") -> float:
    """The ``epsilon`` of ``event`` at ``delta`` by the named accountant (memoised by the
    event's repr, ``delta`` and ``accountant``)."""
    def compute():
        acc = make_accountant(accountant)
        acc.compose(event)
        return float(acc.get_epsilon(delta))

    return _EPSILONS.get((repr(event), float(delta), accountant), compute)


def gaussian_event(noise_multiplier: float, releases: int = 1):
    """``releases`` Gaussian mechanisms of noise multiplier ``sigma / sensitivity``."""
    event = dp_accounting.GaussianDpEvent(float(noise_multiplier))
    return event if releases == 1 else dp_accounting.SelfComposedDpEvent(event, int(releases))


# The one memo of calibrations (a bisection costs 30 ms to 0.3 s, more than a whole fit
# on small data, and GridSearchCV over a search or an audit asks the same question again
# and again). The answer depends on the event family, the budget and the search interval
# only, never on the data.
_CALIBRATIONS = _Memo(256)
# The family ``make_event`` is identified by its events at these scales. Every family
# calibrated in this package has each noise multiplier either fixed or equal to ``a * s``
# (``a`` fixed), and its structure fixed, so two scales pin it down: ``G(s)`` and
# ``G(s ** 2)`` agree at 1 but not at 2.
_REFERENCE_SCALES = (1.0, 2.0)


def calibrate(make_event: Callable[[float], object], epsilon: float, delta: float, *,
              accountant: str = "rdp", lower: float = 1e-3, upper: float = 1e6) -> float:
    """The smallest parameter ``s`` in ``[lower, upper]`` (a noise scale: larger is more
    private) with ``epsilon_of(make_event(s), delta) <= epsilon``, by dp-accounting's
    bisection (:func:`dp_accounting.calibrate_dp_mechanism`).

    For ``"pld"`` the search is bracketed near the RDP answer first: RDP's epsilon bounds
    PLD's from above, so its noise level suffices, and PLD is usually within a few percent
    below it. Far from it, at a tiny noise level, a PLD would discretise a privacy loss
    range far wider than memory allows.

    Memoised (bounded, least recently used out first) by the reprs of
    ``make_event(1.0)`` and ``make_event(2.0)`` (attrs classes: the repr spells every
    field), ``epsilon``, ``delta``, ``accountant``, ``lower`` and ``upper``. This
    assumes the family is determined by its events at those two scales, as it is when
    every noise multiplier in it is fixed or proportional to ``s``.
    """
    key = (tuple(repr(make_event(s)) for s in _REFERENCE_SCALES), float(epsilon),
           float(delta), accountant, float(lower), float(upper))
    return _CALIBRATIONS.get(key, lambda: _calibrate(make_event, epsilon, delta,
                                                     accountant=accountant, lower=lower,
                                                     upper=upper))


def _calibrate(make_event, epsilon, delta, *, accountant, lower, upper) -> float:
    """:func:`calibrate` without the memo."""
    if accountant == "pld":
        floor = lower
        upper = calibrate(make_event, epsilon, delta, accountant="rdp", lower=lower,
                          upper=upper)
        if epsilon_of(make_event(upper), delta, "pld") > epsilon:  # never, but be sure
            return upper
        lower = max(floor, upper / 2)
        # Halve towards the answer, never below the interval asked for.
        while lower > max(floor, 1e-3) and \
                epsilon_of(make_event(lower), delta, "pld") <= epsilon:
            lower = max(lower / 2, floor)
    elif epsilon_of(make_event(upper), delta, accountant) > epsilon:
        raise ValueError(f"no noise level up to {upper:g} reaches epsilon={epsilon:g} at "
                         f"delta={delta:g}")
    if epsilon_of(make_event(lower), delta, accountant) <= epsilon:
        # Even the least noise searched meets the budget (a huge epsilon): the bisection
        # would find no sign change; the smallest parameter in range is the answer.
        return float(lower)
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
        """What was spent, per phase and in total.

        Returns ``{"phases": [...], "dp_event", "accountant", "epsilon", "delta", "note"}``.
        Consecutive releases recorded under the same phase name, mechanism and noise
        multiplier (e.g. one per outer step of an iterative method) are one phase, with:

        * ``phase``, ``mechanism``, ``noise_multiplier``;
        * ``releases``: the number of mechanisms its events compose, summed;
        * ``sensitivity``: the largest L2 sensitivity its noise was scaled to (each release
          adds its multiplier times its own sensitivity);
        * ``epsilon_alone``: the epsilon of the phase's releases alone;
        * ``epsilon_share``: how much the phase added to the epsilon of everything before
          it, in the order of the fit. The shares add up to ``epsilon`` (up to rounding); the
          ``epsilon_alone`` do not (composition is sub-additive: their sum exceeds it).

        Grouping is for reading only: ``dp_event`` is the composition of the events as
        recorded, the very event the noise was calibrated on (PLD's epsilon depends on how
        an event is grouped, RDP's does not).
        """
        groups = []
        for r in self.releases:
            last = groups[-1][-1] if groups else None
            if last is not None and (last.phase, last.mechanism, last.noise_multiplier) == \
                    (r.phase, r.mechanism, r.noise_multiplier):
                groups[-1].append(r)
            else:
                groups.append([r])
        phases, spent, before = [], [], 0.0
        for group in groups:
            events = [r.event for r in group]
            spent.extend(events)
            # The last prefix is the ledger's whole event: the shares add up to epsilon.
            upto = epsilon_of(dp_accounting.ComposedDpEvent(list(spent)), delta,
                              self.accountant)
            alone = events[0] if len(events) == 1 else dp_accounting.ComposedDpEvent(events)
            sensitivities = [r.sensitivity for r in group if r.sensitivity is not None]
            phases.append(dict(
                phase=group[0].phase, mechanism=group[0].mechanism,
                noise_multiplier=group[0].noise_multiplier,
                releases=sum(r.releases for r in group),
                sensitivity=max(sensitivities) if sensitivities else None,
                epsilon_alone=epsilon_of(alone, delta, self.accountant),
                epsilon_share=upto - before))
            before = upto
        return dict(phases=phases, dp_event=self.event, accountant=self.accountant,
                    epsilon=self.epsilon(delta), delta=delta,
                    note="epsilon_share adds up to epsilon (increments of the composition "
                         "in the fit's order); epsilon_alone does not (composition is "
                         "sub-additive)")
