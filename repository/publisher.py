"""The publisher: drains the publication queue into the LDAP repository.

CRL/ARL rows are queued in the transaction that archives the list (ca.crl.issue), so LDAP
being down never blocks signing and never loses a list; certificate rows are queued here,
whenever what a CA entry should hold differs from what was last published.  Each round:

* takes the due rows, per CA and item only the newest (older ones become superseded);
* reads the entry first: a CRL/ARL with a higher number already there is never replaced
  (the row becomes superseded), the same number with the same bytes is simply recorded;
* writes with an assertion on the entryCSN it read, so a concurrent writer is noticed;
* reads the value back and compares its SHA-256 before calling the row published;
* creates a missing entry (and the containers above it), e.g. after a rollover moved a DN;
* on failure keeps the row, with the error and a back-off; when the directory is away it
  stops the round at once.

It also keeps the verifier accounts in step and copies slapd's access log into the
provision history, each at most every SIDE_WORK_EVERY.

`LdapPublisher` is the ca.publishing.Publisher that the CLI drives (through
repository.service.make_publisher); its `round` returns a `RoundReport`, a PublishRound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import ldap3
from asn1crypto import crl as asn1_crl

from ca import audit
from ca.audit.service_events import running
from ca.enums import ListType, PublicationItem, PublicationState
from ca.errors import RevocaError
from ca.storage.engine import Engine, session_scope
from ca.storage.leases import Lease
from ca.storage.publications import DueRow, PublicationReads, PublicationWrites
from ca.storage.retired_keys import RetiredKeyReads
from repository import entries
from repository.directory import (
    AssertionFailed,
    Directory,
    Endpoint,
    Entry,
    RepositoryError,
    RepositoryUnavailable,
)

log = logging.getLogger("revoca.publisher")

Clock = Callable[[], dt.datetime]

BACKOFF_FIRST = dt.timedelta(seconds=5)
BACKOFF_MAX = dt.timedelta(minutes=10)
POLL = 2.0  # seconds between rounds when idle: a fresh CRL is in the directory within about this
SIDE_WORK_EVERY = dt.timedelta(seconds=15)  # certificate reconciliation, verifier sync, access log
LIST_ATTR = {PublicationItem.CRL: entries.CRL_ATTR, PublicationItem.ARL: entries.ARL_ATTR,
             PublicationItem.DELTA: entries.DELTA_ATTR}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def backoff(attempts: int) -> dt.timedelta:
    """5 s, 10 s, 20 s ... at most 10 minutes."""
    return min(BACKOFF_FIRST * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


@dataclasses.dataclass
class RoundReport:
    published: list[str] = dataclasses.field(default_factory=list)  # one line per row published
    superseded: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)  # one line per failure
    unavailable: str | None = None  # why the directory could not be reached, if it could not
    side_errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and self.unavailable is None


class LdapPublisher:
    """The publisher of one directory (`endpoint`, bound as the rootdn) under `base_dn`."""

    def __init__(self, engine: Engine, endpoint: Endpoint, base_dn: str, data_dir: Path, *,
                 clock: Clock = utc_now, actor: str = "publisher",
                 side_work: Callable[[Directory, dt.datetime], list[str]] | None = None,
                 lease: Lease | None = None, fallbacks: Sequence[Endpoint] = ()) -> None:
        """`lease`: held while `run` works, so that one copy publishes at a time (default: the
        "publisher" lease of `engine`; ca.storage.leases).  `fallbacks`: the other providers of
        the same directory (mirror mode, [repository] providers), written to in turn when the
        one in use cannot be reached; the publisher stays on the one that answered."""
        self.engine = engine
        self.lease = lease or Lease(engine, "publisher")
        self.endpoint = endpoint
        self.endpoints = (endpoint, *fallbacks)
        self.base_dn = base_dn
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.actor = actor
        self.side_work = side_work
        self._last_side_work: dt.datetime | None = None
        self._recreated: set[int] = set()  # CAs whose entry this round had to create

    @property
    def uri(self) -> str:
        return self.endpoint.uri

    # -- rounds ------------------------------------------------------------------------------

    def round(self, now: dt.datetime | None = None, *, side_work: bool | None = None,
              retry_now: bool = False) -> RoundReport:
        """Publish everything due at `now`; `side_work` forces (or skips) reconciliation and sync.

        `retry_now` takes rows still backing off too (an operator asking for it by hand).
        """
        now = now or self.clock()
        report = RoundReport()
        if side_work is None:
            side_work = self._last_side_work is None or now - self._last_side_work >= SIDE_WORK_EVERY
        if side_work:
            self.reconcile_certificates(now)
        away: list[str] = []
        start = self.endpoints.index(self.endpoint)
        for endpoint in self.endpoints[start:] + self.endpoints[:start]:  # the one in use first, then the others
            try:
                self._round_at(endpoint, now, report, retry_now, side_work)
            except RepositoryUnavailable as exc:
                away.append(str(exc))
                continue
            if endpoint is not self.endpoint:
                log.warning("publishing to %s now (%s)", endpoint.uri, "; ".join(away))
                self.endpoint = endpoint
            break
        else:
            report.unavailable = "; ".join(away)
            self._directory_away(report.unavailable, now)
        report.superseded += self._supersede_older(now)
        for line in report.published:
            log.info("published %s", line)
        for line in report.failed:
            log.warning("not published: %s", line)
        if report.unavailable:
            log.warning("%s; the queue is kept and retried", report.unavailable)
        return report

    def _round_at(self, endpoint: Endpoint, now: dt.datetime, report: RoundReport, retry_now: bool,
                  side_work: bool) -> None:
        with Directory(endpoint) as directory:
            self._drain(directory, now, report, retry_now)
            if self._recreated:  # what the recreated entries lost was queued again: publish it now
                self._recreated.clear()
                self._drain(directory, now, report, retry_now)
            if side_work:
                self._last_side_work = now
                if self.side_work is not None:
                    report.side_errors.extend(self.side_work(directory, now))

    def _drain(self, directory: Directory, now: dt.datetime, report: RoundReport, retry_now: bool) -> None:
        for due in self._due(now, retry_now):
            try:
                line = self._publish(directory, due, now)
            except RepositoryUnavailable:
                raise
            except (RevocaError, OSError) as exc:
                self._failed(due, str(exc), now)
                report.failed.append(f"{due.ca_name} {due.item.value}: {exc}")
                continue
            if line is None:
                report.superseded += 1
            else:
                report.published.append(line)

    def run(self, stop: threading.Event, poll: float = POLL) -> None:
        """Rounds until `stop` is set, while this copy holds the publisher lease (the others stand
        by and take over when it goes); a round that fails unexpectedly is logged and retried.
        Its start and stop are audited (ca.audit.service_events)."""
        with running(self.engine, "publisher", directory=self.uri):
            self._run(stop, poll)

    def _run(self, stop: threading.Event, poll: float) -> None:
        state = "starting"  # starting, leading or standing by
        try:
            while not stop.is_set():
                if not self.lease.try_acquire():
                    if state != "standing by":
                        log.info("another publisher holds the lease; standing by")
                        state = "standing by"
                    stop.wait(poll)
                    continue
                if state != "leading":
                    if state == "standing by":
                        log.warning("took over the publisher lease")
                    self.requeue_newest(self.clock())  # what a previous holder may have left half done
                    state = "leading"
                try:
                    self.round()
                except Exception:  # the database went away, say: keep the service up
                    log.exception("publisher round failed; retrying")
                stop.wait(poll)
        finally:
            self.lease.release()

    # -- the queue ---------------------------------------------------------------------------

    def requeue_newest(self, now: dt.datetime, *, ca_id: int | None = None) -> int:
        """Queue every CA's (or one CA's) newest CRL and ARL and certificates again.

        For a directory restored from backup, new, or an entry deleted behind revoca's back.
        Cheap when the directory already holds them: publishing compares and writes nothing.
        """
        count = 0
        with session_scope(self.engine) as session:
            store = PublicationWrites(session)
            for ca in store.published_cas():
                if (ca_id is None or ca.id == ca_id) and not store.certificates_pending(ca.id):
                    wanted = entries.certificate_set(store, ca, self.base_dn, now=now)
                    store.enqueue_publication(ca_id=ca.id, item=PublicationItem.CERTIFICATES, sha256=wanted.digest,
                                              now=now)
                    count += 1
            for (list_ca_id, list_type), row in store.latest_issued_crls().items():
                if ca_id is not None and list_ca_id != ca_id:
                    continue
                item = PublicationItem(list_type.value)
                if not store.list_pending(list_ca_id, item, number_at_least=row.number):
                    store.enqueue_publication(ca_id=list_ca_id, item=item, sha256=row.sha256, issued_crl_id=row.id,
                                              number=row.number, now=now)
                    count += 1
        return count

    def reconcile_certificates(self, now: dt.datetime) -> int:
        """Queue a certificate publication for each CA whose entry should differ from what was published."""
        queued = 0
        with session_scope(self.engine) as session:
            store = PublicationWrites(session)
            for ca in store.published_cas():
                wanted = entries.certificate_set(store, ca, self.base_dn, now=now)
                last = store.last_certificates_publication(ca.id)
                if last is not None and last.sha256 == wanted.digest and (
                        last.state is PublicationState.PENDING or last.dn == wanted.dn):
                    continue
                store.enqueue_publication(ca_id=ca.id, item=PublicationItem.CERTIFICATES, sha256=wanted.digest,
                                          now=now)
                queued += 1
        return queued

    def _due(self, now: dt.datetime, retry_now: bool = False) -> list[DueRow]:
        """The newest due row per CA and item (older pending ones wait to be superseded)."""
        with session_scope(self.engine, readonly=True) as session:
            rows = PublicationReads(session).due(now, retry_now=retry_now)
        newest: dict[tuple[int, PublicationItem], DueRow] = {}
        for row in rows:
            key = (row.ca_id, row.item)
            have = newest.get(key)
            if have is None or _newer(row, have):
                newest[key] = row
        # certificates first: a new CA's entry then exists with its certificates before its lists
        return sorted(newest.values(), key=lambda d: (d.item is not PublicationItem.CERTIFICATES, d.id))

    def _supersede_older(self, now: dt.datetime) -> int:
        """Pending rows older than a published row of the same CA and item will never be needed."""
        with session_scope(self.engine) as session:
            return PublicationWrites(session).supersede_older()

    def _failed(self, due: DueRow, error: str, now: dt.datetime) -> None:
        with session_scope(self.engine) as session:
            PublicationWrites(session).record_failure(due.id, error=error[:2000],
                                                      next_attempt_at=now + backoff(due.attempts + 1))
            audit.record(session, "repository.publish", actor=self.actor, at=now, result="failure",
                         ca=due.ca_name, item=due.item.value, number=due.number, error=error[:500])

    def _directory_away(self, error: str, now: dt.datetime) -> None:
        """Every due row waits for the directory, with one back-off (not one attempt per row)."""
        with session_scope(self.engine) as session:
            store = PublicationWrites(session)
            attempts = store.most_due_attempts(now)
            if attempts is None:
                return
            store.postpone_due(now, error=error[:2000], next_attempt_at=now + backoff(attempts + 1))

    def _done(self, due: DueRow, *, state: PublicationState, dn: str, sha256: bytes, now: dt.datetime,
              note: str = "", csn: str | None = None) -> None:
        with session_scope(self.engine) as session:
            PublicationWrites(session).record_outcome(due.id, state=state, dn=dn, sha256=sha256, now=now, note=note,
                                                      csn=csn)
            if state is PublicationState.PUBLISHED:
                audit.record(session, "repository.published", actor=self.actor, at=now, ca=due.ca_name,
                             item=due.item.value, number=due.number, dn=dn, sha256=sha256.hex())

    # -- writing one row -----------------------------------------------------------------------

    def _publish(self, directory: Directory, due: DueRow, now: dt.datetime) -> str | None:
        """Publish one row; the line for the log, or None when it was superseded."""
        with session_scope(self.engine, readonly=True) as session:
            store = PublicationReads(session)
            ca = store.ca_by_id(due.ca_id)
            if due.item is PublicationItem.CERTIFICATES:
                wanted = entries.certificate_set(store, ca, self.base_dn, now=now)
                dn = wanted.dn
            else:
                dn = entries.ca_entry_dn(ca, self.base_dn)
        for attempt in range(3):
            try:
                if due.item is PublicationItem.CERTIFICATES:
                    return self._publish_certificates(directory, due, wanted, now)
                return self._publish_list(directory, due, dn, now)
            except AssertionFailed:
                if attempt == 2:
                    raise
                log.info("%s changed while publishing; reading it again", dn)
        raise AssertionError("unreachable")

    def _entry(self, directory: Directory, due: DueRow, dn: str, attrs: tuple[str, ...],
               now: dt.datetime) -> tuple[Entry, set[str]]:
        """The entry (created when missing) with `attrs`, and the names of all attributes it has."""
        entry = directory.read(dn, attrs)
        if entry is None:
            directory.ensure_parents(dn, self.base_dn)
            directory.add(dn, entries.STRUCTURAL, {"cn": entries.entry_cn(dn)})
            log.info("created the directory entry %s; queueing everything it should hold", dn)
            # the row being published and whatever is still pending stay; the rest is queued again
            self.requeue_newest(now, ca_id=due.ca_id)
            self._recreated.add(due.ca_id)
            entry = directory.read(dn, attrs)
            if entry is None:
                raise RepositoryError(f"LDAP entry {dn} vanished right after it was created")
        present = directory.attribute_types(dn)
        return entry, present

    def _class_change(self, entry_classes: set[str], present: set[str], written: dict[str, bool]) -> list:
        """objectClass changes so that certificationAuthority is there exactly when its MUSTs are."""
        after = set(present)
        for name, has_values in written.items():
            (after.add if has_values else after.discard)(name)
        want = entries.FULL_CA_REQUIRES <= after
        have = entries.FULL_CA_CLASS.lower() in entry_classes
        if want and not have:
            return [(ldap3.MODIFY_ADD, [entries.FULL_CA_CLASS])]
        if have and not want:
            return [(ldap3.MODIFY_DELETE, [entries.FULL_CA_CLASS])]
        return []

    def _publish_list(self, directory: Directory, due: DueRow, dn: str, now: dt.datetime) -> str | None:
        attr = LIST_ATTR[due.item]
        label = f"{due.ca_name} {due.item.value.upper()} #{due.number}"
        if due.path is None:
            raise RepositoryError(f"{label}: no archived file recorded")
        data = (self.data_dir / due.path).read_bytes()
        if hashlib.sha256(data).digest() != due.sha256:
            raise RepositoryError(f"{label}: the archived file {due.path} does not match its recorded SHA-256; "
                                  "not publishing it (check the archive)")
        # beside it, each retired key's own newest list (ca.crl.old_keys): clients that trust only the
        # old self-signed certificate check its certificates with that one
        beside = self._retired_lists(due, now)
        entry, present = self._entry(directory, due, dn, ("objectClass",), now)
        there, digest = self._current_list(directory, due, dn, attr, entry.csn, present)
        if there is not None and due.number is not None and there > due.number:
            self._done(due, state=PublicationState.SUPERSEDED, dn=dn, sha256=due.sha256, now=now,
                       note=f"the directory already holds #{there}")
            log.info("%s not published: the directory already holds #%d", label, there)
            return None
        if there == due.number and digest == due.sha256:
            self._done(due, state=PublicationState.PUBLISHED, dn=dn, sha256=due.sha256, now=now,
                       note="already in the directory", csn=entry.csn)
            return f"{label} at {dn} (already there)"
        classes = {v.decode().lower() for v in entry.values("objectClass")}
        changes: dict[str, list] = {attr: [(ldap3.MODIFY_REPLACE, [data, *beside.values()])]}
        class_change = self._class_change(classes, present, {attr.split(";")[0].lower(): True})
        if class_change:
            changes["objectClass"] = class_change
        directory.modify(dn, changes, if_csn=entry.csn)
        del changes, data  # a 40 MB CRL is held once at a time, not three times
        back = directory.read_large(dn, (attr,))
        got = sorted(hashlib.sha256(v).digest() for v in back.values(attr)) if back else []
        if got != sorted([due.sha256, *beside]):
            raise RepositoryError(f"{label}: read back from {dn} differs from what was written")
        self._done(due, state=PublicationState.PUBLISHED, dn=dn, sha256=due.sha256, now=now,
                   csn=back.csn if back else None)
        return f"{label} at {dn} ({due_size(self.data_dir, due)} bytes, read back and compared)"

    def _retired_lists(self, due: DueRow, now: dt.datetime) -> dict[bytes, bytes]:
        """SHA-256 -> bytes of the retired keys' lists to publish beside `due` (CRL and ARL only);
        a file that is missing or differs from its archive row is left out (logged)."""
        if due.item not in (PublicationItem.CRL, PublicationItem.ARL):
            return {}
        with session_scope(self.engine, readonly=True) as session:
            rows = RetiredKeyReads(session).retired_lists(due.ca_id, ListType(due.item.value), now)
        beside: dict[bytes, bytes] = {}
        for path, sha256 in rows:
            if sha256 == due.sha256:  # the list due is itself a retired key's newest (just after a rollover)
                continue
            data = _read_beside(self.data_dir, path, sha256)
            if data is None:
                log.warning("%s: the retired key's list %s is missing or differs from its archive row; "
                            "not published beside the current one", due.ca_name, path)
            else:
                beside[sha256] = data
        return beside

    def _current_list(self, directory: Directory, due: DueRow, dn: str, attr: str, csn: str | None,
                      present: set[str]) -> tuple[int | None, bytes | None]:
        """The number and SHA-256 of the CRL/ARL in the entry now (`present`: the attribute types it has).

        When the entry still has the entryCSN revoca recorded after its own last write there,
        the database knows the answer; only otherwise is the value read (it may be 40 MB).  An
        entry without the attribute holds no list, whatever the database says: after a directory
        is rebuilt, revoca creates the entry again and writes its certificates first, so the
        entryCSN is revoca's own while the list published into the old directory is gone.
        """
        if attr.split(";", 1)[0].lower() not in present:
            return None, None
        with session_scope(self.engine, readonly=True) as session:
            store = PublicationReads(session)
            if csn is not None and csn == store.last_csn(dn):
                return store.last_published_list(due.ca_id, due.item, dn) or (None, None)
        entry = directory.read_large(dn, (attr,))
        values = entry.values(attr) if entry else []
        if not values:
            return None, None
        newest = max(values, key=lambda v: _crl_number(v) or 0)  # a retired key's list sits beside it
        return _crl_number(newest), hashlib.sha256(newest).digest()

    def _publish_certificates(self, directory: Directory, due: DueRow, wanted: entries.CertificateSet,
                              now: dt.datetime) -> str:
        dn = wanted.dn
        label = f"{due.ca_name} certificates"
        attrs = (entries.CA_CERT_ATTR, entries.PAIR_ATTR, "objectClass")
        entry, present = self._entry(directory, due, dn, attrs, now)
        have = (entry.values(entries.CA_CERT_ATTR), entry.values(entries.PAIR_ATTR))
        line = f"{label} at {dn} ({len(wanted.ca_certificates)} CA certificates, {len(wanted.pairs)} cross pairs)"
        if entries.certificate_set_digest(*have) != wanted.digest:
            changes: dict[str, list] = {
                entries.CA_CERT_ATTR: [(ldap3.MODIFY_REPLACE, list(wanted.ca_certificates))],
                entries.PAIR_ATTR: [(ldap3.MODIFY_REPLACE, list(wanted.pairs))],
            }
            classes = {v.decode().lower() for v in entry.values("objectClass")}
            class_change = self._class_change(classes, present, {"cacertificate": bool(wanted.ca_certificates)})
            if class_change:
                changes["objectClass"] = class_change
            directory.modify(dn, changes, if_csn=entry.csn)
            back = directory.read(dn, attrs[:2])
            got = (back.values(entries.CA_CERT_ATTR), back.values(entries.PAIR_ATTR)) if back else ([], [])
            if entries.certificate_set_digest(*got) != wanted.digest:
                raise RepositoryError(f"{label}: read back from {dn} differs from what was written")
            csn = back.csn if back else None
        else:
            line += " (already there)"
            csn = entry.csn
        # the row records the set actually published (it may be newer than the one queued)
        self._done(due, state=PublicationState.PUBLISHED, dn=dn, sha256=wanted.digest, now=now, csn=csn)
        return line


def _read_beside(data_dir: Path, path: str, sha256: bytes) -> bytes | None:
    try:
        data = (data_dir / path).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).digest() == sha256 else None


def due_size(data_dir: Path, due: DueRow) -> int:
    return (data_dir / due.path).stat().st_size if due.path else 0


def _newer(pub: DueRow, than: DueRow) -> bool:
    if pub.item is PublicationItem.CERTIFICATES:
        return pub.id > than.id
    return (pub.number or 0) > (than.number or 0)


def _crl_number(der: bytes) -> int | None:
    """The CRL number of a CRL/ARL in the directory (None when unreadable or absent)."""
    try:
        return asn1_crl.CertificateList.load(der).crl_number_value.native
    except Exception:  # whatever sits in the directory, it must not stop publication
        return None
