"""Receipts for revocation requests: CMS SignedData over a small JSON document.

The terminal prints the receipt; years later anyone can check it with
`openssl cms -verify -inform DER -in receipt.der -CAfile bridge.pem`, because the receipt
key's certificate is issued by the bridge CA and travels inside the SignedData.  Built by
ca.der.cms.sign_data, as cryptography's PKCS7 builder made them before (same bytes).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from cryptography import x509

from ca.der.cms import sign_data
from ca.enums import CertKind
from ca.errors import NotFound
from ca.hsm.signer import KeyStore
from ca.storage.models import RevocationRequest
from ca.storage.store import ReadStore


def receipt_content(request: RevocationRequest, *, issuer_ca: str, revocation_time: Any) -> dict[str, Any]:
    cert = request.certificate
    # a record change's receipt (given to the resident, 4.9.3.1(3)) names the event that revoked
    event = {"record_change_event": request.record_change_event.value} if request.record_change_event else {}
    return {**event,
        "type": "revoca revocation receipt",
        "request_id": request.public_id,
        "status": request.status.value,
        "channel": request.channel.value,
        "issuer_ca": issuer_ca,
        "serial": format(cert.serial, "x"),
        "subject": cert.subject_dn,
        "reason": request.reason,
        "accepted_at": request.accepted_at.isoformat(),
        "revocation_time": revocation_time.isoformat() if revocation_time else None,
    }


def canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptSigner:
    certificate: x509.Certificate
    key_label: str

    @classmethod
    def current(cls, store: ReadStore) -> ReceiptSigner:
        bridge = store.bridge()
        rows = [c for c in store.certificates(issuer=bridge, kinds=[CertKind.RECEIPT_SIGNER]) if c.key_label]
        if not rows:
            raise NotFound("the bridge CA has no receipt-signer certificate; re-run the hierarchy build")
        row = rows[-1]
        return cls(x509.load_der_x509_certificate(row.der), row.key_label)  # type: ignore[arg-type]

    def sign(self, keys: KeyStore, content: dict[str, Any], *, now: dt.datetime | None = None) -> bytes:
        """The receipt (DER ContentInfo); its signingTime is `now`, the wall clock unless given."""
        return sign_data(canonical(content), certificate=self.certificate, signer=keys.signer(self.key_label),
                         now=now or dt.datetime.now(dt.UTC), what="receipt")
