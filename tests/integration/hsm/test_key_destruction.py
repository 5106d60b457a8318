"""Key destruction by M key managers (seed 004 6.2.10, 5.2.2; issue 13), with a real SoftHSM2 token.

`revoca ca destroy-key` is refused while anything still needs the key (ca.hsm.destruction: the
active key, the key that signs the lists, a current list it signed, an unexpired certificate it
signed that is not revoked, a responder certificate that carries it); once nothing does, the
token objects go, the key is marked destroyed with time and people, it is audited, and the signer
refuses the key from then on, also after a restart.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pwd
import subprocess
import sys

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca import hierarchy
from ca.crl.issue import issue_list
from ca.enums import CertKind, KeyStatus, ListType
from ca.errors import InvalidInput, NotFound, PermissionDenied
from ca.hsm.destruction import destroy_key
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, DestroyedKey, KeyGeneration
from ca.storage.store import Store

from support.clock import NO_NTP
from support.hsm_service import RunningHSM
from support.installation import open_token
from support.tools import as_other_users, revoca

KM = ("keymanager1", "keymanager2")


def _rollover(hsm: RunningHSM, ca: str = "tokyo", *, now: dt.datetime | None = None) -> None:
    with session_scope(hsm.engine) as s:
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=hsm.client, now=now or dt.datetime.now(dt.UTC),
                                             actor="test", algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), ca)


def _key(hsm: RunningHSM, generation: int, ca: str = "tokyo") -> tuple[int, str, KeyStatus]:
    with session_scope(hsm.engine, readonly=True) as s:
        key = next(k for k in Store(s).ca(ca).keys if k.generation == generation)
        assert key.key_label is not None
        return key.id, key.key_label, key.status


def _responder_label(hsm: RunningHSM, ca: str = "tokyo") -> str:
    with session_scope(hsm.engine, readonly=True) as s:
        store = Store(s)
        (row,) = store.certificates(issuer=store.ca(ca), kinds=[CertKind.OCSP_RESPONDER])
        assert row.key_label is not None
        return row.key_label


def _expire_what_it_signed(hsm: RunningHSM, key_id: int) -> None:
    """The state years later: every certificate the key signed has expired."""
    with session_scope(hsm.engine) as s:
        s.execute(sa.update(Certificate).where(Certificate.issuer_key_id == key_id)
                  .values(not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))


def _last_expiry(hsm: RunningHSM, key_id: int) -> dt.datetime:
    with session_scope(hsm.engine, readonly=True) as s:
        last = s.scalar(sa.select(sa.func.max(Certificate.not_after)).where(Certificate.issuer_key_id == key_id))
        assert last is not None
        return last if last.tzinfo else last.replace(tzinfo=dt.UTC)


def _destroy_cli(hsm: RunningHSM, key: str, *names: str, ca: str = "tokyo") -> tuple[int, str, str]:
    logins = [a for name in names for a in ("--operator", name)]
    return revoca(hsm.env(), "ca", "destroy-key", "--ca", ca, "--key", key, *logins, stdin=hsm.passwords(*names))


def _events(hsm: RunningHSM, event: str) -> list[tuple[str, str, dict[str, object]]]:
    hsm.service.wait_for_audit()
    with session_scope(hsm.engine, readonly=True) as s:
        return [(e.result, e.actor, json.loads(e.detail)) for e in s.scalars(
            sa.select(AuditEvent).where(AuditEvent.event_type == event).order_by(AuditEvent.id))]


def _crl_tbs() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (x509.CertificateRevocationListBuilder()
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tokyo")]))
            .last_update(now).next_update(now + dt.timedelta(days=3))
            .sign(key, hashes.SHA256())).tbs_certlist_bytes


def _sign(hsm: RunningHSM, label: str) -> None:
    hsm.client.call("sign", label=label, data=base64.b64encode(_crl_tbs()).decode())


# --- refused while something needs the key -----------------------------------------------------------


def test_the_active_key_is_refused_and_kept(hsm: RunningHSM) -> None:
    key_id, label, _ = _key(hsm, 1)
    code, _out, err = _destroy_cli(hsm, "1", *KM)
    assert code == 5, err
    assert "CA tokyo key generation 1" in err and "is still needed: it is CA tokyo's active key" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert _key(hsm, 1)[2] is KeyStatus.ACTIVE
    assert hsm.service.activation.session().object_classes(label) == ["private_key", "public_key"]
    _sign(hsm, label)  # and it still signs
    refused = [e for e in _events(hsm, "hsm.key_destroyed") if e[0] == "failure"]
    assert refused and refused[-1][1] == "keymanager1+keymanager2"
    assert "active key" in str(refused[-1][2]["error"])


def test_a_retired_key_whose_certificates_are_unexpired_is_refused(hsm: RunningHSM) -> None:
    _rollover(hsm)
    _key_id, label, status = _key(hsm, 1)
    assert status is KeyStatus.RETIRED
    code, _out, err = _destroy_cli(hsm, label, *KM)  # by label this time
    assert code == 5, err
    assert "is still needed:" in err and "unexpired certificate(s) it signed are not revoked" in err
    assert "OCSP responder certificates for them come from this key" in err
    assert _key(hsm, 1)[2] is KeyStatus.RETIRED
    assert hsm.service.activation.session().object_classes(label) == ["private_key", "public_key"]


def test_a_responder_key_in_use_is_refused(hsm: RunningHSM) -> None:
    label = _responder_label(hsm)
    code, _out, err = _destroy_cli(hsm, label, *KM)
    assert code == 5, err
    assert f"ocsp-responder key {label} of CA tokyo is still needed: 1 unexpired certificate(s) carry it" in err
    assert hsm.service.activation.session().object_classes(label) == ["private_key", "public_key"]


def test_the_key_that_signed_the_current_lists_waits_for_the_successors(hsm: RunningHSM) -> None:
    """Rule 3, with the test clock past every certificate the old key signed: its last CRL and ARL
    are still the CA's current ones until the new key has issued its own."""
    settings = hsm.installation.settings
    for list_type in ListType:
        issue_list(hsm.engine, hsm.client, settings.data_dir, "tokyo", list_type, now=dt.datetime.now(dt.UTC),
                   time_guard=NO_NTP)
    _rollover(hsm)
    key_id, label, _ = _key(hsm, 1)
    later = _last_expiry(hsm, key_id) + dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match=r"current CRL #1 .* is signed with it; issue the next one with the "
                                           r"newer key first .*current ARL #1"):
        destroy_key(hsm.engine, hsm.client, "tokyo", "1", by=KM, now=later)
    for list_type in ListType:
        issue_list(hsm.engine, hsm.client, settings.data_dir, "tokyo", list_type,
                   now=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), time_guard=NO_NTP)
    done = destroy_key(hsm.engine, hsm.client, "tokyo", "1", by=KM, now=later)
    assert (done.key.label, done.by, done.token_objects) == (label, KM, 2)
    assert _key(hsm, 1)[2] is KeyStatus.DESTROYED


