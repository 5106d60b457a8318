"""AlgorithmIdentifier DER for what a Signer produces (RFC 4055 2.1, RFC 5758 3.2).

Shared by the CRL and OCSP encoders: RSA carries NULL parameters, ECDSA none.
"""

from __future__ import annotations

from ca.der import encoding as der
from ca.hsm.signer import KeyAlgorithm

_RSA = {"sha256": "1.2.840.113549.1.1.11", "sha384": "1.2.840.113549.1.1.12"}
_ECDSA = {"sha256": "1.2.840.10045.4.3.2", "sha384": "1.2.840.10045.4.3.3"}


def signature_algorithm(algorithm: KeyAlgorithm) -> bytes:
    """The AlgorithmIdentifier for what a Signer of this key algorithm produces."""
    hash_name = algorithm.hash_algorithm.name
    if algorithm.is_rsa:
        return der.tlv(der.SEQUENCE, der.oid(_RSA[hash_name]) + der.NULL)
    return der.tlv(der.SEQUENCE, der.oid(_ECDSA[hash_name]))
