"""Trusted time (seed 004 6.8, seed 000 1.3.3, seed 002): nothing is signed on a clock that
the configured NTP servers do not confirm to within `[time] max_offset_s` (1 s).

Entry points:

- `require(settings, purpose, engine=..., actor=...)`: for code that holds its settings
  (the time-stamp authority); returns the TimeCheck or raises UntrustedTime.
- `require_current(purpose, ...)`: the same against this process's settings, for the
  signing paths that are not handed settings (certificates, CRLs/ARLs).  `load_settings`
  makes the settings it loads this process's (`use`).
- `guard_for(settings)`: the ClockGuard itself, for a service that keeps it (the OCSP responder).

The policy for several servers is in ca.trusted_time.policy; reuse of a check in
ca.trusted_time.guard.  Refusals are audited as `time.untrusted` with every server's offset, or `time.ahead` when
what is signed is ahead of the last NTP-confirmed time (ca.trusted_time.guard);
a tolerated silent or lying server as `time.degraded`.  With no server configured (the
embedded default) signing goes on after one warning per process.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING

from ca.config import Settings, TimeConfig
from ca.trusted_time.guard import ClockGuard, forget_unchecked_warning
from ca.trusted_time.ntp import Reading
from ca.trusted_time.policy import TimeCheck

if TYPE_CHECKING:  # SQLAlchemy only for annotations: `revoca hsm status` need not import it
    from ca.storage.engine import Engine

__all__ = ["ClockGuard", "Reading", "TimeCheck", "current_guard", "guard_for", "require", "require_current",
           "reset", "use"]

_lock = threading.Lock()
_guards: dict[tuple[TimeConfig, str], ClockGuard] = {}
_current: Settings | None = None
_current_guard: ClockGuard | None = None


def guard_for(settings: Settings) -> ClockGuard:
    """One guard per distinct [time] policy and database in this process, so checks are shared."""
    key = (settings.time, settings.db_url if settings.time.ntp_servers else "")
    guard = _guards.get(key)
    if guard is None:
        with _lock:
            guard = _guards.setdefault(key, ClockGuard(settings.time, db_url=key[1]))
    return guard


def use(settings: Settings) -> None:
    """Make `settings` this process's: its [time] policy guards `require_current`."""
    global _current, _current_guard
    _current, _current_guard = settings, None


def current_guard() -> ClockGuard:
    """The guard of this process's settings (kept: the OCSP hot path asks for it at every signature)."""
    global _current_guard
    guard = _current_guard
    if guard is None:
        guard = _current_guard = guard_for(_current if _current is not None else Settings())
    return guard


def require(settings: Settings, purpose: str, *, engine: Engine | None = None,
            actor: str = "revoca", at: dt.datetime | None = None) -> TimeCheck:
    """Call right before signing `purpose`; raises UntrustedTime (one line, audited) when the clock is off,
    or when `at` (the time being signed; default the clock now) is ahead of the last NTP-confirmed time."""
    return guard_for(settings).require(purpose, engine=engine, actor=actor, at=at)


def require_current(purpose: str, *, engine: Engine | None = None, actor: str = "revoca",
                    at: dt.datetime | None = None) -> TimeCheck:
    """`require` against this process's settings (those `load_settings` loaded last; else the defaults)."""
    return current_guard().require(purpose, engine=engine, actor=actor, at=at)


def reset() -> None:
    """Forget the process's settings, every remembered check and the no-server warning (tests, reloads)."""
    global _current, _current_guard
    with _lock:
        _current, _current_guard = None, None
        _guards.clear()
    forget_unchecked_warning()
