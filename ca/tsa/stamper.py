"""Stamping on revoca's own behalf (audit checkpoints, archive rounds)."""

from __future__ import annotations

from ca.hsm.signer import KeyStore
from ca.storage.engine import Session
from ca.storage.time_stamps import StoredToken
from ca.trusted_time import ClockGuard
from ca.tsa.authority import TimeStampAuthority


class CurrentAuthority:
    """Stamps with the TSA certificate current at each call, so a renewal takes effect at once
    and a service started before the first TSA certificate existed picks it up."""

    def __init__(self, keys: KeyStore, time_guard: ClockGuard) -> None:
        """`time_guard`: the process's NTP check (ca.trusted_time), made where its settings were loaded."""
        self.keys = keys
        self.time_guard = time_guard

    def stamp(self, session: Session, imprint: bytes, hash_name: str, requester: str) -> StoredToken:
        authority = TimeStampAuthority.load(session, self.keys, time_guard=self.time_guard)
        return authority.stamp(session, imprint, hash_name, requester)
