"""Bulk import of the subscriber certificates that the regional CAs issued before revoca.

Each certificate must be signed by a key revoca knows (found by authorityKeyIdentifier,
else by issuer name); anything else is rejected with one line naming the file, the
certificate's place in it and the reason, and the import goes on.  Rows are inserted in
batches, each committed, and certificates already present are skipped, so an interrupted
import is simply run again.

At national scale (millions per CA, in bundles; bench/subscriber_import.py) three more things
matter, and each is here:

- files are streamed one certificate at a time (ca.importing.certificate_files), so memory does not grow
  with a bundle; progress is reported in bytes;
- a journal (ca.storage.imports) records, in each batch's own transaction, how many
  certificates of each file are done; `resume=True` skips finished files and continues a partial
  one after its last committed certificate, instead of reading and verifying everything again;
- rejections go to an `errors` sink (the CLI's per-file report, ErrorReport) as they happen;
  the report object then keeps only the first few lines, and counts the rest per file.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TextIO

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ca.config import CAPolicyConfig
from ca.enums import CAKind, CertKind
from ca.errors import InvalidInput
from ca.hsm.signer import verify_signature
from ca.importing.certificate_files import blocks, certificate_files, read_certificates, total_size
from ca.lifecycle.key_policy import issued_after_stop
from ca.serials import check_serial
from ca.storage.adoption import link_imported_revocations
from ca.storage.engine import Engine, session_scope
from ca.storage.imports import FileProgress, ImportJournal
from ca.storage.models import CertificateAuthority, KeyGeneration
from ca.storage.store import Store

__all__ = ["BATCH", "ErrorReport", "ImportReport", "certificate_files", "import_certificates", "read_certificates",
           "total_size", "verify_signed_by"]

BATCH = 5000
KEEP_REJECTED = 100  # lines kept in the report when a sink has them all


@dataclasses.dataclass(frozen=True, slots=True)
class Rejection:
    path: Path
    index: int | None  # the certificate's place in a file of several; None: the file as a whole
    serial: int | None
    reason: str

    def line(self) -> str:
        where = str(self.path) if self.index is None else f"{self.path}[{self.index}]"
        return f"{where}: {self.reason}"


class RejectionSink(Protocol):
    def add(self, rejection: Rejection) -> None: ...


class ErrorReport:
    """The per-file error report: one tab-separated line per rejected certificate (file, place,
    serial in hex, reason), then, per file, how many were rejected."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.per_file: collections.Counter[Path] = collections.Counter()
        if out.tell() == 0:  # a resumed import appends to the report of the run it continues
            out.write("file\tcertificate\tserial\treason\n")

    def add(self, rejection: Rejection) -> None:
        reason = rejection.reason.replace("\t", " ").replace("\n", " ")
        self.out.write(f"{rejection.path}\t{'' if rejection.index is None else rejection.index}\t"
                       f"{'' if rejection.serial is None else format(rejection.serial, 'x')}\t{reason}\n")
        self.per_file[rejection.path] += 1

    def close(self) -> None:
        self.out.write("\n# rejected per file\n")
        for path, count in sorted(self.per_file.items()):
            self.out.write(f"# {path}\t{count}\n")
        self.out.flush()


@dataclasses.dataclass(slots=True)
class ImportReport:
    imported: int = 0
    already_present: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)  # all, or the first KEEP_REJECTED with a sink
    rejected_count: int = 0
    files_skipped: int = 0  # finished in an earlier run (resume)
    certificates_skipped: int = 0  # done in an earlier run (resume)


