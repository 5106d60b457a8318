"""Key destruction (seed 004 6.2.10, 5.2.2): when a private key in the token may be destroyed, and
destroying it.

Several key managers destroy a key together (`revoca ca destroy-key`: M of them, M being the
activation threshold, ca.cli.acts).  Then, in one transaction: the key is recorded as destroyed
with the time and the people (a CA key's generation becomes DESTROYED; an end-entity key is
recorded against the certificate that carried it), the HSM service destroys the token objects
(the private key and its public twin; `destroy` is for the admin identity only), and the act is
audited (`hsm.key_destroyed`, refusals too).  From then on the signer refuses every request
naming the key (ca.hsm.policy), also after a restart.  Token backups taken before still hold the
key: seed 004 6.2.10.1 has them destroyed likewise; `revoca ca destroy-key` names them and
`revoca backup purge-key` removes them (ca.backup.key_copies).

What still needs a CA key K of CA X (each a refusal, with one line naming it):

1. K is X's active key: it signs X's certificates and lists.
2. K is the key X's CRL and ARL are signed with, X's newest key in the token (a compromised key
   without a successor goes on signing the lists that announce the compromise, seed 004 4.9.12).
   RFC 5280 3.3 keeps a revoked certificate on the list until one regularly scheduled list issued
   beyond its validity period, and relying parties use a list until its nextUpdate (5.1.2.5): the
   last list a key signs must stay valid until the last certificate it covers expires.  revoca
   issues every list of a CA with its newest key (the AKI names that key, RFC 5280 5.2.1), every
   24 hours (seed 004 4.9.7) and for every key's certificates; so a retired key's certificates
   are covered by its successor's lists for as long as the CA exists, and the key that signs a
   CA's lists is never destroyed (revoca issues no final list of a CA).
3. X's newest CRL or ARL is signed with K: the successor has not issued its first list of that
   kind since the rollover, so K's last list is still the one that covers X's certificates.
   Once the successor's list has superseded it, nothing K signed is needed for the lists.
4. A certificate K signed is unexpired and not revoked.  Its status must stay answerable until it
   expires (RFC 5280 3.3; seed 004 6.3.2.1 ends the CA only once every certificate is revoked or
   expired), and OCSP answers for it come from a responder certificate that K itself issues
   (RFC 6960 4.2.2.2: issued directly by the CA key that issued the certificate in question;
   1 year, seed 004 6.3.2.1), renewed and if need be revoked with K.  This counts K's own
   self-signed certificate, its NewWithOld link, the cross certificates K issued and K's
   responder certificates: to destroy K before they expire, revoke them first (a decision of its
   own).  A revoked certificate's status is final (no un-revoke) and stays on X's lists, signed
   with X's newest key, until it expires (rule 2).

An end-entity key in the token (OCSP responder, CVS, TLS, receipt, TSA) is needed while a
certificate carrying it is unexpired and not revoked: OCSP signs with the newest such responder
certificate (ocsp.issuers), the RA and the TSA with theirs.

An external CA's key, a key kept in a file and a key already destroyed are refused as such.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from ca import audit
from ca.enums import KeyStatus
from ca.errors import InvalidInput, RevocaError
from ca.storage.engine import Engine, session_scope
from ca.storage.key_destruction import KeyDestructionReads, KeyDestructionWrites, LiveCertificates, TokenKey

EVENT = "hsm.key_destroyed"


class KeyDestroyer(Protocol):
    """Where keys are destroyed: the HSM service (ca.hsm.client.HSMClient)."""

    def destroy(self, label: str, *, by: Sequence[str] = ()) -> int: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Destroyed:
    key: TokenKey
    at: dt.datetime
    by: tuple[str, ...]
    token_objects: int

    def line(self) -> str:
        gone = (f"{self.token_objects} token object(s) destroyed" if self.token_objects
                else "no object of it was left in the token")
        return (f"{self.key.describe()} destroyed by {', '.join(self.by)} at {self.at:%Y-%m-%d %H:%M:%SZ}: "
                f"{gone}; the signer refuses it from now on")


def _when(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%SZ}"


def _live_line(live: LiveCertificates, what: str) -> str:
    assert live.last is not None
    last = live.last
    return (f"{live.count} unexpired certificate(s) {what} not revoked, the last a {last.kind.value} "
            f"(serial {last.serial:x}) valid until {_when(last.not_after)}")


def still_needed(store: KeyDestructionReads, key: TokenKey, now: dt.datetime) -> list[str]:
    """What still needs `key` (the rules in this module's docstring), most telling first; empty
    when it may be destroyed."""
    needs: list[str] = []
    if not key.is_ca_key:
        live = store.live_carrying(key.certificate_ids, now)
        if live.count:
            needs.append(_live_line(live, "carry it and are") + ": whatever signs with it still may "
                         "(revoke the certificate first, or wait until it expires)")
        return needs
    assert key.key_generation_id is not None
    if key.status is KeyStatus.ACTIVE:
        needs.append(f"it is CA {key.ca_name}'s active key; roll the CA over first (`revoca ca rollover`)")
    elif store.list_signing_key_id(key.ca_id) == key.key_generation_id:
        needs.append(f"CA {key.ca_name}'s CRL and ARL are signed with it (the CA's newest key) for as long "
                     "as the CA issues lists")
    live = store.live_signed_by(key.key_generation_id, now)
    if live.count:
        needs.append(_live_line(live, "it signed are") + ": their status must stay answerable until they "
                     "expire (OCSP responder certificates for them come from this key)")
    for lst in store.newest_lists(key.ca_id):
        if lst.signing_key_id == key.key_generation_id:
            needs.append(f"CA {key.ca_name}'s current {lst.list_type.value.upper()} #{lst.number} (next update "
                         f"{_when(lst.next_update)}) is signed with it; issue the next one with the newer key "
                         f"first (`revoca crl issue --ca {key.ca_name}`)")
    return needs


def destroy_key(engine: Engine, keys: KeyDestroyer, ca_name: str, ref: str, *, by: Sequence[str],
                now: dt.datetime) -> Destroyed:
    """Destroy the key `ref` (generation number or label) of CA `ca_name`, for the key managers
    `by` (already admitted: ca.cli.gate).  Refused with one line naming what still needs it."""
    people = tuple(by)
    actor = "+".join(people) or "unknown"
    try:
        with session_scope(engine) as session:
            store = KeyDestructionWrites(session)
            key = store.token_key(ca_name, ref, lock=True)
            done = store.destruction(key.label)
            if done is not None or key.status is KeyStatus.DESTROYED:
                when = f" at {_when(done.destroyed_at)} by {done.destroyed_by}" if done else ""
                raise InvalidInput(f"{key.describe()} was already destroyed{when}")
            needs = still_needed(store, key, now)
            if needs:
                raise InvalidInput(f"{key.describe()} is still needed: {'; and '.join(needs)}")
            # recorded first: a token that refuses (not activated, not the admin) leaves no record
            store.mark_destroyed(key, now=now, by=actor)
            objects = keys.destroy(key.label, by=people)
            store.record_token_objects(key.label, objects)
            audit.record(session, EVENT, actor=actor, ca=key.ca_name, key_label=key.label, kind=key.kind,
                         generation=key.generation, token_objects=objects, destroyed_at=now.isoformat())
    except RevocaError as exc:
        audit.record_failure(engine, EVENT, actor=actor, error=str(exc), ca=ca_name, key=ref)
        raise
    return Destroyed(key, now, people, objects)
