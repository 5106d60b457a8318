"""What the archive keeps, and the exact bytes each item is stamped as.

The bytes are what an export writes to a file, so an auditor can check an item offline with
sha256sum against the stamped manifest.  Certificates and CRLs are their DER; a revocation
request is canonical JSON, stamped once it is decided and can no longer change; an online
request's CMS SignedData is kept as the subscriber sent it (seed 004 5.5.1.2), so
`openssl cms -verify` checks its signature offline; history rows go in settled ranges as JSON
lines (ca.storage.history's encoding, which the audit log's history seals use too).

The audit log goes in too, before any prune may delete it (ca.audit.prune): ranges of records
as JSON lines (ca.storage.audit_chain.archive_line: each record's canonical list and its link,
so the chain is recomputed from the export alone), copied into audit_archive when stamped so
that they outlive the records; and each checkpoint with its time-stamp token.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ca.errors import InvalidInput, NotFound
from ca.storage.archive import AUDIT_CHECKPOINT, AUDIT_LOG, ArchiveReads, ArchiveWrites
from ca.storage.audit import AuditReads
from ca.storage.engine import Session
from ca.storage.history import HistoryReads

CHUNK = 1 << 20


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _request_json(r: Any) -> bytes:
    fields = [r.id, r.public_id, r.channel.value, r.status.value, r.terminal_id, r.idempotency_key,
              r.request_digest.hex(), r.certificate_id, r.reason, r.applicant.value if r.applicant else None,
              r.identity_document_checked, r.receptionist_id, r.reviewer_id, r.approver_id, _iso(r.accepted_at),
              _iso(r.reviewed_at), _iso(r.decided_at), r.note, r.receipt.hex() if r.receipt else None]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclasses.dataclass(frozen=True)
class SingleItem:
    """One row is one item: a certificate, a CRL or ARL, a decided revocation request."""

    name: str
    chunks: Callable[[Any, Path], Iterator[bytes]]
    suffix: str

    def pending(self, session: Session, limit: int) -> list[Any]:
        """Rows that may be stamped now and have not been, in id order."""
        return ArchiveReads(session).unstamped(self.name, limit)

    def get(self, session: Session, item_id: int) -> Any:
        return ArchiveReads(session).item(self.name, item_id)


def _crl_chunks(row: Any, data_dir: Path) -> Iterator[bytes]:
    path = data_dir / row.path
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    except FileNotFoundError as exc:
        raise NotFound(f"the archived file {path} of CRL/ARL id {row.id} is missing") from exc


def _checkpoint_json(c: Any) -> bytes:
    token = c.time_stamp
    fields = [c.id, c.seq, c.chain_hash.hex(), c.reason, _iso(c.created_at), c.pruned_from, c.pruned_count, c.actor,
              format(token.serial, "x"), base64.b64encode(token.token).decode()]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


SINGLES = (
    SingleItem("certificate", lambda r, _: iter([r.der]), "der"),
    SingleItem("crl", _crl_chunks, "crl"),
    SingleItem("revocation-request", lambda r, _: iter([_request_json(r)]), "json"),
    SingleItem("online-request", lambda r, _: iter([r.signed_request]), "p7m"),
    SingleItem(AUDIT_CHECKPOINT, lambda r, _: iter([_checkpoint_json(r)]), "json"),
    SingleItem("provision-report", lambda r, _: iter([r.csv]), "csv"),  # the CSV as made (ca.reports.provision)
)


@dataclasses.dataclass(frozen=True)
class HistoryRange:
    """History rows go in ranges of ids; one stamp covers a settled range."""

    name: str
    table: str  # the ca.storage.history table
    suffix: str = "jsonl"

    def next_range(self, session: Session, now: dt.datetime, limit: int) -> tuple[int, int] | None:
        after = ArchiveReads(session).last_stamped_id(self.name)
        return HistoryReads(session).settled_range(self.table, after, now, limit)

    def chunks(self, session: Session, first_id: int, last_id: int) -> Iterator[bytes]:
        return HistoryReads(session).lines(self.table, first_id, last_id)


@dataclasses.dataclass(frozen=True)
class AuditRange(HistoryRange):
    """Audit records by seq.  Their bytes are copied into audit_archive as the range is stamped,
    and read from the copy after: the archive keeps them whatever `audit prune` deletes."""

    def next_range(self, session: Session, now: dt.datetime, limit: int) -> tuple[int, int] | None:
        archive = ArchiveWrites(session)
        after = archive.last_stamped_id(self.name)
        waiting = archive.audit_copy_after(after)
        if waiting is not None:
            return waiting.first_seq, waiting.last_seq
        span = AuditReads(session).chain_range(after, limit)
        if span is not None:
            body = b"".join(AuditReads(session).archive_lines(*span))
            archive.keep_audit_copy(first_seq=span[0], last_seq=span[1], body=body, now=now)
        return span

    def chunks(self, session: Session, first_id: int, last_id: int) -> Iterator[bytes]:
        copy = ArchiveReads(session).audit_copy(first_id)
        if copy.last_seq != last_id:
            raise NotFound(f"the archived audit copy from seq {first_id} ends at {copy.last_seq}, not {last_id}")
        return iter([copy.body])


RANGES = (HistoryRange("ocsp-queries", "ocsp_queries"), HistoryRange("crl-fetches", "crl_fetches"),
          HistoryRange("directory-reads", "directory_reads"), AuditRange(AUDIT_LOG, "audit_events"))
TYPES: dict[str, SingleItem | HistoryRange] = {t.name: t for t in (*SINGLES, *RANGES)}


def parse_ref(ref: str) -> tuple[SingleItem | HistoryRange, int]:
    """`crl:12`, `certificate:40`, `revocation-request:7`, `ocsp-queries:1234` (the range holding row 1234)."""
    name, _, number = ref.partition(":")
    kind = TYPES.get(name)
    if kind is None or not number.isdigit():
        raise InvalidInput(f"{ref!r} is not an archive item: use TYPE:ID with TYPE one of {', '.join(TYPES)}")
    return kind, int(number)


def digest(chunks: Iterator[bytes]) -> bytes:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.digest()
