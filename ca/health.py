"""Which parts of revoca are up, as `revoca status` and /metrics report them (issue 15).

Found: with the HSM service dead `revoca status` exited 0; with slapd dead it said "LDAP
publication: nothing waiting" and exited 0; /metrics had no LDAP gauge.  Each component is
checked the cheapest way that cannot lie:

- database: a read;
- HSM service: its socket answers `status` (and whether it is activated);
- LDAP repository: its port accepts a connection;
- scheduler, publisher: someone holds their lease (ca.storage.leases) -- a lease nobody holds
  is one this check can take, and gives back at once;
- the OCSP signer (`revoca serve ocsp-signer`), likewise, in an installation that signs answers
  ahead (any stored): who holds its lease, and how old the stored answers responders would
  serve have grown against their refresh time (issue 16) -- an installation that never ran it
  has its responders sign every answer, and no signer to miss;
- the HSM service's signing processes ([hsm] signer_processes): how many of them are up.

And what will stop working on a date: the delegated OCSP responder certificates (1 year, seed
004 6.3.2.1), which only `revoca ocsp renew` replaces; without a valid one OCSP answers tryLater
for that CA key rather than sign with the CA key (unless [ocsp] ca_signed), see ocsp.responder;
and each CA's newest delta CRL (RFC 5280 5.2.4), valid hours where a complete CRL is valid days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
from collections.abc import Callable
from typing import Any

from ca.config import CRLConfig
from ca.enums import CAStatus, ListType
from ca.errors import RevocaError
from ca.storage.engine import Engine, session_scope
from ca.storage.leases import Lease, holder
from ca.storage.presigned import PresignedStore, ServableAge
from ca.storage.reporting import ListStatus, ReportingReads, ResponderCoverage
from ca.storage.store import ReadStore

COMPONENTS = ("database", "hsm", "ldap", "scheduler", "publisher")
SIGNER = "ocsp-signer"  # the lease of `revoca serve ocsp-signer` (ocsp.presigner.LEASE)
#: a stored answer still served this long after its refresh time means the signer is not keeping up
#: (a full re-sign of 1,000,000 answers took 6.3 minutes with P-256 in the token, measured; about 13
#: with RSA-2048, from 100,000)
SIGNER_LATE = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True, slots=True)
class Component:
    name: str
    up: bool
    detail: str
    warning: str = ""  # up, but not as configured (the HSM service with fewer signing processes)

    def line(self) -> str:
        return f"{self.name}: {'up' if self.up else 'DOWN'} ({self.detail})"


def database(engine: Engine) -> Component:
    try:
        with session_scope(engine, readonly=True) as session:
            ReportingReads(session).waiting_counts()
    except RevocaError as exc:
        return Component("database", False, str(exc))
    return Component("database", True, engine.url.render_as_string(hide_password=True))


def hsm(status: Callable[[], dict[str, Any]]) -> Component:
    try:
        reply = status()
    except RevocaError as exc:
        return Component("hsm", False, str(exc))
    return Component("hsm", True, str(reply.get("line", "answering")), signer_pool_warning(reply))


def signer_pool_warning(reply: dict[str, Any]) -> str:
    """The warning when the activated HSM service runs fewer signing processes than [hsm]
    signer_processes asks (ca.hsm.pool: it then signs more in its own session, one at a time)."""
    wanted, up = int(reply.get("signer_processes", 1)), int(reply.get("signers_up", 0))
    if not reply.get("activated") or wanted <= 1 or up >= wanted:
        return ""
    why = ("it stopped starting them after repeated failures (see its log)" if reply.get("signers_given_up")
           else "the others are starting or were lost and are being replaced")
    return (f"the HSM service has {up} of {wanted} signing processes up ([hsm] signer_processes): {why}; "
            "it signs the rest in its own session, one signature at a time")


def ldap(host: str, port: int, timeout: float = 2.0) -> Component:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return Component("ldap", False, f"nothing answers on {host}:{port} ({exc.strerror or exc})")
    return Component("ldap", True, f"listening on {host}:{port}")


def lease_holder(engine: Engine, job: str) -> Component:
    probe = Lease(engine, job)
    try:
        free = probe.try_acquire()
    except Exception as exc:  # the database is away: the job cannot be checked either
        return Component(job, False, f"cannot check: {exc}")
    finally:
        probe.release()
    if free:
        return Component(job, False, f"no {job} holds the lease: `revoca serve {job}` is not running")
    return Component(job, True, f"a {job} holds the lease")


def signer_holder(engine: Engine) -> Component:
    """The OCSP signer's lease, as lease_holder, naming its holder (ca.storage.leases.holder)."""
    found = lease_holder(engine, SIGNER)
    if not found.up:
        if "cannot check" in found.detail:
            return found
        return dataclasses.replace(found, detail=f"no OCSP signer holds the lease: `revoca serve {SIGNER}` is not "
                                                 "running, so the stored answers age until responders sign every "
                                                 "answer themselves")
    try:
        who = holder(engine, SIGNER)
    except Exception as exc:  # noqa: BLE001  -- who it is is a detail; that it is held was checked
        return dataclasses.replace(found, detail=f"an OCSP signer holds the lease (who: {exc})")
    return dataclasses.replace(found, detail=f"held by {who.line()}" if who else found.detail)


