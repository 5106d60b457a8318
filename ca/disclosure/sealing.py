"""The disclosure bundle as the subscriber can check it years later: the report inside a CMS
SignedData (attached content) signed by the bridge CA's receipt-signer key, the key that signs
the receipts of revocation requests, plus an RFC 3161 time stamp from revoca's TSA over that
SignedData (a separate TimeStampResp, `.tsr`).

Why the receipt-signer key: it is the key revoca already uses to sign what it hands to a
subscriber, its certificate chains to the bridge CA that relying parties trust, and the signer
policy (ca.hsm.policy) classifies a CMS signed-attributes set over anything but a TSTInfo as a
receipt, which the receipt-signer key may sign and no CA key is needed for.  The officers' CLI
reaches it through the admin identity.  Checks:

    openssl cms -verify -inform DER -in B.p7m -CAfile bridge-roots.pem -purpose any -out report.txt
    openssl ts -verify -data B.p7m -in B.p7m.tsr -CAfile bridge-roots.pem -untrusted tsa.pem
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any

from cryptography import x509

from ca.der.cms import sign_data
from ca.enums import CertKind
from ca.errors import NotFound
from ca.hsm.signer import KeyStore
from ca.storage.store import ReadStore

#: (session, SHA-256 of the signed file) -> a TimeStampResp over it (the CLI wires revoca's TSA)
StampReply = Callable[[Any, bytes], bytes]


def receipt_signer(session: Any) -> tuple[x509.Certificate, str]:
    """The newest receipt-signer certificate of the bridge CA and its key's label."""
    store = ReadStore(session)
    rows = [c for c in store.certificates(issuer=store.bridge(), kinds=[CertKind.RECEIPT_SIGNER]) if c.key_label]
    if not rows:
        raise NotFound("the bridge CA has no receipt-signer certificate to sign the bundle; re-run the hierarchy build")
    return x509.load_der_x509_certificate(rows[-1].der), str(rows[-1].key_label)


def sign(report: bytes, certificate: x509.Certificate, keys: KeyStore, label: str, *,
         now: dt.datetime | None = None) -> bytes:
    """The report in a SignedData (DER ContentInfo, ca.der.cms); signingTime `now`, the wall clock unless given."""
    return sign_data(report, certificate=certificate, signer=keys.signer(label),
                     now=now or dt.datetime.now(dt.UTC), what="disclosure bundle")


def sealer(keys: KeyStore, stamp: StampReply) -> Callable[[Any, bytes], dict[str, bytes]]:
    """What ca.disclosure.report.disclose calls to seal a report in its transaction:
    {"p7m": the SignedData, "p7m.tsr": the time stamp over it}."""
    def seal(session: Any, report: bytes) -> dict[str, bytes]:
        certificate, label = receipt_signer(session)
        signed = sign(report, certificate, keys, label)
        return {"p7m": signed, "p7m.tsr": stamp(session, hashlib.sha256(signed).digest())}
    return seal
