"""`revoca crl import-history`: an adopted CA's revocations, exactly as its previous system had them.

Sources, per CA: the previous system's last CRL (required: it carries the number revoca's
lists continue from), its last ARL, and optionally an `openssl ca` index.txt or a CSV export
(revocations that had left the CRL, e.g. of expired certificates).  Each CRL/ARL must verify
under the adopted CA's self-signed certificate, name it as issuer and carry its key
identifier, before a single entry is looked at.

Two passes, so that everything is checked before anything is stored, in bounded memory:

1. check: every entry of every source is read (ca.adoption.crl_reader / exports) and staged in
   a scratch SQLite file beside the data directory, keyed by serial; then the staged serials
   are merged, in serial order, with the CA's stored revocations and certificates (two ordered
   streams from ca.storage.adoption).  An entry revoca cannot carry (a sixth reason, no
   reasonCode, ...), one serial given twice with different dates or reasons, a serial the
   database holds revoked otherwise, or one whose certificate belongs on the other list, is
   named and refused, and then nothing at all is imported.
2. import: the staged entries the database lacks go into it in batches of `BATCH`, each batch
   one committed transaction.  OCSP answers each batch's revocations as soon as it commits.  An
   interrupted import is simply run again: pass 1 finds the rows already stored identical, pass
   2 adds the rest.

Last, in one transaction: each list is archived as an issued list of the CA (its file copied
under crls/<ca>/<crl|arl>/<number>.crl, queued for the LDAP repository, since it is the
current list until revoca issues the next), each counter is raised to the imported number so
that revoca's next list is numbered above it, and once the CRL and the ARL (or the operators'
word that there was no ARL) are in, the CA leaves ADOPTING and issues its lists.  Audited:
the import and every refusal, with counts; one record per list, not per entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509

from ca import audit
from ca.adoption.crl_reader import CRLFile, Entry, RefusedEntry
from ca.adoption.exports import ExportedEntry, read_csv, read_index
from ca.crl.issue import relative_directory, relative_path
from ca.der import encoding as der
from ca.enums import CAKind, CAStatus, ListType, PublicationItem
from ca.errors import AlreadyExists, InvalidInput, RevocaError
from ca.revocation.workflow import list_type_for
from ca.storage.adoption import AdoptionStore
from ca.storage.engine import Engine, session_scope

BATCH = 5000
SHOWN = 3  # refusals named in the error line; all of them go to the report file

# A progress bar: progress(label, length) gives a context whose value advances it by n.
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], object]]]


@contextlib.contextmanager
def no_progress(_label: str, _length: int) -> Iterator[Callable[[int], object]]:
    yield lambda _n: None


@dataclasses.dataclass(frozen=True, slots=True)
class HistorySources:
    crl: Path
    arl: Path | None = None
    index: Path | None = None
    csv: Path | None = None
    no_previous_arl: bool = False  # the operators' word that the previous system issued no ARL

    def __post_init__(self) -> None:
        if self.arl is not None and self.no_previous_arl:
            raise InvalidInput("give the last ARL (--arl) or say there was none (--no-previous-arl), not both")


@dataclasses.dataclass(frozen=True, slots=True)
class ImportedList:
    list_type: ListType
    number: int
    entries: int
    archived_now: bool  # False: the same list was archived by an earlier run


@dataclasses.dataclass(frozen=True, slots=True)
class HistoryReport:
    ca: str
    lists: tuple[ImportedList, ...]
    entries: int  # distinct revocations in the sources
    added: int  # stored by this run
    activated: bool  # the CA issues lists from now on
    adopting: bool  # still waiting for its ARL

    def lines(self) -> list[str]:
        out = [f"{self.ca} {x.list_type.value.upper()} #{x.number}: {x.entries} entries"
               + ("" if x.archived_now else " (archived already)") for x in self.lists]
        out.append(f"{self.ca}: {self.entries} revocations in the history, {self.added} added now, "
                   f"{self.entries - self.added} already stored")
        if self.activated:
            out.append(f"{self.ca}: adoption complete; its next CRL and ARL are numbered above the imported ones")
        elif self.adopting:
            out.append(f"{self.ca}: still being adopted: import its last ARL (--arl), or say it had none "
                       "(--no-previous-arl); until then it issues no list")
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class _CA:
    id: int
    name: str
    status: CAStatus
    key_id: int
    ski: bytes
    certificate: x509.Certificate
    subject: bytes  # DER of the self-signed certificate's subject


@dataclasses.dataclass(slots=True)
class _Refusals:
    path: Path | None
    shown: list[str] = dataclasses.field(default_factory=list)
    count: int = 0
    _file: object = None

    def add(self, source: Path, line: str) -> None:
        self.count += 1
        text = f"{source.name}: {line}"
        if len(self.shown) < SHOWN:
            self.shown.append(text)
        if self.path is not None:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
                self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 -- closed in close()
            self._file.write(text + "\n")  # type: ignore[attr-defined]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]


def import_history(engine: Engine, data_dir: Path, ca_name: str, sources: HistorySources, *, actor: str,
                   now: dt.datetime | None = None, progress: Progress = no_progress,
                   batch: int = BATCH) -> HistoryReport:
    """Import one adopted CA's revocation history (see the module docstring); audited either way."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        return _import(engine, Path(data_dir), ca_name, sources, actor=actor, now=now, progress=progress,
                       batch=batch)
    except BaseException as exc:  # refused, or stopped half-way (what was stored stays: run it again)
        error = str(exc) if isinstance(exc, RevocaError) else f"interrupted: {type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):  # the original error matters more than its record
            audit.record_failure(engine, "crl.history_imported", actor=actor, error=error, ca=ca_name,
                                 crl=str(sources.crl), arl=str(sources.arl) if sources.arl else None)
        raise


