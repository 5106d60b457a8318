"""A destroyed CA key is never offered as an OCSP signer in CA-signed mode (issue 13): its CertIDs
stay known (ours, answered tryLater) but have no responder; the successor key still answers."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ca import hierarchy
from ca.hsm.destruction import destroy_key
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import session_scope
from ca.storage.models import Certificate
from ca.storage.store import Store
from ocsp.issuers import IssuerIndex

from support.clock import NO_NTP
from support.hsm_service import RunningHSM

KM = ("keymanager1", "keymanager2")


def _tokyo(index: IssuerIndex) -> dict[int, str | None]:
    """generation -> the responder's key label (None: nothing may sign) of each tokyo key."""
    return {k.generation: k.responder.key_label if k.responder else None
            for k in index.keys() if k.ca_name == "tokyo"}


def test_a_destroyed_ca_key_is_never_offered_as_a_signer_in_ca_signed_mode(hsm: RunningHSM) -> None:
    now = dt.datetime.now(dt.UTC)
    with session_scope(hsm.engine) as s:
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=hsm.client, now=now, actor="test",
                                             algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "tokyo")
        keys = {k.generation: k for k in Store(s).ca("tokyo").keys}
        old_id, old_label, new_label = keys[1].id, keys[1].key_label, keys[2].key_label
        # years later: everything the old key signed has expired
        s.execute(sa.update(Certificate).where(Certificate.issuer_key_id == old_id)
                  .values(not_after=now - dt.timedelta(days=1)))
    before = IssuerIndex.load(hsm.engine, now=now, ca_signed=True)
    assert _tokyo(before) == {1: old_label, 2: new_label}  # retired, not destroyed: it may still answer

    destroy_key(hsm.engine, hsm.client, "tokyo", "1", by=KM, now=now)

    after = IssuerIndex.load(hsm.engine, now=now, ca_signed=True)
    assert _tokyo(after) == {1: None, 2: new_label}
    assert len(after) == len(before)  # still ours: its CertIDs are found, and answered tryLater
    # the other CAs are untouched
    assert {k.key_id: k.responder for k in after.keys() if k.ca_name != "tokyo"} == {
        k.key_id: k.responder for k in before.keys() if k.ca_name != "tokyo"}
