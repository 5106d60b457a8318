"""Trusted time (seed 004 6.8, seed 000 1.3.3, seed 002): nothing is signed on a clock that
the configured NTP servers do not confirm to within `[time] max_offset_s` (1 s).

There is no process-wide clock: whoever loads the settings for a process (the CLI's App, each
`revoca serve` entry point, the OCSP worker) makes one `ClockGuard` with `guard_for(settings)`
and hands it to what signs: `issue(..., time_guard=)` for certificates (hierarchy's `Context`
carries it), `issue_list`/`issue_many` and the scheduler for CRLs/ARLs, the TSA's authority,
the OCSP responder and pre-signer.  Leaving the guard out is a type error (mypy), not a silent
fall-back to some policy the process happened to load.  Code that is handed the settings
themselves (the key ceremony, the TSA and TLS certificates, OCSP responder renewal, the demo
set-up) takes an optional guard and otherwise makes one for those settings.  One guard per
process keeps its checks (a good one reused for `recheck_s`) and the last NTP-confirmed time
that the clock-ahead check compares with.  `guard.require(purpose, ...)` right before a
signature returns the TimeCheck or raises UntrustedTime.

The policy for several servers is in ca.trusted_time.policy; reuse of a check in
ca.trusted_time.guard.  Refusals are audited as `time.untrusted` with every server's offset, or `time.ahead` when
what is signed is ahead of the last NTP-confirmed time (ca.trusted_time.guard);
a tolerated silent or lying server as `time.degraded`.  With no server configured (the
embedded default) signing goes on after one warning per process.
"""

from __future__ import annotations

from ca.config import Settings
from ca.trusted_time.guard import ClockGuard, forget_unchecked_warning
from ca.trusted_time.ntp import Reading
from ca.trusted_time.policy import TimeCheck

__all__ = ["ClockGuard", "Reading", "TimeCheck", "forget_unchecked_warning", "guard_for"]


def guard_for(settings: Settings) -> ClockGuard:
    """A new guard for `settings`' [time] policy, auditing its refusals into their database when the
    caller passes no engine.  Make one per process (checks are remembered in it) and pass it on."""
    return ClockGuard(settings.time, db_url=settings.db_url if settings.time.ntp_servers else "")
