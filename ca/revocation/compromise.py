"""A CA key compromise (seed 004 4.9.12, 5.7.3): what it revokes.

Two senior operators confirm.  The compromise revokes the key's own certificates (self-signed,
links: on the CA's ARL), the cross certificates other CAs issued to it (on *their* ARLs) and
everything it signed (on its CRL and ARL).  What to issue at once afterwards is
ca.crl.after_compromise.
"""

from __future__ import annotations

import datetime as dt

from ca import audit
from ca.enums import CAStatus, KeyStatus, Role
from ca.errors import InvalidInput, NotFound, PermissionDenied
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import entry_der, list_type_for, revoke_certificate
from ca.storage.models import Operator
from ca.storage.notices import COMPROMISE, record_notice
from ca.storage.revocations import RevocationStore

COMPROMISE_CHUNK = 5000


def compromise(store: RevocationStore, ca_name: str, confirmers: tuple[Operator, Operator], now: dt.datetime,
               *, note: str = "") -> int:
    """CA key compromise (seed 004 4.9.12, 5.7.3): two senior operators confirm; the CA's current
    key is marked compromised and everything it signed, and every certificate of that key, is
    revoked with reason cACompromise. Returns how many certificates were revoked.

    Bulk inserts in chunks: a regional CA may have signed millions of certificates.
    """
    first, second = confirmers
    for op in confirmers:
        if Role.SENIOR_OPERATOR not in op.role_set:
            raise PermissionDenied(f"operator {op.name} does not hold the senior-operator role")
    if first.id == second.id:
        raise PermissionDenied("a CA key compromise must be confirmed by two different senior operators")
    ca = store.ca(ca_name)
    try:
        key = store.current_key(ca)
    except NotFound as exc:
        raise InvalidInput(f"CA {ca_name} has no active key to declare compromised") from exc
    if key.key_label is None:
        raise InvalidInput(f"CA {ca_name} is external; its own operator handles its compromise")
    key.status = KeyStatus.COMPROMISED
    ca.status = CAStatus.COMPROMISED
    when = now.replace(microsecond=0)
    reason = int(RevocationReason.CA_COMPROMISE)
    total = 0
    for cert in store.certificates_of_key(key.id):  # self-signed, cross and link certificates of the key
        _rev, created = revoke_certificate(store, cert, RevocationReason.CA_COMPROMISE, now)
        total += created
    after = 0
    while chunk := store.unrevoked_signed_by(key.id, after_id=after, limit=COMPROMISE_CHUNK):
        store.insert_revocations([{
            "certificate_id": c.id, "issuer_ca_id": c.issuer_ca_id, "serial": c.serial, "revocation_time": when,
            "reason": reason, "recorded_at": now, "entry_der": entry_der(c.serial, when, reason),
            "list_type": list_type_for(c.kind), "request_id": None,
        } for c in chunk])
        total += len(chunk)
        after = chunk[-1].id
    # the web repository's notice to relying parties (seed 004 4.9.12(1)), in the same transaction
    record_notice(store.session, ca_id=ca.id, kind=COMPROMISE, occurred_at=when,
                  recorded_by=f"{first.name}+{second.name}", now=now)
    audit.record(store.session, "ca.key_compromise", actor=f"{first.name}+{second.name}", ca=ca_name,
                 key_generation=key.generation, revoked=total, note=note)
    return total
