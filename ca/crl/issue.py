"""Issuing a CA's CRL or ARL from the database: number, stream, sign, archive, audit.

Which revocations go on which list is decided at revocation time (Revocation.list_type and
issuer_ca_id); here they are only streamed.  Issuers of the same CA and list are serialised
by an exclusive lock on a file beside the output, so a later CRL number always comes with a
later snapshot of the revocations (two concurrent issuers could otherwise publish number n+1
with fewer entries than number n).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ca import audit
from ca.config import CRLConfig
from ca.crl import cache, delta
from ca.crl.freshest import DeltaPolicy
from ca.crl.tbs import CRLFields
from ca.crl.writer import MissingEntryDER, Published, SegmentMismatch, spool_entries, write_certificate_list
from ca.der import encoding as der
from ca.enums import CAKind, CAStatus, ListType, PublicationItem
from ca.errors import InvalidInput, RevocaError, ServiceUnavailable, TokenError, UntrustedTime
from ca.hsm.signer import KeyStore, Signer
from ca.revocation.crl_entry import encode_entry
from ca.storage.authorities import spki_der
from ca.storage.engine import Engine, Session, session_scope
from ca.storage.retired_keys import RetiredKeyReads
from ca.storage.store import ReadStore, Store
from ca.trusted_time import ClockGuard

log = logging.getLogger("revoca.crl")

DEFAULT_VALIDITY = CRLConfig().validity  # seed 004 4.9.7, defined once in ca.config
CHUNK_ROWS = 20_000  # rows per fetch: about 1 MB of entries, the same order as the file buffers
BOTH = (ListType.CRL, ListType.ARL)


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedCRLInfo:
    """What was issued and archived; `path` is data_dir / the relative path the archive row holds."""

    ca_name: str
    list_type: ListType
    number: int
    this_update: dt.datetime
    next_update: dt.datetime
    entries: int
    size: int
    sha256: bytes
    path: Path

    def line(self) -> str:
        return (f"{self.ca_name} {self.list_type.value.upper()} #{self.number}: {self.entries} entries, "
                f"{self.size} bytes, next update {self.next_update:%Y-%m-%d %H:%M:%SZ}")


@dataclasses.dataclass(frozen=True, slots=True)
class IssueFailure:
    ca_name: str
    list_type: ListType
    error: str
    exit_code: int = 1  # of the RevocaError met, for the CLI

    def line(self) -> str:
        return f"{self.ca_name} {self.list_type.value.upper()}: not issued: {self.error}"


@dataclasses.dataclass(frozen=True, slots=True)
class IssueReport:
    issued: tuple[IssuedCRLInfo, ...]
    failed: tuple[IssueFailure, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _SigningKey:
    """What a CA signs its lists with, read once per issue."""

    ca_id: int
    key_id: int
    key_label: str
    key_identifier: bytes
    spki: bytes
    issuer: bytes  # subject DER of the CA's self-signed certificate for this key
    subject_dn: str  # the CA's, for the Freshest CRL pointer (ca.crl.freshest)
    retired_generation: int | None = None  # a retired key's list (ca.crl.old_keys): not queued for LDAP


def relative_directory(ca_name: str, list_type: ListType, generation: int | None = None) -> Path:
    """Where one CA's CRLs or ARLs live under data_dir (with the lock and the entry cache); a
    retired key's lists (`generation`, ca.crl.old_keys) in key-<generation>/ below."""
    if not ca_name.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput(f"CA name {ca_name!r} cannot name a CRL directory")
    directory = Path("crls") / ca_name / list_type.value
    return directory if generation is None else directory / f"key-{generation}"


def relative_path(ca_name: str, list_type: ListType, number: int, generation: int | None = None) -> Path:
    """Where a CRL lives under data_dir: crls/<ca>/<crl|arl>/[key-<generation>/]<number>.crl."""
    return relative_directory(ca_name, list_type, generation) / f"{number}.crl"