def _import(engine: Engine, data_dir: Path, ca_name: str, sources: HistorySources, *, actor: str,
            now: dt.datetime, progress: Progress, batch: int) -> HistoryReport:
    ca = _the_ca(engine, ca_name)
    relative_directory(ca_name, ListType.CRL)  # a name that can name files
    work = data_dir / "adoption"
    work.mkdir(parents=True, exist_ok=True, mode=0o750)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_import_lock(work / f"{ca_name}.lock"))  # one import per CA at a time
        lists = [(ListType.CRL, stack.enter_context(CRLFile(sources.crl)))]
        if sources.arl is not None:
            lists.append((ListType.ARL, stack.enter_context(CRLFile(sources.arl))))
        archived = _archived(engine, ca)
        digests = {}
        for list_type, crl in lists:
            digests[list_type] = _check_list(ca, list_type, crl, archived, progress)
        scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix=f".{ca_name}-", dir=work))
        staging = stack.enter_context(contextlib.closing(_Staging(Path(scratch) / "staged.db")))
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        refusals = _Refusals(work / f"{ca_name}-refused-{stamp}.txt")
        stack.callback(refusals.close)
        counts: dict[ListType, int] = {}
        for list_type, crl in lists:
            with progress(f"checking {crl.path.name}", crl.header.entries_end - crl.header.entries_start) as advance:
                entries = _with_list(_advancing(crl, advance), list_type)
                counts[list_type] = _stage(staging, crl.path, entries, refusals, batch, list_type=list_type)
        for path, reader in ((sources.index, read_index), (sources.csv, read_csv)):
            if path is not None:
                with progress(f"checking {path.name}", path.stat().st_size) as advance:
                    _stage(staging, path, _exported(reader(path, advance)), refusals, batch)
        for source, line in staging.unresolved():
            refusals.add(Path(source), line)
        new = _compare(engine, ca, staging, refusals, progress=progress, batch=batch)
        if refusals.count:
            more = f"; all {refusals.count} are listed in {refusals.path}" if refusals.count > SHOWN else ""
            raise InvalidInput(f"{ca_name}: {refusals.count} entr{'y' if refusals.count == 1 else 'ies'} refused, "
                               f"nothing imported: {'; '.join(refusals.shown)}{more}")
        if ca.status is not CAStatus.ADOPTING and (new or any(not d[1] for d in digests.values())):
            raise AlreadyExists(f"CA {ca_name} issues its own lists ({ca.status}): a history is imported only while "
                                f"a CA is being adopted, and this one would add {new} entries or another list; "
                                "nothing imported")
        added = _store(engine, ca, staging, now=now, progress=progress, batch=batch)
        imported = _finish(engine, data_dir, ca, lists, digests, counts, sources, added=added, now=now, actor=actor)
        activated = ca.status is CAStatus.ADOPTING and _complete(lists, sources)
        return HistoryReport(ca=ca_name, lists=imported, entries=staging.count(), added=added,
                             activated=activated, adopting=ca.status is CAStatus.ADOPTING and not activated)