def test_the_newest_key_signs_the_lists_even_when_compromised(hsm: RunningHSM) -> None:
    """A compromised key without a successor goes on signing its CA's lists (seed 004 4.9.12)."""
    key_id, _label, _ = _key(hsm, 1, "hokkaido")
    with session_scope(hsm.engine) as s:
        s.execute(sa.update(KeyGeneration).where(KeyGeneration.id == key_id).values(status=KeyStatus.COMPROMISED))
    with pytest.raises(InvalidInput, match="CA hokkaido's CRL and ARL are signed with it"):
        destroy_key(hsm.engine, hsm.client, "hokkaido", "1", by=KM,
                    now=_last_expiry(hsm, key_id) + dt.timedelta(days=1))


def test_destroy_key_needs_m_different_key_managers(hsm: RunningHSM) -> None:
    _rollover(hsm)
    key_id, label, _ = _key(hsm, 1)
    _expire_what_it_signed(hsm, key_id)
    code, _out, err = _destroy_cli(hsm, "1", "keymanager1")
    assert code == 8, err
    assert "needs 2 different people" in err
    code, _out, err = _destroy_cli(hsm, "1", "keymanager1", "keymanager1")
    assert code == 8 and "the same operator cannot count as two people" in err, err
    code, _out, err = revoca(hsm.env(), "ca", "destroy-key", "--ca", "tokyo", "--key", "1", "--operator",
                             "keymanager1", "--operator", "cast-senior1",
                             stdin=hsm.passwords("keymanager1") + "cast-senior1 password\n")
    assert code == 8, err
    assert _key(hsm, 1)[2] is KeyStatus.RETIRED
    assert hsm.service.activation.session().object_classes(label) == ["private_key", "public_key"]


# --- destroyed once nothing needs it -------------------------------------------------------------------


