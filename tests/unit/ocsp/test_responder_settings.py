"""[ocsp] ca_signed and responder_warn_days: off and 30 days unless configured, and checked strictly."""

from __future__ import annotations

import datetime as dt

import pytest

from ca.config import settings_from_dict
from ca.errors import ConfigError


def test_responders_sign_with_delegated_certificates_and_warn_30_days_ahead_by_default() -> None:
    ocsp = settings_from_dict({}).ocsp
    assert ocsp.ca_signed is False
    assert ocsp.responder_warn_before == dt.timedelta(days=30)


def test_ca_signed_mode_and_the_warning_period_are_configurable() -> None:
    ocsp = settings_from_dict({"ocsp": {"ca_signed": True, "responder_warn_days": 60}}).ocsp
    assert ocsp.ca_signed is True and ocsp.responder_warn_before == dt.timedelta(days=60)


@pytest.mark.parametrize("value", ["yes", 1])
def test_ca_signed_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ConfigError, match="ocsp.ca_signed must be true or false"):
        settings_from_dict({"ocsp": {"ca_signed": value}})


@pytest.mark.parametrize("value", [0, 366, "30", True, 7.5])
def test_the_warning_period_is_whole_days_within_a_certificate_s_year(value: object) -> None:
    with pytest.raises(ConfigError, match="ocsp.responder_warn_days must be a number of days from 1 to 365"):
        settings_from_dict({"ocsp": {"responder_warn_days": value}})
