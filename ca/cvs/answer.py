"""What the validation server says about one certificate: a small JSON document, the content
of the signed answer (ca.cvs.signed).

    {"version": 1, "status": "valid" | "revoked" | "unknown" | "invalid",
     "why": "...",                                   (revoked, unknown, invalid: one line)
     "revocation": {"reason": "keyCompromise", "time": "2026-12-03T09:00:00Z"},   (revoked only)
     "certificate": {"subject", "issuer", "serial", "sha256"},
     "path": [{"subject", "issuer", "serial", "sha256"}, ...],   (trust anchor first; the path used)
     "revocation_data": [{"issuer", "crl_number", "this_update", "next_update"}, ...],
     "checked_at": "..."}

JSON rather than SCVP (RFC 5055): a relying party reads it with any JSON library once `openssl
cms -verify` has checked the signature, and the eContentType (CVS_ANSWER) tells the HSM
signer's policy what it signs (ca.hsm.policy).  Keys are sorted and times are UTC seconds with
a Z, so one answer has one encoding.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import InvalidInput

# eContentType of the answer: revoca's own arc (ca.basic_four uses 1.2.392.200149.8.5.5); the same
# number is in ca.hsm.policy, which may import nothing of the roles.
CVS_ANSWER = "1.2.392.200149.8.5.9.1"


class Status(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # no revocation data that decides it (no list, a stale one, a bad signature)
    INVALID = "invalid"  # no path, expired, not yet valid, a broken signature, a constraint violated


def utc(t: dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(cert: x509.Certificate) -> dict[str, str]:
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "x"),
            "sha256": hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()}


@dataclasses.dataclass(frozen=True, slots=True)
class RevocationData:
    """One CRL or ARL that was consulted for the path."""

    issuer: str
    crl_number: int | None
    this_update: dt.datetime
    next_update: dt.datetime | None

    def to_json(self) -> dict[str, object]:
        return {"issuer": self.issuer, "crl_number": self.crl_number, "this_update": utc(self.this_update),
                "next_update": utc(self.next_update) if self.next_update else None}


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    certificate: x509.Certificate
    checked_at: dt.datetime
    why: str = ""
    path: tuple[x509.Certificate, ...] = ()  # trust anchor first, the certificate last
    revocation_data: tuple[RevocationData, ...] = ()
    revocation_reason: str | None = None
    revocation_time: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.checked_at.tzinfo is None:
            raise InvalidInput("an answer's time is a naive datetime; use timezone-aware UTC")
        if (self.status is Status.REVOKED) != (self.revocation_time is not None):
            raise InvalidInput("a revocation time goes with a revoked answer, and only with one")
        if self.status is not Status.VALID and not self.why:
            raise InvalidInput(f"a {self.status} answer says why")

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "version": 1, "status": self.status.value, "certificate": describe(self.certificate),
            "path": [describe(c) for c in self.path],
            "revocation_data": [r.to_json() for r in self.revocation_data], "checked_at": utc(self.checked_at)}
        if self.why:
            doc["why"] = self.why
        if self.revocation_time is not None:
            doc["revocation"] = {"reason": self.revocation_reason, "time": utc(self.revocation_time)}
        return doc

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
