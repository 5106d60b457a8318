"""What asn1crypto, cryptography and the standard library raise on bad DER input.

asn1crypto parses lazily, so a malformed body can fail anywhere in a walk over it, and not
only with ValueError (an empty OID gives an AttributeError deep inside, say).  Every parser
of outside input (OCSP requests, time-stamp requests, online revocation requests, stored
tokens) catches exactly this set at its boundary and turns it into its own error.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,  # includes UnicodeError and binascii.Error
    TypeError,
    OverflowError,
    IndexError,
    KeyError,
    AttributeError,
    RecursionError,
    NotImplementedError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,  # a certificate with a version other than v1 to v3
)
