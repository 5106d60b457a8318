"""The CRL/ARL scheduler behind `revoca serve scheduler` (seed 004 4.9.7).

Every CA revoca holds keys for issues its CRL and ARL once per period (24 h), each valid
72 h; at start it catches up on whatever is older than a period or was never issued, and
after a key compromise `issue_now` issues at once.  It warns (log, and `expiry_warnings` for
`revoca status`) when a current list has less than the warning threshold (24 h) left.

Time comes from an injected clock and all work happens in `tick(now)`, so tests run days of
operation without sleeping; only `run` waits, on an Event that also stops it.

Any number of copies may run (on PostgreSQL, on any number of machines): `run` works only
while it holds the "scheduler" lease (ca.storage.leases); the others stand by and take over
within LEASE_RETRY once the holder is gone.  The lease is checked again before each round.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from ca.audit.keeper import AuditKeeper
from ca.audit.service_events import running
from ca.config import CRLConfig
from ca.crl import old_keys
from ca.crl.after_compromise import compromise_targets
from ca.crl.delta import deltas_due
from ca.crl.freshest import DeltaPolicy
from ca.crl.issue import IssuedCRLInfo, IssueFailure, IssueReport, issue_many, sweep_partial_files
from ca.enums import CAStatus, ListType
from ca.hsm.signer import KeyStore
from ca.storage.engine import Engine, session_scope
from ca.storage.leases import Lease
from ca.storage.reporting import ListStatus, ReportingReads
from ca.storage.store import ReadStore
from ca.trusted_time import ClockGuard

log = logging.getLogger("revoca.scheduler")

Clock = Callable[[], dt.datetime]

RETRY = dt.timedelta(minutes=5)  # after a failed issue (HSM not activated, database away)
LEASE_RETRY = 5.0  # seconds: how often a standby copy asks for the lease
MAX_SLEEP = dt.timedelta(hours=1)  # wake at least this often: new CAs, and the expiry warnings in the log
WARN_BEFORE = CRLConfig().warn_before
PERIOD = CRLConfig().period
VALIDITY = CRLConfig().validity


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def list_statuses(engine: Engine) -> list[ListStatus]:
    """Every issuing CA's newest CRL and ARL, bridge first (read-only)."""
    with session_scope(engine, readonly=True) as session:
        return ReportingReads(session).list_statuses()


def terminated_cas(engine: Engine) -> set[str]:
    """CAs ended by `revoca ca terminate`: nothing is issued for them again."""
    with session_scope(engine, readonly=True) as session:
        return {ca.name for ca in ReadStore(session).cas() if ca.status is CAStatus.TERMINATED}


FUTURE_SKEW = dt.timedelta(minutes=5)  # a thisUpdate further ahead of the clock than this was issued on a wrong clock


def expiry_warnings(engine: Engine, now: dt.datetime, *, warn_before: dt.timedelta = WARN_BEFORE,
                    period: dt.timedelta = PERIOD, validity: dt.timedelta = VALIDITY,
                    statuses: list[ListStatus] | None = None) -> list[str]:
    """One line per CRL/ARL that is missing, expired, has less than `warn_before` left at `now`,
    was dated in the future, or whose next round (thisUpdate + `period`) would come only after it
    expires (issue 15: a clock 50 h ahead left exactly that behind).  `statuses`: the lists as the
    caller read them (`list_statuses`), so that what it shows beside the warnings is the same read."""
    lines = []
    for status in list_statuses(engine) if statuses is None else statuses:
        if status.this_update is not None and status.next_update is not None:
            if status.this_update > now + FUTURE_SKEW:
                lines.append(f"{status.label()} #{status.number} has thisUpdate {status.this_update:%Y-%m-%d %H:%M:%SZ}"
                             f", in the future: it was issued on a clock that was ahead; check NTP")
            if status.this_update + period >= status.next_update:
                lines.append(f"{status.label()} #{status.number}: the next round "
                             f"({status.this_update + period:%Y-%m-%d %H:%M:%SZ}) comes only after it expires "
                             f"({status.next_update:%Y-%m-%d %H:%M:%SZ}); issue one now with `revoca crl issue`")
        if status.next_update is None:
            lines.append(f"{status.label()}: none issued yet; relying parties cannot check revocation")
        elif status.next_update <= now:
            lines.append(f"{status.label()} #{status.number} expired at {status.next_update:%Y-%m-%d %H:%M:%SZ}; "
                         "issue one now with `revoca crl issue`")
        elif status.next_update - now < warn_before:
            left = (status.next_update - now).total_seconds() / 3600
            lines.append(f"{status.label()} #{status.number} expires in {left:.1f} h "
                         f"(nextUpdate {status.next_update:%Y-%m-%d %H:%M:%SZ}); check that `revoca serve "
                         "scheduler` runs and the HSM is activated")
    # and the lists retired keys still owe (ca.crl.old_keys)
    return lines + old_keys.expiry_lines(old_keys.duties(engine, now), now, validity, warn_before)


