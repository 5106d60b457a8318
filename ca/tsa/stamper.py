"""Stamping on revoca's own behalf (audit checkpoints, archive rounds)."""

from __future__ import annotations

from ca.hsm.signer import KeyStore
from ca.storage.engine import Session
from ca.storage.models import TimeStamp
from ca.tsa.authority import TimeStampAuthority


class CurrentAuthority:
    """Stamps with the TSA certificate current at each call, so a renewal takes effect at once
    and a service started before the first TSA certificate existed picks it up."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def stamp(self, session: Session, imprint: bytes, hash_name: str, requester: str) -> TimeStamp:
        return TimeStampAuthority.load(session, self.keys).stamp(session, imprint, hash_name, requester)