@contextlib.contextmanager
def _import_lock(path: Path) -> Iterator[None]:
    with open(os.open(path, os.O_RDONLY | os.O_CREAT, 0o660), "rb") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise AlreadyExists(f"another history import for this CA is running (it holds {path}); wait for it"
                                ) from exc
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _the_ca(engine: Engine, name: str) -> _CA:
    with session_scope(engine, readonly=True) as session:
        store = AdoptionStore(session)
        ca = store.ca(name)
        if ca.kind is CAKind.EXTERNAL:
            raise InvalidInput(f"CA {name} is external: revoca keeps no revocations for it")
        key = store.crl_signing_key(ca)
        own = store.self_signed_der(ca, key)
        return _CA(id=ca.id, name=ca.name, status=ca.status, key_id=key.id, ski=key.ski,
                   certificate=x509.load_der_x509_certificate(own), subject=der.certificate_subject(own))


def _archived(engine: Engine, ca: _CA) -> dict[tuple[ListType, int], bytes]:
    with session_scope(engine, readonly=True) as session:
        store = AdoptionStore(session)
        return {(row.list_type, row.number): row.sha256 for row in store.issued_crls(ca=store.ca(ca.name))}


def _check_list(ca: _CA, list_type: ListType, crl: CRLFile, archived: dict[tuple[ListType, int], bytes],
                progress: Progress) -> tuple[bytes, bool]:
    """The list's SHA-256, and whether it is archived already; InvalidInput unless it is the CA's own."""
    h, name = crl.header, crl.path.name
    label = list_type.value.upper()
    if h.delta:
        raise InvalidInput(f"{name} is a delta CRL; import the CA's last full {label}")
    if h.number is None:
        raise InvalidInput(f"{name} carries no cRLNumber, so revoca's numbers could not continue from it")
    if h.next_update is None:
        raise InvalidInput(f"{name} has no nextUpdate (RFC 5280 5.1.2.5)")
    if (list_type is ListType.CRL and h.only_ca_certs) or (list_type is ListType.ARL and h.only_user_certs):
        raise InvalidInput(f"{name} is marked as {'an ARL' if h.only_ca_certs else 'a CRL'} (issuingDistribution"
                           f"Point) but was given as the {label}")
    if asn1_x509.Name.load(h.issuer) != asn1_x509.Name.load(ca.subject):
        raise InvalidInput(f"{name} is issued by {asn1_x509.Name.load(h.issuer).human_friendly}, not by CA {ca.name} "
                           f"({ca.certificate.subject.rfc4514_string()}); nothing imported")
    if h.authority_key_id is not None and h.authority_key_id != ca.ski:
        raise InvalidInput(f"{name} names another key (authorityKeyIdentifier {h.authority_key_id.hex()}) than CA "
                           f"{ca.name}'s adopted key ({ca.ski.hex()}); nothing imported")
    with progress(f"verifying {name}", 1) as advance:
        crl.verify(ca.certificate.public_key(), who=f"CA {ca.name}'s adopted certificate")
        sha256 = crl.sha256()
        advance(1)
    known = archived.get((list_type, h.number))
    if known is not None and known != sha256:
        raise AlreadyExists(f"another {label} numbered {h.number} of CA {ca.name} is archived already; nothing "
                            "imported")
    return sha256, known is not None


def _advancing(crl: CRLFile, advance: Callable[[int], object]) -> Iterator[Entry | RefusedEntry]:
    done = crl.header.entries_start
    for item in crl.entries():
        advance(crl.position - done)
        done = crl.position
        yield item


def _with_list(items: Iterable[Entry | RefusedEntry], list_type: ListType
               ) -> Iterator[tuple[Entry, ListType] | RefusedEntry]:
    for item in items:
        yield item if isinstance(item, RefusedEntry) else (item, list_type)


def _exported(items: Iterable[ExportedEntry | RefusedEntry]) -> Iterator[tuple[Entry, ListType] | RefusedEntry]:
    for item in items:
        yield item if isinstance(item, RefusedEntry) else (item.entry, item.list_type)