@dataclasses.dataclass(frozen=True, slots=True)
class TickResult:
    issued: tuple[IssuedCRLInfo, ...]
    failed: tuple[IssueFailure, ...]
    warnings: tuple[str, ...]
    next_tick: dt.datetime  # when something falls due next (or a retry after a failure)


class Scheduler:
    """Decides what is due and issues it; `tick` is one round, `run` repeats it until stopped."""

    def __init__(self, engine: Engine, keys: KeyStore, data_dir: Path, config: CRLConfig | None = None, *,
                 time_guard: ClockGuard, clock: Clock = utc_now, actor: str = "scheduler",
                 keeper: AuditKeeper | None = None,
                 lease: Lease | None = None, lease_retry: float = LEASE_RETRY,
                 deltas: DeltaPolicy | None = None) -> None:
        """`time_guard`: the process's NTP check (ca.trusted_time), asked before every list is signed
        for the time `clock` gives.  `lease`: held while `run` works (default: the "scheduler" lease of `engine`).
        `deltas`: issue delta CRLs (ca.crl.delta) every config.delta_period, at once after a base
        and after config.delta_burst revocations (checked every `lease_retry` seconds while idle)."""
        self.deltas = deltas
        self._delta_retry: dict[str, dt.datetime] = {}  # CA -> not before (after a failed delta)
        self.engine = engine
        self.lease = lease or Lease(engine, "scheduler")
        self.lease_retry = lease_retry
        self.keeper = keeper
        self.keys = keys
        self.data_dir = Path(data_dir)
        self.config = config or CRLConfig()
        self.clock = clock
        self.time_guard = time_guard
        self.actor = actor

    def due(self, now: dt.datetime) -> list[tuple[str, ListType]]:
        """Lists never issued, or whose newest is a period old or more; and the rounds a retired
        key's own list (ca.crl.old_keys) makes due."""
        retired = old_keys.due(old_keys.duties(self.engine, now), now, self.config.period)
        ended = terminated_cas(self.engine)  # their final lists are out (ca.lifecycle.termination)
        return [(s.ca_name, s.list_type) for s in list_statuses(self.engine) if s.ca_name not in ended and (
                s.this_update is None or s.this_update + self.config.period <= now
                or (s.ca_name, s.list_type) in retired)]

    def tick(self, now: dt.datetime | None = None) -> TickResult:
        """Issue whatever is due at `now` (the clock's time if not given), then check expiry."""
        now = now or self.clock()
        lists = self._issue(self.due(now), now)
        deltas = self.issue_deltas(now)  # after the lists: a new base CRL gets its first delta at once
        report = IssueReport(lists.issued + deltas.issued, lists.failed + deltas.failed)
        if self.keeper is not None:
            self._keep_records(now, issued_lists=bool(report.issued))
        warnings = tuple(self.expiry_warnings(now))
        for line in warnings:
            log.warning("%s", line)
        return TickResult(report.issued, report.failed, warnings, self._next_tick(now, bool(report.failed)))

    def issue_now(self, ca_name: str, now: dt.datetime | None = None) -> IssueReport:
        """After a key compromise of `ca_name`: its CRL and ARL, and the ARLs of the CAs that certified it."""
        now = now or self.clock()
        log.warning("issuing at once after a key compromise of CA %s", ca_name)
        report = self._issue(compromise_targets(self.engine, ca_name), now)
        if self.keeper is not None:
            self._keep_records(now, issued_lists=bool(report.issued))
        return report

    def issue_deltas(self, now: dt.datetime | None = None) -> IssueReport:
        """The delta CRLs due at `now` (ca.crl.delta.deltas_due); nothing when deltas are off."""
        if self.deltas is None:
            return IssueReport((), ())
        now = now or self.clock()
        issued: list[IssuedCRLInfo] = []
        failed: list[IssueFailure] = []
        ended = terminated_cas(self.engine)
        for ca_name in deltas_due(self.engine, now, period=self.config.delta_period, burst=self.config.delta_burst):
            if self._delta_retry.get(ca_name, now) > now or ca_name in ended:
                continue
            report = issue_many(self.engine, self.keys, self.data_dir, [(ca_name, ListType.DELTA)], now=now,
                                time_guard=self.time_guard, actor=self.actor, deltas=self.deltas)
            issued.extend(report.issued)
            failed.extend(report.failed)
            if report.failed:  # logged by issue_many; not again every few seconds
                self._delta_retry[ca_name] = now + RETRY
            else:
                self._delta_retry.pop(ca_name, None)
        return IssueReport(tuple(issued), tuple(failed))

    def _keep_records(self, now: dt.datetime, *, issued_lists: bool) -> None:
        """Seals, archive stamps and the audit checkpoint; never in the way of CRL issuance."""
        assert self.keeper is not None
        try:
            self.keeper.tick(now, issued_lists=issued_lists)
        except Exception:  # the database went away, say: the lists are out, the records wait a round
            log.exception("keeping the audit records failed; trying again next round")

    def expiry_warnings(self, now: dt.datetime | None = None) -> list[str]:
        return expiry_warnings(self.engine, now or self.clock(), warn_before=self.config.warn_before,
                               period=self.config.period, validity=self.config.validity)

    def run(self, stop: threading.Event) -> None:
        """While holding the lease: tick, sleep until the next list falls due (at most MAX_SLEEP);
        without it: stand by.  Until `stop` is set; the lease is released then.  Its start and stop
        are audited (ca.audit.service_events)."""
        with running(self.engine, "scheduler"):
            self._run(stop)

    def _run(self, stop: threading.Event) -> None:
        standing_by = leading = False
        try:
            while not stop.is_set():
                if not self.lease.try_acquire():
                    if not standing_by:
                        log.info("another scheduler holds the lease; standing by")
                        standing_by = True
                    stop.wait(self.lease_retry)
                    continue
                if standing_by:
                    log.warning("took over the scheduler lease")
                    standing_by = False
                if not leading:  # what a leader killed mid-list left half-written
                    if swept := sweep_partial_files(self.data_dir):
                        log.warning("removed partial list files left in %d directories", swept)
                    leading = True
                self._round(stop)
                leading = self.lease.held()
        finally:
            self.lease.release()

    def _round(self, stop: threading.Event) -> None:
        """One tick, then sleep until the next is due, in steps: a lease lost meanwhile (its
        connection gone) is noticed before the next round."""
        try:
            result = self.tick()
            wake = result.next_tick
            log.info("round done: %d issued, %d failed; next round at %s", len(result.issued),
                     len(result.failed), f"{wake:%Y-%m-%d %H:%M:%SZ}")
        except Exception:  # the database went away, say: keep the service up and retry
            log.exception("scheduler round failed; retrying in %s", RETRY)
            wake = self.clock() + RETRY
        pause = min(max((wake - self.clock()).total_seconds(), 1.0), MAX_SLEEP.total_seconds())
        deadline = self.clock() + dt.timedelta(seconds=pause)
        while not stop.is_set() and self.clock() < deadline and self.lease.held():
            stop.wait(min(self.lease_retry, max((deadline - self.clock()).total_seconds(), 0.01)))
            if self.deltas is not None and not stop.is_set():
                try:  # a burst of revocations gets its delta within lease_retry, not at the next round
                    self.issue_deltas()
                except Exception:
                    log.exception("delta CRL check failed; trying again")

    def _issue(self, targets: list[tuple[str, ListType]], now: dt.datetime) -> IssueReport:
        if not targets:
            return IssueReport((), ())
        # retired keys' lists first, so that the current key's list carries the highest number
        retired = old_keys.issue_before(self.engine, self.keys, self.data_dir, targets,
                                        old_keys.duties(self.engine, now), now=now, validity=self.config.validity,
                                        time_guard=self.time_guard, actor=self.actor)
        current = issue_many(self.engine, self.keys, self.data_dir, targets, now=now, validity=self.config.validity,
                             time_guard=self.time_guard, actor=self.actor, deltas=self.deltas)
        return IssueReport(retired.issued + current.issued, retired.failed + current.failed)

    def _next_tick(self, now: dt.datetime, failed: bool) -> dt.datetime:
        ended = terminated_cas(self.engine)
        statuses = [s for s in list_statuses(self.engine) if s.ca_name not in ended]
        candidates = [s.this_update + self.config.period for s in statuses if s.this_update is not None]
        if failed or any(s.this_update is None for s in statuses):
            candidates.append(now + RETRY)
        return max(min(candidates, default=now + MAX_SLEEP), now)