def issue_list(engine: Engine, keys: KeyStore, data_dir: Path, ca_name: str, list_type: ListType, *,
               now: dt.datetime, time_guard: ClockGuard, validity: dt.timedelta = DEFAULT_VALIDITY,
               actor: str = "revoca",
               incremental: bool = True, chunk_rows: int = CHUNK_ROWS,
               deltas: DeltaPolicy | None = None, key_generation: int | None = None) -> IssuedCRLInfo:
    """Issue one CRL (subscriber certificates) or ARL (CA certificates) of one CA and archive it.

    `key_generation` names a retired key of the CA to sign with instead of its current one
    (ca.crl.old_keys): same issuer name and number sequence, that key's AKI, kept apart on disk
    and not queued on its own (the publisher writes it beside the current key's list).

    `time_guard` (the process's, ca.trusted_time) confirms `now` before a number is spent.
    thisUpdate is `now` to the second and nextUpdate = thisUpdate + `validity`.  With
    `incremental` (the default) the entries of the previous issue are reused from ca.crl.cache
    when the database agrees, and only newer rows are streamed; False streams every row.
    With `deltas`, a CRL carries Freshest CRL pointing at its delta CRLs.  A delta CRL
    (ListType.DELTA, ca.crl.delta) lists what was revoked since the CA's newest CRL and is valid
    `deltas.validity` (DeltaPolicy's default without one) rather than `validity`.
    """
    if list_type is ListType.DELTA and key_generation is not None:
        raise InvalidInput("delta CRLs are issued with the CA's current key only")
    if not isinstance(list_type, ListType):
        raise InvalidInput(f"list type must be crl or arl, not {list_type!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("issue time is a naive datetime; use timezone-aware UTC")
    if validity <= dt.timedelta(0):
        raise InvalidInput("CRL validity must be positive")
    this_update = now.astimezone(dt.UTC).replace(microsecond=0)
    directory = Path(data_dir) / relative_directory(ca_name, list_type, key_generation)
    # before a number is spent: on untrusted time nothing is numbered, signed or written (seed 000 1.3.3)
    time_guard.require(f"{ca_name} {list_type.value.upper()}", engine=engine, actor=actor, at=this_update)
    with _exclusive(directory):
        key = _signing_key(engine, ca_name, key_generation)
        _set_aside_unarchived(engine, directory, key.ca_id, ca_name, list_type, actor)
        _never_backwards(engine, key.ca_id, ca_name, list_type, this_update, actor)
        base = delta.base_of(engine, key.ca_id, key.key_id, ca_name) if list_type is ListType.DELTA else None
        if base is not None:
            validity = (deltas or DeltaPolicy("")).validity
        signer = _signer(keys, key, ca_name)  # before a number is spent: an inactive HSM fails here
        # The number is committed in a transaction of its own before anything is signed: a crash
        # from here on leaves a gap in the numbers, never a number used twice (RFC 5280 5.2.3).
        with session_scope(engine) as session:
            number = Store(session).allocate_crl_number(key.ca_id, list_type)
        try:
            fields = CRLFields(issuer=key.issuer, this_update=this_update, next_update=this_update + validity,
                               number=number, authority_key_id=key.key_identifier, list_type=list_type,
                               algorithm=signer.algorithm,
                               freshest_crl=(deltas.url(ca_name, key.subject_dn)
                                             if deltas is not None and list_type is ListType.CRL
                                             and key_generation is None else None),
                               delta_base=base.number if base is not None else None)
            if base is not None:
                published, through = delta.sign_delta(_snapshot, engine, key.ca_id, base, fields, signer,
                                                       directory, chunk_rows)
            else:
                published, through = _sign(engine, key.ca_id, fields, signer, directory, chunk_rows, incremental)
            info = _archive(engine, ca_name, key, fields, published, Path(data_dir), now=now, actor=actor,
                            through=through)
        except OSError as exc:  # a full disk, a read-only or failing file system: one line, not a traceback
            error = ServiceUnavailable(f"{ca_name} {list_type.value.upper()} {number} not issued: cannot write "
                                       f"{directory}: {exc.strerror or exc}; nothing was published (number "
                                       f"{number} stays unused)")
            _record_failure(engine, actor, error, ca=ca_name, list=list_type.value, number=number)
            raise error from exc
        except Exception as exc:
            _record_failure(engine, actor, exc, ca=ca_name, list=list_type.value, number=number)
            raise
    log.info("issued %s", info.line())
    return info


def issue_many(engine: Engine, keys: KeyStore, data_dir: Path, targets: Iterable[tuple[str, ListType]], *,
               now: dt.datetime, time_guard: ClockGuard, validity: dt.timedelta = DEFAULT_VALIDITY,
               actor: str = "revoca",
               incremental: bool = True, deltas: DeltaPolicy | None = None) -> IssueReport:
    """Issue each (CA, list) in turn; one failure does not stop the others."""
    issued: list[IssuedCRLInfo] = []
    failed: list[IssueFailure] = []
    for ca_name, list_type in targets:
        try:
            issued.append(issue_list(engine, keys, data_dir, ca_name, list_type, now=now, time_guard=time_guard,
                                     validity=validity,
                                     actor=actor, incremental=incremental, deltas=deltas))
        except RevocaError as exc:
            log.error("%s %s not issued: %s", ca_name, list_type.value, exc)
            failed.append(IssueFailure(ca_name, list_type, str(exc), exc.exit_code))
        except Exception as exc:  # a bug or a lost database: log it whole, carry on with the next CA
            log.exception("%s %s not issued", ca_name, list_type.value)
            failed.append(IssueFailure(ca_name, list_type, f"{type(exc).__name__}: {exc}"))
    return IssueReport(tuple(issued), tuple(failed))


def issuing_cas(engine: Engine) -> list[str]:
    """Every CA whose keys revoca holds, bridge first: each issues a CRL and an ARL."""
    with session_scope(engine) as session:
        return [ca.name for ca in ReadStore(session).cas() if ca.kind is not CAKind.EXTERNAL]


def issue_all(engine: Engine, keys: KeyStore, data_dir: Path, *, now: dt.datetime, time_guard: ClockGuard,
              validity: dt.timedelta = DEFAULT_VALIDITY, actor: str = "revoca",
              list_types: Iterable[ListType] = BOTH, deltas: DeltaPolicy | None = None) -> IssueReport:
    """The CRL and ARL of every CA revoca holds keys for."""
    types = tuple(list_types)
    targets = [(name, t) for name in issuing_cas(engine) for t in types]
    return issue_many(engine, keys, data_dir, targets, now=now, time_guard=time_guard, validity=validity,
                      actor=actor, deltas=deltas)


def sweep_partial_files(data_dir: Path) -> int:
    """Remove the partial files (`.N.crl.tmp`, entry spools) an issuer killed mid-list left in any
    list directory, each under that directory's lock; the scheduler calls it when it takes the
    lease, so a node killed mid-round leaves nothing half-written behind (issue 15).  Returns how
    many directories held some."""
    directories = {path.parent for path in (Path(data_dir) / "crls").rglob(".*.tmp")}
    for directory in sorted(directories):
        with _exclusive(directory):  # waits for a live issuer there; its partial files are its own
            pass
    return len(directories)


@contextlib.contextmanager
def _exclusive(directory: Path) -> Iterator[None]:
    """One issuer per CA and list at a time (across processes), and no stale partial files."""
    directory.mkdir(parents=True, exist_ok=True)
    # opened for reading (flock needs no more): a lock file another identity made (root's `crl
    # issue`, group-readable) still serves the scheduler's own user
    with open(os.open(directory / ".lock", os.O_RDONLY | os.O_CREAT, 0o660), "rb") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            for stale in directory.glob(".*.tmp"):  # left by an issuer that crashed
                stale.unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _set_aside_unarchived(engine: Engine, directory: Path, ca_id: int, ca_name: str, list_type: ListType,
                          actor: str) -> None:
    """A signed list file whose archive row was never written (the issuer was killed between the
    two, issue 15) is renamed `<n>.crl.unarchived`: never published, kept for the auditor, audited."""
    on_disk = {int(p.stem): p for p in directory.glob("*.crl") if p.stem.isdigit()}
    if not on_disk:
        return
    with session_scope(engine, readonly=True) as session:
        archived = ReadStore(session).archived_numbers(ca_id, list_type)
    for number in sorted(set(on_disk) - archived):
        aside = on_disk[number].with_name(f"{number}.crl.unarchived")
        on_disk[number].rename(aside)
        log.warning("%s %s #%d was signed but never archived (an issuer stopped in between): set aside as %s",
                    ca_name, list_type.value.upper(), number, aside)
        _record_failure(engine, actor, RevocaError(f"signed but never archived; set aside as {aside.name}"),
                        ca=ca_name, list=list_type.value, number=number)


def _never_backwards(engine: Engine, ca_id: int, ca_name: str, list_type: ListType, this_update: dt.datetime,
                     actor: str) -> None:
    """Refuse a list whose thisUpdate is earlier than the last one's (issue 15): with the clock 4
    days behind, a CRL was signed that had expired before it was published, over a valid one."""
    with session_scope(engine, readonly=True) as session:
        previous = ReadStore(session).latest_this_update(ca_id, list_type)
    if previous is None:
        return
    previous = previous if previous.tzinfo else previous.replace(tzinfo=dt.UTC)
    if this_update < previous:
        error = UntrustedTime(f"{ca_name} {list_type.value.upper()} not issued: its thisUpdate "
                              f"{this_update:%Y-%m-%dT%H:%M:%SZ} would be earlier than the last one's "
                              f"({previous:%Y-%m-%dT%H:%M:%SZ}); has the clock gone back? Nothing was signed")
        _record_failure(engine, actor, error, ca=ca_name, list=list_type.value)
        log.error("%s", error)
        raise error


def _signing_key(engine: Engine, ca_name: str, generation: int | None = None) -> _SigningKey:
    with session_scope(engine) as session:
        store = ReadStore(session)
        ca = store.ca(ca_name)
        if ca.kind is CAKind.EXTERNAL:
            raise InvalidInput(f"CA {ca_name} is external; its own operator issues its CRLs")
        if ca.status is CAStatus.ADOPTING:  # its numbers must continue the previous system's (ca.adoption)
            raise InvalidInput(f"CA {ca_name} is being adopted and its revocation history is not imported yet; "
                               f"run `revoca crl import-history --ca {ca_name}` first (no number is spent)")
        key = (store.crl_signing_key(ca) if generation is None
               else RetiredKeyReads(session).retired_signing_key(ca, generation))
        assert key.key_label is not None  # crl_signing_key only returns keys held in the token
        issuer = der.certificate_subject(store.self_signed_der(ca, key))
        return _SigningKey(ca.id, key.id, key.key_label, key.ski, key.spki_der, issuer, ca.subject_dn, generation)


def _signer(keys: KeyStore, key: _SigningKey, ca_name: str) -> Signer:
    signer = keys.signer(key.key_label)
    if spki_der(signer.public_key()) != key.spki:
        raise TokenError(f"the token's key {key.key_label} is not the key recorded for CA {ca_name}")
    return signer


@contextlib.contextmanager
def _snapshot(engine: Engine) -> Iterator[Session]:
    """One snapshot for the cache check, the upper bound and the stream.

    PostgreSQL: REPEATABLE READ.  SQLite needs nothing more: its single writer hands out ids
    in commit order, so the rows up to a visible id never change afterwards.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with session_scope(engine) as session:
        yield session


def _sign(engine: Engine, ca_id: int, fields: CRLFields, signer: Signer, directory: Path,
          chunk_rows: int, incremental: bool) -> tuple[Published, int]:
    """Stream the entries (only the new ones when the cache holds the rest), sign, publish;
    also the highest revocation id the list holds (a delta CRL starts after it)."""
    spool_path = directory / f".{fields.number}.entries.tmp"
    kept = cache.load(directory) if incremental else None
    try:
        for _attempt in range(3):
            spool_path.unlink(missing_ok=True)
            try:
                with _snapshot(engine) as session:
                    store = ReadStore(session)
                    top = store.last_crl_entry_id(ca_id, fields.list_type)
                    if kept is not None and (kept.max_id > top or kept.count != store.count_crl_entries(
                            ca_id, fields.list_type, up_to_id=kept.max_id)):
                        log.info("%s: the kept entries disagree with the database; streaming all", directory)
                        kept = None
                    chunks = store.crl_entry_chunks(ca_id, fields.list_type, after_id=kept.max_id if kept else 0,
                                                    up_to_id=top, rows=chunk_rows)
                    # close the server-side cursor inside this transaction even when spooling stops
                    # early; left to the garbage collector it would close inside a later one
                    with contextlib.closing(chunks):
                        spool = spool_entries(chunks, spool_path)
                segments = [kept.segment, spool] if kept else [spool]
                published = write_certificate_list(fields, segments, signer, directory / f"{fields.number}.crl")
            except MissingEntryDER:
                # Rows written without their entry DER (by hand, or by an older release):
                # encode them once, then stream again rather than leave revocations out.
                with session_scope(engine) as session:
                    filled = Store(session).fill_missing_crl_entries(ca_id, fields.list_type, encode_entry)
                log.warning("encoded %d CRL entries that were stored without entry_der", filled)
                continue
            except SegmentMismatch as exc:
                log.warning("%s; streaming all entries and rebuilding the cache", exc)
                cache.discard(directory)
                kept = None
                continue
            try:
                cache.save(directory, previous=kept, added=spool, max_id=top, sha256=published.entries_sha256)
            except OSError as exc:  # the CRL is out; the next one will simply stream everything
                log.warning("could not keep the entries of %s for the next issue: %s", published.path, exc)
                cache.discard(directory)
            return published, top
        raise RevocaError(f"could not assemble the entries of {directory} after 3 attempts; see the log")
    finally:
        spool_path.unlink(missing_ok=True)


def _archive(engine: Engine, ca_name: str, key: _SigningKey, fields: CRLFields, published: Published,
             data_dir: Path, *, now: dt.datetime, actor: str, through: int | None = None) -> IssuedCRLInfo:
    relative = relative_path(ca_name, fields.list_type, fields.number, key.retired_generation)
    info = IssuedCRLInfo(ca_name=ca_name, list_type=fields.list_type, number=fields.number,
                         this_update=fields.this_update, next_update=fields.next_update,
                         entries=published.entries, size=published.size, sha256=published.sha256,
                         path=published.path)
    with session_scope(engine) as session:
        store = Store(session)
        row = store.add_issued_crl(
            ca_id=key.ca_id, list_type=fields.list_type, number=fields.number, signing_key_id=key.key_id,
            this_update=fields.this_update, next_update=fields.next_update, entries=info.entries,
            size=published.size, sha256=published.sha256, path=relative.as_posix(), now=now,
            revocations_through=through, base_number=fields.delta_base)
        # queued with the archive row, in its transaction: LDAP being away never blocks signing
        if key.retired_generation is None:  # a retired key's list goes out beside the current one (publisher)
            store.enqueue_publication(ca_id=key.ca_id, item=PublicationItem(fields.list_type.value),
                                      sha256=published.sha256, issued_crl_id=row.id, number=fields.number, now=now)
        audit.record(session, "crl.issued", actor=actor, at=now, ca=ca_name, list=fields.list_type.value,
                     number=fields.number, entries=info.entries, size=published.size,
                     sha256=published.sha256.hex(), this_update=fields.this_update.isoformat(),
                     next_update=fields.next_update.isoformat(), path=relative.as_posix(),
                     **_delta_detail(fields))
    return info


def _delta_detail(fields: CRLFields) -> dict[str, Any]:
    """A delta CRL's audit record names its base."""
    return {} if fields.delta_base is None else {"base": fields.delta_base}


def _record_failure(engine: Engine, actor: str, exc: Exception, **detail: object) -> None:
    """Audit a failed issue (it explains a gap in the CRL numbers) without hiding the original error."""
    try:
        audit.record_failure(engine, "crl.issued", actor=actor, error=str(exc) or type(exc).__name__, **detail)
    except Exception:
        log.exception("could not audit the failed CRL issue %s", detail)