def _batches(items: Iterable[tuple[Entry, ListType] | RefusedEntry], size: int
             ) -> Iterator[list[tuple[Entry, ListType] | RefusedEntry]]:
    chunk: list[tuple[Entry, ListType] | RefusedEntry] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _hex(serial: int) -> str:
    return format(serial, "042x")  # fixed width: text order is numeric order, up to 161 bits


class _Staging:
    """The entries of one import in a scratch SQLite file, by serial: memory stays flat at a million.

    A scratch file of this run, deleted with it; not revoca's database (which only ca.storage
    touches): what it holds is checked input, not records.  `present`: the database holds the
    same revocation already; `certificate_id`: the certificate row it revokes, when revoca has it."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE staged (id INTEGER PRIMARY KEY, serial TEXT NOT NULL UNIQUE, list TEXT NOT NULL,"
            " revoked_at TEXT NOT NULL, reason INTEGER NOT NULL, der BLOB NOT NULL, source TEXT NOT NULL,"
            " present INTEGER NOT NULL DEFAULT 0, certificate_id INTEGER);"
            "CREATE TABLE unreasoned (serial TEXT NOT NULL, list TEXT NOT NULL, revoked_at TEXT NOT NULL,"
            " source TEXT NOT NULL, line TEXT NOT NULL)")

    def close(self) -> None:
        self._db.close()

    def staged(self, serials: Sequence[int]) -> dict[int, tuple[ListType, dt.datetime, int, str]]:
        found: dict[int, tuple[ListType, dt.datetime, int, str]] = {}
        for i in range(0, len(serials), 500):
            chunk = [_hex(s) for s in serials[i:i + 500]]
            rows = self._db.execute(f"SELECT serial, list, revoked_at, reason, source FROM staged WHERE serial IN "
                                    f"({','.join('?' * len(chunk))})", chunk)
            for serial, kind, when, reason, source in rows:
                found[int(serial, 16)] = (ListType(kind), dt.datetime.fromisoformat(when), reason, source)
        return found

    def add(self, rows: list[tuple[Entry, ListType]], source: str) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO staged (serial, list, revoked_at, reason, der, source) VALUES "
                             "(?, ?, ?, ?, ?, ?)",
                             [(_hex(e.serial), t.value, e.revocation_time.isoformat(), e.reason, e.der, source)
                              for e, t in rows])
        self._db.execute("COMMIT")

    def defer(self, refused: RefusedEntry, list_type: ListType, source: Path) -> None:
        """A list's entry without reasonCode: acceptable only if an export gives its reason (`unresolved`)."""
        assert refused.serial is not None and refused.unreasoned_at is not None
        self._db.execute("INSERT INTO unreasoned VALUES (?, ?, ?, ?, ?)", (
            _hex(refused.serial), list_type.value, refused.unreasoned_at.isoformat(), str(source), refused.line()))

    def unresolved(self) -> Iterator[tuple[str, str]]:
        """(source, refusal line) of the entries without reasonCode that no export entry of the same
        serial, date and list gives a reason for."""
        rows = self._db.execute(
            "SELECT u.source, u.line FROM unreasoned u LEFT JOIN staged s ON s.serial = u.serial "
            "AND s.list = u.list AND s.revoked_at = u.revoked_at WHERE s.id IS NULL ORDER BY u.rowid")
        yield from rows.fetchall()

    def by_serial(self, size: int) -> Iterator[tuple[int, int, ListType, dt.datetime, int, str]]:
        """(row id, serial, list, time, reason, source) in serial order, `size` rows per query (no
        cursor stays open while `mark` writes)."""
        after = ""
        while rows := self._db.execute("SELECT id, serial, list, revoked_at, reason, source FROM staged "
                                       "WHERE serial > ? ORDER BY serial LIMIT ?", (after, size)).fetchall():
            after = rows[-1][1]
            for row_id, serial, kind, when, reason, source in rows:
                yield row_id, int(serial, 16), ListType(kind), dt.datetime.fromisoformat(when), reason, source

    def mark(self, updates: list[tuple[int, int | None, int]]) -> None:
        """(present, certificate id, row id) for rows the database knows something about."""
        if updates:
            self._db.execute("BEGIN")
            self._db.executemany("UPDATE staged SET present = ?, certificate_id = ? WHERE id = ?", updates)
            self._db.execute("COMMIT")

    def count(self, *, pending: bool = False) -> int:
        sql = "SELECT COUNT(*) FROM staged" + (" WHERE present = 0" if pending else "")
        return int(self._db.execute(sql).fetchone()[0])

    def pending(self, size: int) -> Iterator[list[tuple[int, ListType, dt.datetime, int, bytes, int | None]]]:
        """The rows the database lacks, in the order they were read, `size` at a time."""
        after = 0
        while rows := self._db.execute("SELECT id, serial, list, revoked_at, reason, der, certificate_id FROM staged "
                                       "WHERE id > ? AND present = 0 ORDER BY id LIMIT ?", (after, size)).fetchall():
            after = rows[-1][0]
            yield [(int(s, 16), ListType(k), dt.datetime.fromisoformat(w), r, d, c) for _, s, k, w, r, d, c in rows]


