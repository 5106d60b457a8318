"""Passwords are changed periodically (seed 004 5.2.3): their age, and what a new one must be.

A password older than `max_age` no longer logs in, except to `revoca operator passwd`, which is
how its holder sets a new one; within `warn` of that age each login says how long is left.
The age counts from `password_changed_at` (`revoca operator add` and `revoca operator passwd`
set it; accounts from before revision 0007 count from the upgrade).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum

from ca.errors import InvalidInput, PermissionDenied
from ca.officers.credentials import verify_password

DEFAULT_MAX_AGE_DAYS = 90
DEFAULT_WARN_DAYS = 14


@dataclasses.dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """[operators] max_password_age_days and warn_days, as durations."""

    max_age: dt.timedelta = dt.timedelta(days=DEFAULT_MAX_AGE_DAYS)
    warn: dt.timedelta = dt.timedelta(days=DEFAULT_WARN_DAYS)

    def __post_init__(self) -> None:
        if self.max_age <= dt.timedelta(0):
            raise ValueError(f"the maximum password age must be positive, not {self.max_age}")
        if not dt.timedelta(0) <= self.warn < self.max_age:
            raise ValueError(f"the warning period must be from 0 to less than the maximum age ({self.max_age}), "
                             f"not {self.warn}")

    @classmethod
    def from_days(cls, max_age_days: int, warn_days: int) -> PasswordPolicy:
        return cls(dt.timedelta(days=max_age_days), dt.timedelta(days=warn_days))


class PasswordState(enum.StrEnum):
    CURRENT = "current"
    EXPIRING = "expiring"  # within the warning period: each login warns
    EXPIRED = "expired"  # logs in only to `revoca operator passwd`


@dataclasses.dataclass(frozen=True, slots=True)
class PasswordAge:
    name: str
    changed_at: dt.datetime
    expires_at: dt.datetime
    state: PasswordState
    days_left: int  # whole days until expires_at; 0 on its last day and after

    def warning(self) -> str:
        when = "today" if self.days_left == 0 else f"in {self.days_left} day{'s' if self.days_left != 1 else ''}"
        return (f"operator {self.name}: password expires {when} ({self.expires_at:%Y-%m-%d %H:%MZ}); "
                f"change it with `revoca operator passwd --operator {self.name}`")

    def refusal(self) -> str:
        return (f"operator {self.name}: password expired on {self.expires_at:%Y-%m-%d} (last changed "
                f"{self.changed_at:%Y-%m-%d}); set a new one with `revoca operator passwd --operator {self.name}`")

    def check(self) -> None:
        """PermissionDenied when expired."""
        if self.state is PasswordState.EXPIRED:
            raise PermissionDenied(self.refusal())


def password_age(name: str, changed_at: dt.datetime, *, now: dt.datetime, policy: PasswordPolicy) -> PasswordAge:
    """The verdict on `name`'s password, set at `changed_at`, at `now`."""
    if changed_at.tzinfo is None or now.tzinfo is None:
        raise ValueError("password ages are computed on timezone-aware UTC times")
    expires_at = changed_at + policy.max_age
    left = expires_at - now
    if left <= dt.timedelta(0):
        state = PasswordState.EXPIRED
    elif left <= policy.warn:
        state = PasswordState.EXPIRING
    else:
        state = PasswordState.CURRENT
    return PasswordAge(name, changed_at, expires_at, state, max(left.days, 0))


def check_new_password(new: str, repeated: str, *, current_hash: str) -> None:
    """InvalidInput unless the new password was typed the same twice and is not the current one
    (its length is checked when it is hashed, ca.officers.credentials.hash_password)."""
    if new != repeated:
        raise InvalidInput("the two new passwords differ; nothing was changed, try again")
    if verify_password(new, current_hash):
        raise InvalidInput("the new password is the current one; choose another")