def check_all(engine: Engine, hsm_status: Callable[[], dict[str, Any]], ldap_port: int,
              ldap_host: str = "127.0.0.1") -> list[Component]:
    """Every component; the OCSP signer only where answers are signed ahead (any stored)."""
    db = database(engine)
    found = [db, hsm(hsm_status), ldap(ldap_host, ldap_port)]
    if db.up:
        found += [lease_holder(engine, "scheduler"), lease_holder(engine, "publisher")]
        if signs_ahead(engine):
            found.append(signer_holder(engine))
    else:
        found += [Component(job, False, "cannot check without the database") for job in ("scheduler", "publisher")]
    return found


def signs_ahead(engine: Engine) -> bool:
    try:
        return PresignedStore(engine).signs_ahead()
    except RevocaError:  # the database went away since its check: that component says so
        return False


@dataclasses.dataclass(frozen=True, slots=True)
class Presigned:
    """How fresh the answers signed ahead are, of those a responder would serve now (ocsp.presigned)."""

    oldest: ServableAge | None  # None: no stored answer would be served

    def line(self, now: dt.datetime) -> str:
        if self.oldest is None:
            return "OCSP answers signed ahead: none a responder would serve now (responders sign every answer)"
        return (f"OCSP answers signed ahead: the oldest a responder would serve was signed "
                f"{_hours(self.oldest.age(now))} ago (refresh target {_hours(self.oldest.target)})")

    def warnings(self, now: dt.datetime, *, late: dt.timedelta = SIGNER_LATE) -> list[str]:
        if self.oldest is None or now - self.oldest.refresh_at <= late:
            return []
        return [f"the OCSP signer is behind: a stored answer responders still serve was signed "
                f"{_hours(self.oldest.age(now))} ago, {_hours(now - self.oldest.refresh_at)} past its refresh "
                f"(target {_hours(self.oldest.target)}): is `revoca serve {SIGNER}` running, and the HSM "
                "service activated?"]


def presigned(engine: Engine, now: dt.datetime, *, ca_signed: bool = False) -> Presigned:
    return Presigned(PresignedStore(engine).oldest_servable(now, ca_signed=ca_signed))


def _hours(span: dt.timedelta) -> str:
    hours = span / dt.timedelta(hours=1)
    return f"{span / dt.timedelta(minutes=1):.0f} min" if abs(hours) < 1 else f"{hours:.1f} h"


@dataclasses.dataclass(frozen=True, slots=True)
class ResponderFindings:
    """What `revoca status` says of the responder certificates: errors (a CA key OCSP answers
    tryLater for, having no valid responder certificate) and warnings (the last one ends soon)."""

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


def responder_coverage(engine: Engine, now: dt.datetime) -> list[ResponderCoverage]:
    with session_scope(engine, readonly=True) as session:
        return ReportingReads(session).responder_coverage(now)