@pytest.mark.parametrize("hsm", ["sqlite", "postgresql"], indirect=True)
def test_a_retired_key_nothing_needs_is_destroyed_and_never_signs_again(hsm: RunningHSM) -> None:
    _rollover(hsm)
    key_id, label, _ = _key(hsm, 1)
    _expire_what_it_signed(hsm, key_id)
    _sign(hsm, label)  # retired, not destroyed: the admin may still have it sign
    code, out, err = _destroy_cli(hsm, "1", *KM)
    assert code == 0, err
    assert f"CA tokyo key generation 1 ({label}) destroyed by keymanager1, keymanager2" in out
    assert "2 token object(s) destroyed" in out and "no backup holds this key" in out  # none taken here
    # the token holds nothing of it (python-pkcs11, in the service's session)
    assert hsm.service.activation.session().object_classes(label) == []
    # marked, with time and people
    with session_scope(hsm.engine, readonly=True) as s:
        assert s.get(KeyGeneration, key_id).status is KeyStatus.DESTROYED  # type: ignore[union-attr]
        row = s.scalars(sa.select(DestroyedKey)).one()
        assert (row.key_label, row.key_generation_id, row.destroyed_by, row.token_objects) == (
            label, key_id, "keymanager1+keymanager2", 2)
        assert abs(row.destroyed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    # audited: the act (the CLI) and the token side (the service)
    (event,) = [e for e in _events(hsm, "hsm.key_destroyed") if e[0] == "success"]
    assert event[1] == "keymanager1+keymanager2"
    assert (event[2]["key_label"], event[2]["generation"], event[2]["token_objects"]) == (label, 1, 2)
    (objects,) = _events(hsm, "hsm.key_objects_destroyed")
    assert objects[0] == "success" and objects[2]["objects"] == 2 and objects[2]["by"] == list(KM)
    # the signer refuses it, even the admin, and says why
    with pytest.raises(PermissionDenied, match="was destroyed"):
        _sign(hsm, label)
    with pytest.raises(NotFound, match="was destroyed"):
        hsm.client.signer(label)
    # a second destruction is refused as such
    code, _out, err = _destroy_cli(hsm, "1", *KM)
    assert code == 5 and "was already destroyed at" in err and "by keymanager1+keymanager2" in err, err
    # after a restart the signer still refuses it (the label comes from the database)
    hsm.restart()
    with pytest.raises(PermissionDenied, match="was destroyed"):
        _sign(hsm, label)
    _sign(hsm, _key(hsm, 2)[1])  # the new key signs
    # and with the token opened directly, nothing is left under that label
    hsm.stop()
    token = open_token(hsm.installation.settings, hsm.installation.result)
    try:
        assert token.object_classes(label) == []
        assert _key(hsm, 2)[1] in token.labels()
    finally:
        token.close()
    hsm.start()  # for the fixture's own stop


def test_a_responder_key_whose_certificate_expired_is_destroyed(hsm: RunningHSM) -> None:
    label = _responder_label(hsm)
    with session_scope(hsm.engine, readonly=True) as s:
        not_after = s.scalar(sa.select(Certificate.not_after).where(Certificate.key_label == label))
    assert not_after is not None
    later = (not_after if not_after.tzinfo else not_after.replace(tzinfo=dt.UTC)) + dt.timedelta(seconds=1)
    done = destroy_key(hsm.engine, hsm.client, "tokyo", label, by=KM, now=later)
    assert (done.key.kind, done.token_objects) == ("ocsp-responder", 2)
    assert hsm.service.activation.session().object_classes(label) == []
    with session_scope(hsm.engine, readonly=True) as s:
        row = s.scalars(sa.select(DestroyedKey)).one()
        assert row.key_generation_id is None and row.certificate_id is not None


def test_what_is_not_revocas_to_destroy_is_refused(hsm: RunningHSM) -> None:
    with pytest.raises(NotFound, match="CA tokyo has no key 'ca/none'"):
        destroy_key(hsm.engine, hsm.client, "tokyo", "ca/none", by=KM, now=dt.datetime.now(dt.UTC))
    with pytest.raises(InvalidInput, match="kept in a file"):
        destroy_key(hsm.engine, hsm.client, "tokyo", "file:ocsp/tokyo", by=KM, now=dt.datetime.now(dt.UTC))


# --- the HSM service's own refusal --------------------------------------------------------------------

CLIENT = r"""
import json, sys
from ca.errors import RevocaError
from ca.hsm.client import HSMClient
try:
    print(json.dumps({"objects": HSMClient(sys.argv[1], timeout=30).destroy(sys.argv[2], by=["keymanager1"])}))
except RevocaError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


@as_other_users
def test_the_service_destroys_keys_only_for_the_admin_identity(shared_hsm: RunningHSM) -> None:
    _rollover(shared_hsm)
    key_id, label, _ = _key(shared_hsm, 1)
    _expire_what_it_signed(shared_hsm, key_id)
    for user in ("daemon", "nobody"):
        pwd.getpwnam(user)
        proc = subprocess.run(["setpriv", f"--reuid={user}", "--regid=daemon", "--clear-groups", sys.executable,
                               "-c", CLIENT, str(shared_hsm.socket), label], capture_output=True, text=True,
                              timeout=60, cwd="/")
        assert proc.returncode == 0, proc.stderr
        answer = json.loads(proc.stdout)
        assert answer["error"] == "PermissionDenied", answer
        assert "only the officers' CLI on the CA machine may destroy keys" in answer["message"]
    assert shared_hsm.service.activation.session().object_classes(label) == ["private_key", "public_key"]
    refused = [e for e in _events(shared_hsm, "hsm.key_destroyed") if e[0] == "failure"]
    assert [(actor, detail["op"], detail["key_label"]) for _, actor, detail in refused] == [
        ("unknown identity", "destroy", label)] * 2
    _sign(shared_hsm, label)  # still there, still the admin's
