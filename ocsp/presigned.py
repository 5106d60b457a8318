"""When a stored pre-signed answer may be served, and how long one is signed for (issue 16).

One rule, read by the responder at every query and by the background signer when it decides
what to sign again: a stored answer is served only when

* the request names the certificate by the SHA-1 CertID it was signed for (RFC 5019 2.1.1;
  any other CertID gets an answer signed for its own);
* it says the status read from the database now -- a revocation committed a moment ago and
  not yet signed ahead is signed on demand, so OCSP shows it at once, as before;
* it was signed by the responder certificate the responder would sign with now (a renewed or
  revoked responder certificate is never served from old answers);
* it is current: thisUpdate not after now, and at least SERVE_MARGIN before its nextUpdate,
  so a client caching it keeps a useful answer (RFC 5019 6).

The signer refreshes an answer REFRESH after signing it, or at half its validity if sooner,
well before the margin comes; if it stops, responders sign on demand again rather than serve
a stale answer.  All registered verifiers are one audience: each is entitled to the status,
time and reason (seed 004 4.9.9; others get `unauthorized` before any answer is read), so one
stored answer per certificate serves them all.
"""

from __future__ import annotations

import datetime as dt

from ca.storage.ocsp_lookups import Presigned
from ca.storage.presigned import REFRESH, SERVE_MARGIN  # defined there, for `revoca status` and /metrics too
from ocsp.issuers import ResponderKey
from ocsp.request import CertID
from ocsp.response import sha1_cert_id
from ocsp.status import CertStatus, Status

__all__ = ["REFRESH", "SERVE_MARGIN", "refresh_at", "usable"]


def usable(stored: Presigned, status: Status, cert_id: CertID, responder: ResponderKey, now: dt.datetime) -> bool:
    return (stored.current and status.status is not CertStatus.UNKNOWN
            and stored.responder_serial == responder.serial
            and stored.this_update <= now < stored.next_update - SERVE_MARGIN
            and cert_id.hash_algorithm == "sha1"
            and cert_id.der == sha1_cert_id(cert_id.issuer_name_hash, cert_id.issuer_key_hash, cert_id.serial))


def refresh_at(this_update: dt.datetime, next_update: dt.datetime) -> dt.datetime:
    return this_update + min(REFRESH, (next_update - this_update) / 2)