def responder_certificates(engine: Engine, now: dt.datetime, *, warn_before: dt.timedelta,
                           ca_signed: bool = False) -> ResponderFindings:
    """Errors and warnings about each CA key's delegated responder certificates; none when the
    responders sign with the CA keys ([ocsp] ca_signed) and so use no responder certificate."""
    if ca_signed:
        return ResponderFindings()
    errors, warnings = [], []
    for c in responder_coverage(engine, now):
        key = f"{c.ca_name} (key generation {c.generation})"
        renew = f"`revoca ocsp renew --ca {c.ca_name}{'' if c.current_key else f' --key-generation {c.generation}'}`"
        if c.not_after is None:
            errors.append(f"OCSP for {key} has no valid responder certificate (expired, revoked or never issued): "
                          f"its queries are answered tryLater; run {renew}")
        elif c.not_after - now <= warn_before:
            days = (c.not_after - now) / dt.timedelta(days=1)
            warnings.append(f"the OCSP responder certificate {c.serial:x} of {key} ends {c.not_after:%Y-%m-%d %H:%MZ} "
                            f"(in {days:.0f} days) and none is valid after it: run {renew} before then")
    return ResponderFindings(tuple(errors), tuple(warnings))


def terminated_cas(engine: Engine) -> list[tuple[str, dt.datetime | None]]:
    """(name, when) of every CA ended by `revoca ca terminate` (seed 004 5.8): shown, never warned about."""
    from ca.enums import CAStatus
    from ca.storage.store import ReadStore

    with session_scope(engine, readonly=True) as session:
        return [(ca.name, _utc(ca.terminated_at)) for ca in ReadStore(session).cas()
                if ca.status is CAStatus.TERMINATED]


def newest_verified_backup(engine: Engine) -> dt.datetime | None:
    """When the newest backup that verified was made (ca.backup: restored into scratch and read)."""
    from ca import audit
    from ca.backup.ledger import VERIFIED
    from ca.storage.audit import AuditReads

    with session_scope(engine, readonly=True) as session:
        at = AuditReads(session).newest_time(VERIFIED, audit.SUCCESS)
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.UTC)


def backup_warnings(engine: Engine, now: dt.datetime, *, max_age: dt.timedelta) -> list[str]:
    """A warning when the newest verified backup is older than `max_age`.  An installation that has
    never made one is not warned about here (a new one makes its first within minutes of
    `revoca serve backup` starting; `revoca backup list` shows none)."""
    at = newest_verified_backup(engine)
    if at is None or now - at <= max_age:
        return []
    hours = (now - at) / dt.timedelta(hours=1)
    return [f"the newest verified backup is {hours:.0f} hours old ([backup] max_age_hours "
            f"{max_age / dt.timedelta(hours=1):.0f}): is `revoca serve backup` running? (`revoca backup create`)"]


def clock_ahead(engine: Engine) -> str:
    """The refusal line when the newest list signing was refused because the clock was ahead of the
    last NTP-confirmed time (`time.ahead`, ca.trusted_time.guard) and no list was issued since; "".

    Compared by position in the audit chain, not by time: the records' times come from the clock
    in doubt."""
    from ca import audit
    from ca.storage.audit import AuditReads
    from ca.trusted_time.guard import AHEAD_EVENT

    with session_scope(engine, readonly=True) as session:
        reads = AuditReads(session)
        refused = reads.newest_events(limit=1, event_type=AHEAD_EVENT)
        if not refused:
            return ""
        since = refused[0].seq
        issued = [e for e in reads.newest_events(limit=64, event_type="crl.issued")
                  if e.seq > since and e.result == audit.SUCCESS]
        if issued:
            return ""
        detail = json.loads(refused[0].detail or "{}")
    return str(detail.get("error") or "a list was refused: the clock is ahead of the last NTP-confirmed time")


@dataclasses.dataclass(frozen=True, slots=True)
class HeldList:
    """One CA's CRL or ARL as read back from the LDAP repository (repository.readback); number and
    next_update are None when the directory holds none (or nothing readable)."""

    ca_name: str
    list_type: ListType
    dn: str
    number: int | None
    next_update: dt.datetime | None

    def label(self) -> str:
        return f"{self.ca_name} {self.list_type.value.upper()}"


#: a list archived this long ago and not yet in the directory is an error, not a publication in progress
PUBLICATION_GRACE = dt.timedelta(minutes=15)


