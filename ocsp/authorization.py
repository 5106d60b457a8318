"""Where OCSP authorizes: only registered verifiers in effect get answers (seed 004 4.9.9).

A signed request needs a certificate in it that is a verifier's in effect now (read at every
query: removal or revocation of the verifier takes effect at once) and whose key made the
signature; or, over TLS, the client certificate must be such a verifier's.  When a verifier
is in effect is ca.verifiers.rule, the same rule the LDAP accounts follow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Container

from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from ca.storage.ocsp_lookups import Lookups
from ca.verifiers.rule import in_effect
from ocsp.request import ParsedRequest, public_key_of, verify_with_key

PUBLIC_KEYS_MAX = 10_000  # verifiers' keys kept parsed; beyond it the cache starts again


class VerifierAuthorizer:
    """Who is asking: (verifier id, channel) of a registered verifier in effect, or None."""

    def __init__(self, lookups: Lookups) -> None:
        self.lookups = lookups
        self._public_keys: dict[bytes, CertificatePublicKeyTypes] = {}  # of verifiers' certificates met in requests

    def authorize(self, request: ParsedRequest, verified: dict[bytes, bool], tls_client_cert: bytes | None,
                  now: dt.datetime) -> tuple[int, str] | None:
        """(verifier id, channel) of a registered verifier in effect, or None.

        A signed request needs a certificate in it that is a verifier's in effect now (read at
        every query) and whose key made the signature (checked once per request bytes, in
        `verified`, and only for verifiers: an outsider costs no signature check).  A signed
        request is judged on its signature even when it came over TLS.
        """
        if request.signed:
            for cert in request.certs:
                verifier_id = self._verifier(cert, now)
                if verifier_id is None:
                    continue
                ok = verified.get(cert)
                if ok is None:
                    key = self._public_key(cert)
                    ok = verified[cert] = key is not None and verify_with_key(request, key)
                if ok:
                    return verifier_id, "signed"
            return None
        if tls_client_cert is not None:
            verifier_id = self._verifier(tls_client_cert, now)
            return (verifier_id, "tls") if verifier_id is not None else None
        return None

    @property
    def known_certificates(self) -> Container[bytes]:
        """Verifiers' certificates met in requests, parsed in full (ocsp.request steps over them)."""
        return self._public_keys

    def _public_key(self, certificate_der: bytes) -> CertificatePublicKeyTypes | None:
        key = self._public_keys.get(certificate_der)
        if key is None:
            key = public_key_of(certificate_der)
            if key is not None:
                if len(self._public_keys) >= PUBLIC_KEYS_MAX:
                    self._public_keys.clear()
                self._public_keys[certificate_der] = key
        return key

    def _verifier(self, certificate_der: bytes, now: dt.datetime) -> int | None:
        row = self.lookups.verifier(hashlib.sha256(certificate_der).digest())
        if row is None:
            return None
        verifier_id, status, not_after, revoked = row
        return verifier_id if in_effect(status, not_after, revoked=revoked, now=now) else None
