"""Gathering a disclosure: for each of the subscriber's certificates, what revoca holds about it.

1. the certificate itself (subject, serial, validity, fingerprint, the DER);
2. every revocation request for it, with who received, reviewed and approved it, at which
   terminal, the agent's authority or the record-change event, and the signed receipt;
3. the revocation (time, reason, the request that made it);
4. the signed online request, as archived (the CMS the subscriber signed);
5. every audit record that names it (ca.disclosure.matching);
6. how often OCSP was asked about it (the query history is per certificate); CRLs and ARLs are
   fetched per CA, not per certificate, so there is no per-certificate count of those to give.

The read itself is recorded (`cert.disclosed`, a personal-data read) with the certificates and
the SHA-256 of the report, in the same transaction that reads: no record, no report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from ca import audit
from ca.disclosure.finding import Holder, holders_certificates
from ca.disclosure.matching import Named
from ca.enums import CertKind, ListType
from ca.errors import InvalidInput, NotFound
from ca.storage.disclosure import (
    CertificateFacts,
    CorrectionFacts,
    DisclosureReads,
    ListFacts,
    RequestRow,
    RevocationFacts,
)
from ca.storage.engine import Engine, session_scope

EVENT = "cert.disclosed"


@dataclasses.dataclass(frozen=True, slots=True)
class AuditLine:
    seq: int
    at: dt.datetime
    event_type: str
    result: str
    actor: str
    detail: dict[str, object]


@dataclasses.dataclass(frozen=True, slots=True)
class OCSPCount:
    queries: int
    first: dt.datetime | None
    last: dt.datetime | None
    answered: dict[str, int]  # good / revoked / unknown -> how many times


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateRecords:
    certificate: CertificateFacts
    ca: str
    requests: tuple[RequestRow, ...]
    revocation: RevocationFacts | None
    audit: tuple[AuditLine, ...]
    ocsp: OCSPCount
    corrections: tuple[CorrectionFacts, ...] = ()
    lists: ListFacts | None = None  # the CRLs (ARLs) that list its revocation; None when not revoked


@dataclasses.dataclass(frozen=True, slots=True)
class Disclosure:
    made_at: dt.datetime
    made_by: str
    asked_by: str  # how the subscriber was identified: serial or subject
    certificates: tuple[CertificateRecords, ...]


def gather(reads: DisclosureReads, certificates: list[CertificateFacts], *, asked_by: str, made_by: str,
           now: dt.datetime) -> Disclosure:
    out = []
    for cert in certificates:
        ca = cert.ca
        requests = tuple(reads.requests(cert.id))
        named = Named(cert.id, ca, cert.serial, frozenset(r.request.public_id for r in requests))
        lines = tuple(AuditLine(e.seq, e.occurred_at, e.event_type, e.result, e.actor, json.loads(e.detail or "{}"))
                      for e in reads.audit_candidates(named.needles()) if named.names(e.detail))
        revocation = reads.revocation(cert.id)
        out.append(CertificateRecords(cert, ca, requests, revocation, lines,
                                      _ocsp(reads.ocsp_answers(cert.issuer_ca_id, named.serial_hex), named.serial_hex),
                                      tuple(reads.corrections(cert.id)), _lists(reads, cert, revocation)))
    return Disclosure(now, made_by, asked_by, tuple(out))


def _lists(reads: DisclosureReads, cert: CertificateFacts, revocation: RevocationFacts | None) -> ListFacts | None:
    if revocation is None:
        return None
    kind = ListType.CRL if cert.kind is CertKind.SUBSCRIBER else ListType.ARL
    return reads.lists_since(cert.issuer_ca_id, kind, revocation.recorded_at)


def _ocsp(rows: list[tuple[dt.datetime, str]], serial_hex: str) -> OCSPCount:
    answered: dict[str, int] = {}
    times = []
    for at, answers in rows:
        statuses = [item.partition("=")[2] for item in answers.split(",") if item.partition("=")[0] == serial_hex]
        if statuses:
            times.append(at)
            for status in statuses:
                answered[status] = answered.get(status, 0) + 1
    return OCSPCount(len(times), min(times, default=None), max(times, default=None), answered)


Seal = Callable[[Any, bytes], dict[str, bytes]]  # (session, report) -> named files (signature, time stamp)


def disclose(engine: Engine, *, ca_name: str | None, serial: int | None = None, subject: str | None = None,
             holder: Holder | None = None, made_by: str, now: dt.datetime,
             render: Callable[[Disclosure, set[str]], bytes], seal: Seal | None = None
             ) -> tuple[Disclosure, bytes, dict[str, bytes]]:
    """The report (rendered by `render(disclosure, staff names)`) on the certificate(s) named by
    `serial` or `subject` under CA `ca_name`, or by the holder's basic four (under `ca_name`, or
    every CA); `seal` signs and time-stamps it in the same transaction; the read audited there too."""
    if sum(x is not None for x in (serial, subject, holder)) != 1:
        raise InvalidInput("name the certificate by serial, by subject or by the holder's basic four (one of them)")
    if holder is None and ca_name is None:
        raise InvalidInput("a serial or a subject is looked up under its CA: give --ca")
    with session_scope(engine) as session:
        reads = DisclosureReads(session)
        if serial is not None:
            assert ca_name is not None
            found, asked = reads.certificates_by_serial(ca_name, serial), f"serial {serial:x} of CA {ca_name}"
        elif subject is not None:
            assert ca_name is not None
            found, asked = reads.certificates_by_subject(ca_name, subject), f"subject {subject} of CA {ca_name}"
        else:
            assert holder is not None
            found = holders_certificates(holder, reads.subscriber_certificates_containing(holder.needle(), ca_name))
            asked = holder.describe() + (f", CA {ca_name}" if ca_name else ", every CA")
            if not found:
                raise NotFound("no subscriber certificate carries that name and date of birth"
                               + (f" under CA {ca_name}" if ca_name else "") + "; check them against the "
                               "identity document, or search by serial")
        disclosure = gather(reads, found, asked_by=asked, made_by=made_by, now=now)
        body = render(disclosure, reads.staff_names())
        sealed = seal(session, body) if seal is not None else {}
        audit.record(session, EVENT, actor=made_by, personal_data=True, ca=ca_name, asked_by=asked,
                     certificates=[f"{c.ca}:{c.certificate.serial:x}" for c in disclosure.certificates],
                     certificate_ids=[c.certificate.id for c in disclosure.certificates],
                     report_sha256=hashlib.sha256(body).hexdigest(),
                     sealed_sha256={k: hashlib.sha256(v).hexdigest() for k, v in sealed.items()}, at=now)
    return disclosure, body, sealed