def verify_signed_by(cert: x509.Certificate, public_key: object) -> bool:
    try:
        verify_signature(public_key, cert.signature, cert.tbs_certificate_bytes,
                         cert.signature_hash_algorithm)  # type: ignore[arg-type]
    except (InvalidSignature, InvalidInput, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


class _IssuerIndex:
    """Known signing keys of revoca's own CAs, by SKI and by subject DN."""

    def __init__(self, cas: Iterable[CertificateAuthority]) -> None:
        self.by_ski: dict[bytes, tuple[KeyGeneration, object]] = {}
        self.by_name: dict[str, list[tuple[KeyGeneration, object]]] = {}
        self.names: dict[int, x509.Name] = {}
        self.since: dict[int, tuple[str, dt.datetime]] = {}  # when each CA came under revoca (ca.lifecycle.key_policy)
        for ca in cas:
            if ca.kind is CAKind.EXTERNAL:
                continue
            self.names[ca.id] = x509.Name.from_rfc4514_string(ca.subject_dn)
            self.since[ca.id] = (ca.name, ca.created_at)
            for key in ca.keys:
                entry = (key, serialization.load_der_public_key(key.spki_der))
                self.by_ski[key.ski] = entry
                self.by_name.setdefault(ca.subject_dn, []).append(entry)

    def issuer_of(self, cert: x509.Certificate) -> KeyGeneration | str:
        try:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
        except x509.ExtensionNotFound:
            aki = None
        candidates = [self.by_ski[aki]] if aki in self.by_ski else self.by_name.get(cert.issuer.rfc4514_string(), [])
        if not candidates:
            return f"issuer {cert.issuer.rfc4514_string()} is not a revoca CA"
        for key, public in candidates:
            if verify_signed_by(cert, public):
                if cert.issuer != self.names[key.ca_id]:  # RFC 5280 6.1.3 (a)(4): names must chain too
                    return (f"signed by the key of {self.names[key.ca_id].rfc4514_string()} but names issuer "
                            f"{cert.issuer.rfc4514_string()}")
                return key
        return f"signature does not verify with the key of {cert.issuer.rfc4514_string()}"


def _not_a_subscriber(cert: x509.Certificate) -> str | None:
    """Why this certificate cannot be imported as a subscriber certificate, if it cannot."""
    try:
        check_serial(cert.serial_number)
    except InvalidInput as exc:
        return str(exc)
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "is a CA certificate; only subscriber certificates are imported (CA certificates go on the ARL)"
    except x509.ExtensionNotFound:
        pass
    return None


class _Run:
    """One import: the pending batch, the journal entries it will commit, and the report."""

    def __init__(self, engine: Engine, now: dt.datetime, errors: RejectionSink | None) -> None:
        self.engine, self.now, self.errors = engine, now, errors
        self.report = ImportReport()
        self.pending: list[tuple[Rejection, dict[str, object]]] = []
        self.touched: dict[str, FileProgress] = {}
        # handed to the sink once the batch they belong to is committed: the report then says exactly
        # what the journal does, and a resumed import neither repeats nor loses a line
        self.rejections: list[Rejection] = []

    def reject(self, rejection: Rejection) -> None:
        self.report.rejected_count += 1
        if self.errors is not None:
            self.rejections.append(rejection)
            if len(self.report.rejected) >= KEEP_REJECTED:
                return
        self.report.rejected.append(rejection.line())

    @property
    def full(self) -> bool:
        return len(self.pending) >= BATCH or len(self.rejections) >= BATCH

    def flush(self) -> None:
        """Store the pending batch and the journal of the files read so far, in one transaction."""
        if not self.pending and not self.touched:
            self._report_rejections()
            return
        report = self.report
        with session_scope(self.engine) as session:
            store = Store(session)
            present = store.existing_fingerprints(row["fingerprint_sha256"] for _, row in self.pending)  # type: ignore[misc]
            seen: set[bytes] = set()
            fresh: list[tuple[Rejection, dict[str, object]]] = []
            for where, row in self.pending:
                fp = row["fingerprint_sha256"]
                if fp in present or fp in seen:
                    report.already_present += 1
                else:
                    seen.add(fp)  # type: ignore[arg-type]
                    fresh.append((where, row))
            clashes = store.serial_clashes([(r["issuer_ca_id"], r["serial"]) for _, r in fresh])  # type: ignore[misc]
            rows = []
            for where, row in fresh:
                if (row["issuer_ca_id"], row["serial"]) in clashes:
                    self.reject(dataclasses.replace(where, reason=f"serial {row['serial']:x} is already used by "
                                                                  "another certificate of the same CA"))
                else:
                    clashes.add((row["issuer_ca_id"], row["serial"]))  # type: ignore[arg-type]
                    rows.append(row)
            store.insert_certificates(rows)
            # an adopted CA's history may have revoked them by serial already (ca.adoption.history)
            link_imported_revocations(session, [(r["issuer_ca_id"], r["serial"]) for r in rows])  # type: ignore[misc]
            ImportJournal(session).record(self.touched.values(), self.now)
            report.imported += len(rows)
        self.pending.clear()
        self.touched.clear()
        self._report_rejections()

    def _report_rejections(self) -> None:
        if self.errors is not None:
            for rejection in self.rejections:
                self.errors.add(rejection)
        self.rejections.clear()


def import_certificates(engine: Engine, paths: Iterable[Path], *, now: dt.datetime | None = None,
                        progress: Callable[[int], None] | None = None,
                        policy: CAPolicyConfig | None = None, errors: RejectionSink | None = None,
                        resume: bool = False) -> ImportReport:
    """Import every certificate in `paths` (files, or directories searched for certificate files).

    `progress` is called with the bytes read since its last call; `policy` ([ca], default: new
    keys allowed): under new_keys = false a certificate issued after its CA came under revoca is
    rejected (ca.lifecycle.key_policy); `errors` receives every rejection; `resume` continues where the
    journal says an earlier import of the same files stopped.
    """
    now = now or dt.datetime.now(dt.UTC)
    policy = policy or CAPolicyConfig(new_keys=True)
    with session_scope(engine) as session:
        index = _IssuerIndex(Store(session).cas())
    run = _Run(engine, now, errors)
    for path in certificate_files(paths):
        try:
            stat = path.stat()
        except OSError as exc:
            run.reject(Rejection(path, None, None, f"not a certificate file ({exc.strerror or exc})"))
            continue
        key = str(path.resolve())
        skip = 0
        if resume:
            with session_scope(engine, readonly=True) as session:
                done = ImportJournal(session).progress(key)
            if done is not None and (done.size, done.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                if done.finished:
                    run.report.files_skipped += 1
                    run.report.certificates_skipped += done.certificates
                    if progress:
                        progress(stat.st_size)
                    continue
                skip = done.certificates
                run.report.certificates_skipped += skip
        consumed, offset = skip, 0
        try:
            for block in blocks(path, skip=skip):
                _one(run, index, policy, path, block.index if not block.only else None, block.der, block.error)
                consumed = block.index + 1
                run.touched[key] = FileProgress(key, stat.st_size, stat.st_mtime_ns, consumed, False)
                if progress:
                    progress(block.end - offset)
                offset = block.end
                if run.full:
                    run.flush()
        except OSError as exc:  # unreadable half way: reported; the journal keeps what was committed
            run.reject(Rejection(path, None, None, f"not a certificate file ({exc.strerror or exc})"))
            continue
        run.touched[key] = FileProgress(key, stat.st_size, stat.st_mtime_ns, consumed, True)
        if progress and stat.st_size > offset:
            progress(stat.st_size - offset)
    run.flush()
    return run.report


def _one(run: _Run, index: _IssuerIndex, policy: CAPolicyConfig, path: Path, place: int | None,
         der: bytes | None, error: str | None) -> None:
    """Check one certificate and queue it for the batch, or reject it."""
    if der is None:
        what = "not a certificate file" if place is None else "not a certificate"
        run.reject(Rejection(path, place, None, f"{what} ({error})"))
        return
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.serial_number  # noqa: B018 -- parsed lazily: a broken TBS fails here, not later
    except ValueError as exc:
        what = "not a certificate file" if place is None else "not a certificate"
        run.reject(Rejection(path, place, None, f"{what} ({str(exc).splitlines()[0]})"))
        return
    serial = cert.serial_number
    unfit = _not_a_subscriber(cert)
    if unfit:
        run.reject(Rejection(path, place, serial, unfit))
        return
    issuer = index.issuer_of(cert)
    if isinstance(issuer, str):
        run.reject(Rejection(path, place, serial, issuer))
        return
    ca_name, since = index.since[issuer.ca_id]
    late = issued_after_stop(policy, not_before=cert.not_valid_before_utc, ca_since=since, ca=ca_name)
    if late:
        run.reject(Rejection(path, place, serial, late))
        return
    run.pending.append((Rejection(path, place, serial, ""), {
        "issuer_ca_id": issuer.ca_id, "issuer_key_id": issuer.id, "subject_ca_id": None,
        "subject_key_id": None, "key_label": None, "kind": CertKind.SUBSCRIBER,
        "serial": serial, "subject_dn": cert.subject.rfc4514_string(),
        "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
        "fingerprint_sha256": hashlib.sha256(der).digest(), "der": der, "created_at": run.now,
    }))
