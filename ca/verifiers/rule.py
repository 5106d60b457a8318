"""When a registered verifier is in effect: the one rule LDAP account sync and OCSP both apply.

Registered and not removed, its certificate unexpired and, when revoca knows the
certificate, not revoked.  On plain values, so that the OCSP responder can feed it from a
query of its own on its hot path.
"""

from __future__ import annotations

import datetime as dt

from ca.enums import VerifierStatus


def in_effect(status: str, cert_not_after: dt.datetime, *, revoked: bool, now: dt.datetime) -> bool:
    """Whether a verifier with this status and certificate may be served at `now`."""
    return status == VerifierStatus.ACTIVE and cert_not_after > now and not revoked
