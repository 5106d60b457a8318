"""The clock check that stands before every signature, remembered so that it costs little.

A good check is reused for `recheck_s` (the OCSP hot path then costs one monotonic-clock
read); a failed one for at most FAILED_REUSE_S, so that a batch (every CA's CRL and ARL, a
burst of OCSP queries) meets one check, and one audit record, rather than one each, and a
repaired clock is noticed soon.  Reuse is timed on the monotonic clock: the wall clock is the
thing in doubt.

What the checks found is audited (seed 004 5.4.1, seed 000 4.5: records that assure time
quality; seed 002): every failed check as `time.untrusted`, a tolerated fault as
`time.degraded` when it starts or changes, and a good check as `time.checked` (the agreed
offset and every server's) at most once per CHECKED_AUDIT_S per guard, i.e. per process and
policy: at least hourly while the process signs, not at every recheck.

Between two checks the clock could jump ahead unseen (a reused check costs no NTP query), and
the time a caller signs (a CRL's thisUpdate from the scheduler's clock) may not be the system
clock at all.  So each trusted check is kept as a confirmed reading: the true time then (wall
clock plus the agreed offset) and the monotonic clock then.  Whatever is about to be signed
(`at`, else the wall clock now) must not be further ahead of that reading plus the monotonic
time elapsed since than the allowed skew (`max_offset_s` plus DRIFT_PPM of the elapsed time,
which is the most the kernel lets the monotonic clock be slewed).  Otherwise nothing is signed
(one line, audited as `time.ahead`, which `revoca status` reports as an error) and the next
signature asks NTP again: signing resumes only once NTP confirms the time being signed.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ca.config import TimeConfig
from ca.errors import UntrustedTime
from ca.trusted_time import ntp
from ca.trusted_time.policy import TimeCheck, assess, unchecked

if TYPE_CHECKING:  # SQLAlchemy only for annotations: `revoca hsm status` need not import it
    from ca.storage.engine import Engine

log = logging.getLogger("revoca.time")
# A one-shot `revoca` command configures no logging: without this, Python would print these
# records on stderr beside the command's own one-line error.  Services log them (service_logging).
log.addHandler(logging.NullHandler())

FAILED_REUSE_S = 10.0
CHECKED_AUDIT_S = 3600.0  # a good check is audited at most this often (per guard)
AUDIT_WAIT_S = 2.0  # how long a refusal waits for its audit record before it is raised
DRIFT_PPM = 500e-6  # the kernel slews the clock by at most 500 ppm (adjtimex): the monotonic clock's error
UNTRUSTED_EVENT = "time.untrusted"
AHEAD_EVENT = "time.ahead"
DEGRADED_EVENT = "time.degraded"
CHECKED_EVENT = "time.checked"

Query = Callable[[str, float], ntp.Reading]

_unchecked_warned = threading.Event()


class ClockGuard:
    """Checks the system clock against `[time] ntp_servers` before a signature (see ca.trusted_time)."""

    def __init__(self, config: TimeConfig, *, db_url: str = "", query: Query = ntp.query,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        """`db_url` is where refusals are audited when the caller passes no engine; `wall` is the
        system clock (epoch seconds) that NTP checks and that is signed when the caller passes no time."""
        self.config = config
        self._db_url = db_url
        self._engine: Engine | None = None
        self._query = query
        self._monotonic = monotonic
        self._wall = wall
        self._confirmed: tuple[float, float] | None = None  # (true epoch seconds, monotonic) at the last trusted check
        self._lock = threading.Lock()
        self._state: tuple[TimeCheck, float] | None = None  # the last check and until when it holds
        self._noted: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
        self._checked_audited_at: float | None = None  # monotonic time of the last time.checked record

    def check(self) -> TimeCheck:
        """Ask every configured server now (all at once) and judge the answers; nothing is kept."""
        servers, timeout = self.config.ntp_servers, self.config.timeout_s
        if len(servers) == 1:
            readings: tuple[ntp.Reading, ...] = (self._query(servers[0], timeout),)
        else:
            with concurrent.futures.ThreadPoolExecutor(len(servers), thread_name_prefix="ntp") as pool:
                readings = tuple(pool.map(lambda s: self._query(s, timeout), servers))
        return assess(readings, self.config.max_offset_s)

    def require(self, purpose: str, *, engine: Engine | None = None, actor: str = "revoca",
                at: dt.datetime | None = None) -> TimeCheck:
        """Return the (possibly reused) check, or raise UntrustedTime naming the servers and offset.

        `purpose` names what is about to be signed ("tokyo CRL", "time-stamp token") in the
        log and the audit record; the error line names the servers and the offset.  `at` is the
        time written into what is signed when it is not the system clock now (a CRL's thisUpdate):
        it too must not be ahead of the last NTP-confirmed time (see the module's docstring).
        """
        if not self.config.ntp_servers:
            if not _unchecked_warned.is_set():
                _unchecked_warned.set()
                log.warning("no NTP server configured ([time] ntp_servers): signing on the system clock "
                            "without checking it (seed 000 1.3.3 wants it within ±%g s)", self.config.max_offset_s)
            return unchecked(self.config.max_offset_s)
        state = self._state
        if state is None or self._monotonic() >= state[1]:
            with self._lock:
                state = self._state
                if state is None or self._monotonic() >= state[1]:
                    state = self._refresh(purpose, engine, actor)
        check = state[0]
        if not check.trusted:
            raise UntrustedTime(f"untrusted time, nothing signed: {check.refusal}")
        self._not_ahead(purpose, engine, actor, at)
        return check

    def ahead_by(self, at: dt.datetime | None = None) -> float:
        """How far `at` (else the system clock now) is beyond the allowed skew from the last confirmed
        reading, in seconds; 0 when within it or when nothing was confirmed yet in this process."""
        confirmed = self._confirmed
        if confirmed is None:
            return 0.0
        true_then, mono_then = confirmed
        elapsed = max(0.0, self._monotonic() - mono_then)
        expected = true_then + elapsed
        signed = self._wall() if at is None else at.timestamp()
        return max(0.0, signed - expected - (self.config.max_offset_s + DRIFT_PPM * elapsed))

    def _not_ahead(self, purpose: str, engine: Engine | None, actor: str, at: dt.datetime | None) -> None:
        excess = self.ahead_by(at)
        if not excess:
            return
        confirmed = self._confirmed
        assert confirmed is not None
        signed = self._wall() if at is None else at.timestamp()
        true_now = confirmed[0] + max(0.0, self._monotonic() - confirmed[1])
        when = dt.datetime.fromtimestamp(signed, dt.UTC)
        expected = dt.datetime.fromtimestamp(true_now, dt.UTC)
        refusal = (f"the clock is {signed - true_now:.0f} s ahead of the last NTP-confirmed time "
                   f"({when:%Y-%m-%dT%H:%M:%SZ} vs {expected:%Y-%m-%dT%H:%M:%SZ}; allowed skew "
                   f"{signed - true_now - excess:.1f} s): {purpose} not signed until NTP confirms the time")
        with self._lock:  # the next signature asks NTP again rather than reuse the check
            self._state = None  # (a clock NTP disagrees with then fails that check, reused FAILED_REUSE_S)
            self._checked_audited_at = None  # and its confirmation is audited at once
        log.error("%s", refusal)
        self._audit_ahead(engine, actor, purpose, refusal, signed=when, confirmed=expected)
        raise UntrustedTime(f"untrusted time, nothing signed: {refusal}")

    def _refresh(self, purpose: str, engine: Engine | None, actor: str) -> tuple[TimeCheck, float]:
        check = self.check()
        reuse = self.config.recheck_s if check.trusted else min(self.config.recheck_s, FAILED_REUSE_S)
        self._state = state = (check, self._monotonic() + reuse)
        if check.trusted and check.offset_s is not None:
            self._confirmed = (self._wall() + check.offset_s, self._monotonic())
        if not check.trusted:
            log.error("untrusted time, %s not signed: %s", purpose, check.refusal)
            self._audit(engine, UNTRUSTED_EVENT, actor, check, purpose, failed=True)
        noted = (check.outliers, check.unreachable)
        if check.trusted and (self._checked_audited_at is None
                              or self._monotonic() - self._checked_audited_at >= CHECKED_AUDIT_S):
            self._checked_audited_at = self._monotonic()
            self._audit(engine, CHECKED_EVENT, actor, check, purpose, failed=False)
        if check.trusted and check.degraded:
            log.warning("clock checked (offset %+.3f s) despite: %s", check.offset_s, check.notes())
            if noted != self._noted:  # audited when it starts or changes, not at every recheck
                self._audit(engine, DEGRADED_EVENT, actor, check, purpose, failed=False)
        self._noted = noted
        return state

    def _audit(self, engine: Engine | None, event: str, actor: str, check: TimeCheck, purpose: str, *,
               failed: bool) -> None:
        """Record the offsets per server; a lost audit write is logged and does not unblock signing."""
        from ca import audit
        from ca.storage.engine import session_scope

        detail: dict[str, Any] = {"purpose": purpose, "offsets_s": check.offsets(), "errors": check.errors(),
                  "agreed_offset_s": check.offset_s, "max_offset_s": check.max_offset_s,
                  "outliers": list(check.outliers), "unreachable": list(check.unreachable)}

        def write() -> None:
            try:
                target = engine or self._own_engine()
                if target is None:
                    log.error("no database to audit %s in: %s", event, detail)
                elif failed:
                    audit.record_failure(target, event, actor=actor, error=check.refusal, **detail)
                else:
                    notes: dict[str, Any] = {"warning": check.notes()} if check.degraded else {}
                    with session_scope(target) as session:
                        audit.record(session, event, actor=actor, servers=list(self.config.ntp_servers),
                                     delays_s=check.delays(), **notes, **detail)
            except Exception:
                log.exception("could not audit %s: %s", event, detail)

        # The caller may be inside a write transaction (SQLite: holding the database's write
        # lock) that rolls back once the refusal is raised; written from this thread the record
        # would wait for that lock.  So it is written from its own thread, waited for briefly:
        # at once in the usual case, right after the caller's rollback otherwise.  Not a daemon,
        # so a one-shot command still writes it before the process ends.
        # A good check's record is not waited for at all: nothing is refused, and the signature
        # that asked should not wait for the lock its own transaction may hold.
        writer = threading.Thread(target=write, name="revoca-time-audit")
        writer.start()
        if event != CHECKED_EVENT:
            writer.join(AUDIT_WAIT_S)

    def _audit_ahead(self, engine: Engine | None, actor: str, purpose: str, refusal: str, *, signed: dt.datetime,
                     confirmed: dt.datetime) -> None:
        """`time.ahead`, written like every refusal: from its own thread, waited for briefly."""
        from ca import audit

        def write() -> None:
            try:
                target = engine or self._own_engine()
                if target is None:
                    log.error("no database to audit %s in: %s", AHEAD_EVENT, refusal)
                else:
                    audit.record_failure(target, AHEAD_EVENT, actor=actor, error=refusal, purpose=purpose,
                                         signed_time=f"{signed:%Y-%m-%dT%H:%M:%SZ}",
                                         confirmed_time=f"{confirmed:%Y-%m-%dT%H:%M:%SZ}")
            except Exception:
                log.exception("could not audit %s: %s", AHEAD_EVENT, refusal)

        writer = threading.Thread(target=write, name="revoca-time-audit")
        writer.start()
        writer.join(AUDIT_WAIT_S)

    def _own_engine(self) -> Engine | None:
        if self._engine is None and self._db_url:
            from ca.storage.engine import make_engine

            self._engine = make_engine(self._db_url)
        return self._engine


def forget_unchecked_warning() -> None:
    """Warn again about a missing NTP configuration (a new process's view; for tests)."""
    _unchecked_warned.clear()
