"""What a requester submits: the certificate to check, and any intermediates.

    Content-Type: application/pkix-cert              one DER certificate (RFC 2585)
    Content-Type: application/pem-certificate-chain  PEM, the certificate first, then intermediates (RFC 8555 9.1)

Anything else is refused before validation; a body that is not what it says raises InvalidInput.
"""

from __future__ import annotations

import dataclasses

from cryptography import x509

from ca.errors import InvalidInput

DER = "application/pkix-cert"
PEM_CHAIN = "application/pem-certificate-chain"
MEDIA_TYPES = (DER, PEM_CHAIN)
MAX_REQUEST_BYTES = 256 * 1024
MAX_CERTIFICATES = 16


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()


def parse(media_type: str, body: bytes) -> Submission:
    try:
        if media_type == DER:
            return Submission(x509.load_der_x509_certificate(body))
        if media_type == PEM_CHAIN:
            certs = x509.load_pem_x509_certificates(body)
            if len(certs) > MAX_CERTIFICATES:
                raise InvalidInput(f"at most {MAX_CERTIFICATES} certificates per request, not {len(certs)}")
            return Submission(certs[0], tuple(certs[1:]))
    except ValueError as exc:
        raise InvalidInput(f"the body is not a {media_type} ({exc})") from exc
    raise InvalidInput(f"send {' or '.join(MEDIA_TYPES)}, not {media_type or 'no media type'}")