def _stage(staging: _Staging, source: Path, items: Iterable[tuple[Entry, ListType] | RefusedEntry],
           refusals: _Refusals, batch: int, *, list_type: ListType | None = None) -> int:
    """Pass 1a for one source: its entries staged, each serial once; how many were read.  For a
    list (`list_type`), an entry without reasonCode waits for an export to give its reason."""
    read = 0
    for chunk in _batches(items, batch):
        fresh: dict[int, tuple[Entry, ListType]] = {}
        for item in chunk:
            if isinstance(item, RefusedEntry):
                if item.unreasoned_at is not None and list_type is not None:
                    staging.defer(item, list_type, source)
                    read += 1
                else:
                    refusals.add(source, item.line())
                continue
            read += 1
            entry, list_type = item
            first = fresh.get(entry.serial)
            if first is None:
                fresh[entry.serial] = item
            elif _differs(first[0], first[1], entry.revocation_time, entry.reason, list_type):
                refusals.add(source, f"serial {entry.serial:#x}: listed twice, with different dates or reasons")
        staged = staging.staged(list(fresh))
        rows: list[tuple[Entry, ListType]] = []
        for serial, (entry, list_type) in fresh.items():
            if serial in staged:
                kind, when, reason, where = staged[serial]
                if _differs(entry, list_type, when, reason, kind):
                    refusals.add(source, f"serial {serial:#x}: {where} gives another date, reason or list for it")
                continue
            rows.append((entry, list_type))
        staging.add(rows, source.name)
    return read


class _Sorted:
    """One of the database's serial-ordered streams, advanced as the staged serials go up."""

    def __init__(self, rows: Iterator[tuple[Any, ...]]) -> None:
        self._rows = rows
        self._head = next(rows, None)

    def find(self, serial: int) -> tuple[Any, ...] | None:
        while self._head is not None and self._head[0] < serial:
            self._head = next(self._rows, None)
        return self._head if self._head is not None and self._head[0] == serial else None


def _compare(engine: Engine, ca: _CA, staging: _Staging, refusals: _Refusals, *, progress: Progress,
             batch: int) -> int:
    """Pass 1b: the staged entries against what the database holds (a merge of three serial-ordered
    streams); refusals for contradictions; how many entries the database lacks."""
    new = 0
    updates: list[tuple[int, int | None, int]] = []
    with progress("comparing", staging.count()) as advance, session_scope(engine, readonly=True) as session:
        store = AdoptionStore(session)
        stored_rows = _Sorted(store.revocation_stream(ca.id))
        certificates = _Sorted(store.certificate_stream(ca.id))
        for n, (row_id, serial, list_type, when, reason, source) in enumerate(staging.by_serial(batch), start=1):
            stored = stored_rows.find(serial)
            certificate = certificates.find(serial)
            if stored is not None and (stored[1], stored[2], stored[3]) != (when, reason, list_type):
                refusals.add(Path(source), f"serial {serial:#x}: revoca holds it revoked on "
                                           f"{stored[1]:%Y-%m-%d %H:%M:%SZ} with reason {stored[2]} "
                                           f"({stored[3].value.upper()}); the history says otherwise")
                continue
            if certificate is not None and list_type_for(certificate[2]) is not list_type:
                refusals.add(Path(source), f"serial {serial:#x} is a {certificate[2].value} certificate revoca holds, "
                                           f"which belongs on the {list_type_for(certificate[2]).value.upper()}, "
                                           f"not the {list_type.value.upper()}")
                continue
            new += stored is None
            if stored is not None or certificate is not None:
                updates.append((int(stored is not None), certificate[1] if certificate is not None else None, row_id))
            if len(updates) >= batch:
                staging.mark(updates)
                updates = []
            if n % batch == 0:
                advance(batch)
    staging.mark(updates)
    return new


