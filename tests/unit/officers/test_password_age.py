"""Password age (ca.officers.passwords, seed 004 5.2.3) and its [operators] settings."""

from __future__ import annotations

import datetime as dt

import pytest

from ca.config import settings_from_dict
from ca.errors import ConfigError, InvalidInput, PermissionDenied
from ca.officers.credentials import hash_password
from ca.officers.passwords import PasswordPolicy, PasswordState, check_new_password, password_age

SET = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
POLICY = PasswordPolicy()  # 90 days, warn 14


def _at(days: float) -> dt.datetime:
    return SET + dt.timedelta(days=days)


@pytest.mark.parametrize(("days", "state", "left"), [
    (0, PasswordState.CURRENT, 90),
    (75.9, PasswordState.CURRENT, 14),
    (76, PasswordState.EXPIRING, 14),
    (80.5, PasswordState.EXPIRING, 9),
    (89.99, PasswordState.EXPIRING, 0),
    (90, PasswordState.EXPIRED, 0),
    (400, PasswordState.EXPIRED, 0),
])
def test_the_verdict_by_age(days: float, state: PasswordState, left: int) -> None:
    age = password_age("ann", SET, now=_at(days), policy=POLICY)
    assert (age.state, age.days_left, age.expires_at) == (state, left, _at(90))


def test_an_expired_password_is_refused_with_the_command_that_renews_it() -> None:
    age = password_age("ann", SET, now=_at(91), policy=POLICY)
    with pytest.raises(PermissionDenied) as err:
        age.check()
    assert str(err.value) == ("operator ann: password expired on 2026-04-01 (last changed 2026-01-01); "
                              "set a new one with `revoca operator passwd --operator ann`")
    password_age("ann", SET, now=_at(89), policy=POLICY).check()  # not yet: nothing raised


def test_the_warning_says_when_and_how() -> None:
    assert password_age("ann", SET, now=_at(89), policy=POLICY).warning() == (
        "operator ann: password expires in 1 day (2026-04-01 12:00Z); change it with "
        "`revoca operator passwd --operator ann`")
    assert "expires today" in password_age("ann", SET, now=_at(89.9), policy=POLICY).warning()


def test_no_warning_period_at_all() -> None:
    policy = PasswordPolicy.from_days(30, 0)
    assert password_age("ann", SET, now=_at(29.99), policy=policy).state is PasswordState.CURRENT
    assert password_age("ann", SET, now=_at(30), policy=policy).state is PasswordState.EXPIRED


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        password_age("ann", SET.replace(tzinfo=None), now=_at(1), policy=POLICY)


@pytest.mark.parametrize(("max_age", "warn"), [(0, 0), (10, 10), (10, 11), (10, -1)])
def test_impossible_policies_are_refused(max_age: int, warn: int) -> None:
    with pytest.raises(ValueError):
        PasswordPolicy.from_days(max_age, warn)


def test_a_new_password_must_be_repeated_and_differ_from_the_current_one() -> None:
    current = hash_password("current password")
    check_new_password("brand new password", "brand new password", current_hash=current)
    with pytest.raises(InvalidInput, match="differ"):
        check_new_password("brand new password", "brand new passw0rd", current_hash=current)
    with pytest.raises(InvalidInput, match="is the current one"):
        check_new_password("current password", "current password", current_hash=current)


def test_operators_table_defaults_and_values() -> None:
    assert settings_from_dict({}).operators.password_policy == PasswordPolicy.from_days(90, 14)
    settings = settings_from_dict({"operators": {"max_password_age_days": 60, "warn_days": 7}})
    assert settings.operators.password_policy == PasswordPolicy.from_days(60, 7)


@pytest.mark.parametrize(("table", "match"), [
    ({"max_password_age_days": 10, "warn_days": 10}, "must be less than"),
    ({"max_password_age_days": "90"}, "whole number of days"),
    ({"warn_days": True}, "whole number of days"),
    ({"max_password_age_days": -1}, "whole number of days"),
    ({"max_age": 90}, "unknown key"),
])
def test_operators_table_mistakes_are_one_line_errors(table: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        settings_from_dict({"operators": table})