def published_list_findings(archived: list[ListStatus], held: list[HeldList], now: dt.datetime, *,
                            warn_before: dt.timedelta,
                            grace: dt.timedelta = PUBLICATION_GRACE) -> ResponderFindings:
    """Errors and warnings about what relying parties get from the directory (issue 15: the archive
    looked fine while the list in LDAP was about to expire).

    Errors: the directory's list has expired; or it holds an older number than the archive (or
    none) for longer than `grace` after that number was issued.  Warnings: it expires within
    `warn_before`.  (Whether the next round comes before the archive's newest list expires is
    ca.scheduler.expiry_warnings' question.)
    """
    newest = {(s.ca_name, s.list_type): s for s in archived}
    errors, warnings = [], []
    for h in held:
        at = f"in LDAP ({h.dn})"
        s = newest.get((h.ca_name, h.list_type))
        issued = _utc(s.this_update) if s is not None else None
        if s is not None and s.number is not None and (h.number is None or h.number < s.number) \
                and issued is not None and now - issued > grace:
            holds = f"#{h.number}" if h.number is not None else "no list"
            errors.append(f"{h.label()} {at}: the directory holds {holds}, older than the archive's #{s.number} "
                          f"issued {issued:%Y-%m-%d %H:%M:%SZ}: is `revoca serve publisher` running? "
                          "(`revoca repository queue`)")
        if h.next_update is None:
            continue
        if h.next_update <= now:
            errors.append(f"{h.label()} #{h.number} {at} expired at {h.next_update:%Y-%m-%d %H:%M:%SZ}: relying "
                          "parties cannot check revocation; issue and publish one now (`revoca crl issue`)")
            continue
        if h.next_update - now < warn_before:
            left = (h.next_update - now) / dt.timedelta(hours=1)
            warnings.append(f"{h.label()} #{h.number} {at} expires in {left:.1f} h (nextUpdate "
                            f"{h.next_update:%Y-%m-%d %H:%M:%SZ})")
    return ResponderFindings(tuple(errors), tuple(warnings))


@dataclasses.dataclass(frozen=True, slots=True)
class DeltaStatus:
    """One CA's newest delta CRL, as archived."""

    ca_name: str
    number: int
    this_update: dt.datetime
    next_update: dt.datetime


def delta_warn_before(crl: CRLConfig) -> dt.timedelta:
    """How close to its nextUpdate a delta CRL is warned about: the share of its validity that
    [crl] warn_hours is of a complete CRL's (1 h of 3 by default), and never more than half of
    what normal operation leaves (validity less period), so that only a missed delta warns."""
    share = crl.delta_validity * (crl.warn_hours / crl.validity_hours)
    return max(dt.timedelta(0), min(share, (crl.delta_validity - dt.timedelta(minutes=crl.delta_period_minutes)) / 2))


def newest_deltas(engine: Engine) -> list[DeltaStatus]:
    """Each CA's newest delta CRL (by number), bar terminated CAs (nothing more is issued for them)."""
    out = []
    with session_scope(engine, readonly=True) as session:
        store = ReadStore(session)
        for ca in store.cas():
            if ca.status is CAStatus.TERMINATED:
                continue
            row = store.newest_issued(ca.id, ListType.DELTA)
            if row is not None:
                this_update, next_update = _utc(row.this_update), _utc(row.next_update)
                assert this_update is not None and next_update is not None
                out.append(DeltaStatus(ca.name, row.number, this_update, next_update))
    return out


def delta_warnings(deltas: list[DeltaStatus], now: dt.datetime, *, warn_before: dt.timedelta) -> list[str]:
    """As ca.scheduler.expiry_warnings for complete lists: a CA's newest delta CRL expired, or
    with less than `warn_before` left (the scheduler issues one every [crl] delta_period_minutes)."""
    lines = []
    for d in deltas:
        label = f"{d.ca_name} delta CRL #{d.number}"
        if d.next_update <= now:
            lines.append(f"{label} expired at {d.next_update:%Y-%m-%d %H:%M:%SZ}: verifiers using delta CRLs "
                         "find none current; check that `revoca serve scheduler` runs and the HSM is activated "
                         "(`revoca crl issue --ca NAME --type delta`)")
        elif d.next_update - now < warn_before:
            lines.append(f"{label} expires in {_hours(d.next_update - now)} (nextUpdate "
                         f"{d.next_update:%Y-%m-%d %H:%M:%SZ}); check that `revoca serve scheduler` runs and the "
                         "HSM is activated")
    return lines


def _utc(at: dt.datetime | None) -> dt.datetime | None:
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.UTC)
