"""Checking revoca's own tokens later (audit checkpoints, archive stamps) against the TSA
certificates revoca issued, not against whatever certificate a token carries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from asn1crypto import cms
from cryptography import x509

from ca.der.parse_errors import PARSE_ERRORS
from ca.enums import CertKind
from ca.storage.engine import Session
from ca.storage.store import ReadStore
from ca.storage.time_stamps import StoredToken
from ca.tsa.errors import InvalidTimeStamp
from ca.tsa.verify import verify_token

TokenCheck = Callable[[StoredToken, bytes], dt.datetime]


def tsa_certificates(session: Session) -> list[x509.Certificate]:
    store = ReadStore(session)
    return [x509.load_der_x509_certificate(c.der)
            for c in store.certificates(issuer=store.bridge(), kinds=[CertKind.TSA])]


def token_checker(session: Session) -> TokenCheck:
    """A check that a stored token was signed by one of revoca's TSA certificates over `imprint`
    and that the row still says what the token says; returns the token's genTime."""
    certificates = tsa_certificates(session)

    def check(row: StoredToken, imprint: bytes) -> dt.datetime:
        if row.message_imprint != imprint:
            raise InvalidTimeStamp(f"time-stamp {row.serial:x} was issued for another imprint")
        serial = _signer_serial(row.token)
        signer = next((c for c in certificates if c.serial_number == serial), None)
        if signer is None:
            raise InvalidTimeStamp(f"time-stamp {row.serial:x} was not signed by any TSA certificate revoca issued")
        try:
            return verify_token(row.token, signer, imprint, row.hash_algorithm)
        except InvalidTimeStamp as exc:
            raise InvalidTimeStamp(f"time-stamp {row.serial:x}: {exc}") from exc

    return check


def _signer_serial(token: bytes) -> int | None:
    try:
        sid = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["sid"]
        return int(sid.chosen["serial_number"].native) if sid.name == "issuer_and_serial_number" else None
    except PARSE_ERRORS as exc:
        raise InvalidTimeStamp(f"a stored time-stamp token does not parse: {exc}") from exc
