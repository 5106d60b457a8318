"""Bulk import of the subscriber certificates that the regional CAs issued before revoca.

Each certificate must be signed by a key revoca knows (found by authorityKeyIdentifier,
else by issuer name); anything else is rejected with one line naming the file and the
reason, and the import goes on.  Rows are inserted in batches, each committed, and
certificates already present are skipped, so an interrupted import is simply run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from ca.enums import CAKind, CertKind
from ca.errors import InvalidInput
from ca.hsm.signer import verify_signature
from ca.serials import check_serial
from ca.storage.adoption import link_imported_revocations
from ca.storage.engine import Engine, session_scope
from ca.storage.models import CertificateAuthority, KeyGeneration
from ca.storage.store import Store

SUFFIXES = {".pem", ".crt", ".cer", ".der"}
BATCH = 5000


@dataclasses.dataclass(slots=True)
class ImportReport:
    imported: int = 0
    already_present: int = 0
    rejected: list[str] = dataclasses.field(default_factory=list)


def certificate_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        else:
            yield path


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM (one or many) or DER file; ValueError with a reason otherwise."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        certs = x509.load_pem_x509_certificates(data)
    else:
        certs = [x509.load_der_x509_certificate(data)]
    return certs


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
        for ca in cas:
            if ca.kind is CAKind.EXTERNAL:
                continue
            self.names[ca.id] = x509.Name.from_rfc4514_string(ca.subject_dn)
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


def import_certificates(engine: Engine, paths: Iterable[Path], *, now: dt.datetime | None = None,
                        progress: Callable[[int], None] | None = None) -> ImportReport:
    now = now or dt.datetime.now(dt.UTC)
    report = ImportReport()
    with session_scope(engine) as session:
        index = _IssuerIndex(Store(session).cas())
    pending: list[tuple[str, dict[str, object]]] = []

    def flush() -> None:
        if not pending:
            return
        with session_scope(engine) as session:
            store = Store(session)
            present = store.existing_fingerprints(row["fingerprint_sha256"] for _, row in pending)  # type: ignore[misc]
            seen: set[bytes] = set()
            fresh: list[tuple[str, dict[str, object]]] = []
            for where, row in pending:
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
                    report.rejected.append(f"{where}: serial {row['serial']:x} is already used by another "
                                           "certificate of the same CA")
                else:
                    clashes.add((row["issuer_ca_id"], row["serial"]))  # type: ignore[arg-type]
                    rows.append(row)
            store.insert_certificates(rows)
            # an adopted CA's history may have revoked them by serial already (ca.adoption.history)
            link_imported_revocations(session, [(r["issuer_ca_id"], r["serial"]) for r in rows])  # type: ignore[misc]
            report.imported += len(rows)
        pending.clear()

    for path in certificate_files(paths):
        try:
            certs = read_certificates(path)
        except (OSError, ValueError, x509.InvalidVersion) as exc:
            report.rejected.append(f"{path}: not a certificate file ({str(exc).splitlines()[0]})")
            if progress:
                progress(1)
            continue
        if progress:
            progress(1)
        for n, cert in enumerate(certs):
            where = str(path) if len(certs) == 1 else f"{path}[{n}]"
            unfit = _not_a_subscriber(cert)
            if unfit:
                report.rejected.append(f"{where}: {unfit}")
                continue
            issuer = index.issuer_of(cert)
            if isinstance(issuer, str):
                report.rejected.append(f"{where}: {issuer}")
                continue
            der = cert.public_bytes(serialization.Encoding.DER)
            pending.append((where, {
                "issuer_ca_id": issuer.ca_id, "issuer_key_id": issuer.id, "subject_ca_id": None,
                "subject_key_id": None, "key_label": None, "kind": CertKind.SUBSCRIBER,
                "serial": cert.serial_number, "subject_dn": cert.subject.rfc4514_string(),
                "not_before": cert.not_valid_before_utc, "not_after": cert.not_valid_after_utc,
                "fingerprint_sha256": hashlib.sha256(der).digest(), "der": der, "created_at": now,
            }))
            if len(pending) >= BATCH:
                flush()
    flush()
    return report