def _differs(entry: Entry, list_type: ListType, when: dt.datetime, reason: int, kind: ListType) -> bool:
    return (entry.revocation_time != when.astimezone(dt.UTC) or entry.reason != reason or list_type is not kind)


def _store(engine: Engine, ca: _CA, staging: _Staging, *, now: dt.datetime, progress: Progress,
           batch: int) -> int:
    """Pass 2: the staged entries the database lacks, one committed transaction per batch."""
    added = 0
    with progress("importing", staging.count(pending=True)) as advance:
        for chunk in staging.pending(batch):
            rows: list[dict[str, object]] = [{"certificate_id": certificate_id, "issuer_ca_id": ca.id, "serial": serial,
                     "revocation_time": when, "reason": reason, "recorded_at": now, "entry_der": entry_der,
                     "list_type": list_type, "request_id": None}
                    for serial, list_type, when, reason, entry_der, certificate_id in chunk]
            with session_scope(engine) as session:
                AdoptionStore(session).insert_imported_revocations(rows)
            added += len(rows)
            advance(len(chunk))
    return added


def _finish(engine: Engine, data_dir: Path, ca: _CA, lists: list[tuple[ListType, CRLFile]],
            digests: dict[ListType, tuple[bytes, bool]], counts: dict[ListType, int], sources: HistorySources, *,
            added: int, now: dt.datetime, actor: str) -> tuple[ImportedList, ...]:
    """Archive the lists, raise the counters and (when complete) activate the CA: one transaction."""
    imported: list[ImportedList] = []
    with session_scope(engine) as session:
        store = AdoptionStore(session)
        for list_type, crl in lists:
            h = crl.header
            assert h.number is not None and h.next_update is not None  # _check_list refused the others
            sha256, was_archived = digests[list_type]
            if not was_archived:
                relative = relative_path(ca.name, list_type, h.number)
                _place(crl, data_dir / relative, sha256)
                row = store.add_issued_crl(ca_id=ca.id, list_type=list_type, number=h.number, signing_key_id=ca.key_id,
                                           this_update=h.this_update, next_update=h.next_update,
                                           entries=counts[list_type], size=h.size, sha256=sha256,
                                           path=relative.as_posix(), now=now)
                # the current list until revoca issues the next: the repository gets it now
                store.enqueue_publication(ca_id=ca.id, item=PublicationItem(list_type.value), sha256=sha256,
                                          issued_crl_id=row.id, number=h.number, now=now)
            store.raise_crl_counter(ca.id, list_type, h.number)
            imported.append(ImportedList(list_type, h.number, counts[list_type], not was_archived))
            audit.record(session, "crl.history_imported", actor=actor, at=now, ca=ca.name, list=list_type.value,
                         number=h.number, entries=counts[list_type], sha256=sha256.hex(),
                         this_update=h.this_update.isoformat(), next_update=h.next_update.isoformat(),
                         file=str(crl.path), archived_now=not was_archived)
        audit.record(session, "revocation.history_imported", actor=actor, at=now, ca=ca.name, added=added,
                     index=str(sources.index) if sources.index else None,
                     csv=str(sources.csv) if sources.csv else None)
        if ca.status is CAStatus.ADOPTING and _complete(lists, sources):
            store.ca(ca.name).status = CAStatus.ACTIVE
            audit.record(session, "ca.adoption_completed", actor=actor, at=now, ca=ca.name,
                         crl=lists[0][1].header.number,
                         arl=lists[1][1].header.number if len(lists) > 1 else None,
                         no_previous_arl=sources.no_previous_arl)
    return tuple(imported)


def _complete(lists: list[tuple[ListType, CRLFile]], sources: HistorySources) -> bool:
    return any(t is ListType.ARL for t, _ in lists) or sources.no_previous_arl


def _place(crl: CRLFile, target: Path, sha256: bytes) -> None:
    """The list's DER at `target` (written once; a copy left by an interrupted run is kept if identical)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        with CRLFile(target) as there:
            if there.sha256() == sha256:
                return
        raise AlreadyExists(f"{target} exists and holds another list; move it aside (it was not archived) and run "
                            "the import again")
    partial = target.with_name(f".{target.name}.import.tmp")
    crl.copy_to(partial)
    os.replace(partial, target)

