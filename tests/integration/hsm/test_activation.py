"""M-of-N activation through the running HSM service's socket (seed 004 6.2.2, 6.2.8); deactivation by
M key managers is test_deactivation.py."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec

from ca import ceremony
from ca.config import Settings
from ca.errors import AlreadyExists, InvalidInput, NotActivated, ServiceUnavailable
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.hsm.client import HSMClient
from ca.hsm.service import HSMService, serve_in_thread
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, ShareHolder
from ca.storage.store import Store

from support.tools import serve_hsm_in_thread


@pytest.fixture
def client(settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult) -> Iterator[HSMClient]:
    # Unix socket paths are limited to 108 bytes, so not under pytest's long tmp_path.
    sock = Path(tempfile.mkdtemp(prefix="rvhsm")) / "hsm.sock"
    service = HSMService(token_for(settings), engine)
    server = serve_hsm_in_thread(sock, service)
    c = HSMClient(sock)
    yield c
    c.close()
    server.shutdown()
    server.server_close()
    service.close()


def _shares(result: ceremony.CeremonyResult) -> list[str]:
    return [share.encode() for _, share in result.shares]


def _ca_label(engine: sa.Engine, name: str = "tokyo") -> str:
    with session_scope(engine) as s:
        store = Store(s)
        return store.current_key(store.ca(name)).key_label  # type: ignore[return-value]


def test_m_minus_one_shares_do_not_sign_and_m_shares_do(client: HSMClient, engine: sa.Engine,
                                                       initialized: ceremony.CeremonyResult) -> None:
    label = _ca_label(engine)
    shares = _shares(initialized)
    with pytest.raises(NotActivated, match="2 more key manager share"):
        client.signer(label)
    status = client.activate(shares[0])
    assert (status["activated"], status["needed"]) == (False, 1)
    with pytest.raises(NotActivated, match=r"1 more key manager share\(s\) needed \(1 of 2\)"):
        client.signer(label)
    assert client.activate(shares[2])["activated"] is True
    signer = client.signer(label)
    sig = signer.sign(b"to be signed")
    signer.public_key().verify(sig, b"to be signed", ec.ECDSA(signer.algorithm.hash_algorithm))


def test_repeated_share_is_refused_and_names_its_holder(client: HSMClient,
                                                        initialized: ceremony.CeremonyResult) -> None:
    first = _shares(initialized)[0]
    client.activate(first)
    with pytest.raises(InvalidInput, match=r"share 1 \(keymanager1\) was already presented; 1 more needed"):
        client.activate(first)
    assert client.status()["needed"] == 1


def test_share_of_another_set_is_refused(client: HSMClient, initialized: ceremony.CeremonyResult) -> None:
    set_id = initialized.shares[0][1].set_id
    foreign = sharing.split(sharing.new_secret(), set_id=set_id + 1, threshold=2, total=3)[0]
    with pytest.raises(InvalidInput, match=f"share set {set_id + 1}, but the token uses set {set_id}"):
        client.activate(foreign.encode())


def test_forged_share_with_right_index_is_refused(client: HSMClient, initialized: ceremony.CeremonyResult) -> None:
    set_id = initialized.shares[0][1].set_id
    forged = sharing.split(sharing.new_secret(), set_id=set_id, threshold=2, total=3)[1]
    with pytest.raises(InvalidInput, match="not the one issued to key manager keymanager2"):
        client.activate(forged.encode())
    assert client.status()["needed"] == 2


def test_activation_events_are_audited(client: HSMClient, engine: sa.Engine,
                                       initialized: ceremony.CeremonyResult) -> None:
    shares = _shares(initialized)
    client.activate(shares[1])
    with pytest.raises(InvalidInput):
        client.activate("RVS1-garbage")
    client.activate(shares[2])
    with session_scope(engine) as s:
        events = [(e.event_type, e.result, e.actor) for e in s.scalars(sa.select(AuditEvent).order_by(AuditEvent.id))
                  if e.event_type.startswith("hsm.")]
    assert ("hsm.share_presented", "success", "keymanager2") in events
    assert ("hsm.share_presented", "failure", "unknown key manager") in events
    assert ("hsm.share_presented", "success", "keymanager3") in events
    assert events[-1] == ("hsm.activated", "success", "hsm-service")


def test_only_digests_of_shares_are_stored(engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    with session_scope(engine) as s:
        stored = {h.share_index: h.digest for h in s.scalars(sa.select(ShareHolder))}
        dump = json.dumps([e.detail for e in s.scalars(sa.select(AuditEvent))])
    for _, share in initialized.shares:
        assert stored[share.index] == share.digest() != share.value
        assert share.value.hex() not in dump


def test_second_service_on_the_same_socket_is_refused(client: HSMClient, settings: Settings,
                                                      engine: sa.Engine) -> None:
    with pytest.raises(ServiceUnavailable, match="already running"):
        serve_in_thread(client.path, HSMService(token_for(settings), engine))


def test_client_without_service_says_how_to_start_it(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="revoca serve hsm"):
        HSMClient(tmp_path / "none.sock").status()


def test_ceremony_twice_is_refused(settings: Settings, engine: sa.Engine,
                                   initialized: ceremony.CeremonyResult) -> None:
    with pytest.raises(AlreadyExists, match="already initialised"):
        ceremony.run(settings, engine, demo=True)


def test_failed_ceremony_leaves_nothing_behind(settings: Settings, engine: sa.Engine) -> None:
    with pytest.raises(InvalidInput, match="exactly 3 different key managers"):
        ceremony.run(settings, engine, key_managers=["nobody"])
    assert not token_for(settings).exists()
    assert not ceremony.is_initialized(settings, engine)
    ceremony.run(settings, engine, demo=True)  # and it can simply be run again
