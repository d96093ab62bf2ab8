"""Differential privacy primitives: accounting by dp-accounting, and privacy audits.

A private method records each release that reads the data in a :class:`PrivacyLedger` as a
``dp_accounting`` event; the ledger composes them into one event and converts it to
``epsilon`` with dp-accounting's RDP or PLD accountant. :func:`calibrate` finds the noise
level that meets a budget; :func:`epsilon_lower_bound` is the empirical check that the noise
really is calibrated.
"""

from ._audit import clopper_pearson_upper, epsilon_lower_bound
from ._ledger import (ACCOUNTANTS, PrivacyLedger, Release, calibrate, epsilon_of,
                      gaussian_event, make_accountant)

__all__ = ["ACCOUNTANTS", "PrivacyLedger", "Release", "calibrate", "clopper_pearson_upper",
           "epsilon_lower_bound", "epsilon_of", "gaussian_event", "make_accountant"]
