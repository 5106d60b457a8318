"""The rules of revocation (seed 004 4.9, 5.2.1) through the Python API, on SQLite and PostgreSQL:
the five reasons, no suspension, revoking twice changes nothing, window vs dual control,
idempotency keys, and CA key compromise."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca import ceremony, hierarchy
from ca.config import Settings
from ca.enums import Applicant, CertKind, KeyStatus, ListType, RequestChannel, RequestStatus, Role
from ca.errors import InvalidInput, NotFound, PermissionDenied
from ca.hsm.signer import KeyAlgorithm
from ca.hsm.token import TokenSession
from ca.revocation import compromise, reasons, workflow
from ca.revocation.crl_entry import encode_entry
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import Filing, IdempotencyConflict
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, KeyGeneration, Revocation, RevocationRequest
from ca.storage.revocations import RevocationStore

from support.clock import NO_NTP
from support.installation import open_token
from support.ra_fixtures import (
    CertRef,
    add_operator,
    audit_events,
    certificates,
    count,
    register_terminals,
    revocations,
    subscribers,
)
from support.settings import NOW

LATER = NOW + dt.timedelta(hours=3)


@pytest.fixture
def token_session(settings: Settings, initialized: ceremony.CeremonyResult) -> Iterator[TokenSession]:
    session = open_token(settings, initialized)
    yield session
    session.close()

REASONS = [
    ("keyCompromise", 1), ("cACompromise", 2), ("affiliationChanged", 3), ("superseded", 4),
    ("cessationOfOperation", 5),
]


# --- reasons ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "number"), REASONS)
def test_each_of_the_five_reasons_is_accepted_by_name_and_by_number(name: str, number: int) -> None:
    assert reasons.parse_reason(name) == reasons.parse_reason(number) == RevocationReason(number)
    assert reasons.RFC_NAME[RevocationReason(number)] == name


@pytest.mark.parametrize("value", [6, "certificateHold"])
def test_certificate_hold_is_refused_because_there_is_no_suspension(value: object) -> None:
    with pytest.raises(InvalidInput, match="no suspension") as err:
        reasons.parse_reason(value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value", [0, 7, 8, 10, -1, "bogus", "KeyCompromise", "1", "", None, True, 1.0, [1], {}])
def test_reasons_outside_the_five_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput, match="not allowed") as err:
        reasons.parse_reason(value)
    assert "\n" not in str(err.value)


# --- revoking -----------------------------------------------------------------------------------------


def _cert(store: RevocationStore, ref: CertRef) -> Certificate:
    return store.certificate(store.ca(ref.issuer), ref.serial)


def _window(store: RevocationStore, ref: CertRef, reason: RevocationReason = RevocationReason.KEY_COMPROMISE,
            **kw: object) -> Filing:
    fields: dict[str, object] = {"applicant": Applicant.SELF, "identity_document_checked": True, **kw}
    return Filing(channel=RequestChannel.RA_WINDOW, certificate=_cert(store, ref), reason=reason,
                  **fields)  # type: ignore[arg-type]


def test_a_window_filing_revokes_the_subscriber_certificate_at_once(
        engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    ref = subscribers(engine)[0]
    with session_scope(engine) as s:
        req, created = workflow.file_request(RevocationStore(s), _window(RevocationStore(s), ref,
                                               RevocationReason.AFFILIATION_CHANGED), LATER, actor="clerk")
        public_id = req.public_id
    assert created
    rev = revocations(engine)[ref.id]
    assert (rev.serial, rev.reason, rev.revocation_time) == (ref.serial, 3, LATER.replace(microsecond=0))
    with session_scope(engine) as s:
        stored = RevocationStore(s).request(public_id)
        assert (stored.status, stored.channel, stored.decided_at) == (RequestStatus.COMPLETED,
                                                                      RequestChannel.RA_WINDOW, LATER)
        assert rev.request_id == stored.id
    filed = [json.loads(e.detail) for e in audit_events(engine, "revocation.request_filed")]
    assert [(d["request"], d["revoked_by_this"], d["status"]) for d in filed] == [(public_id, True, "completed")]


def test_revoking_twice_returns_the_original_revocation_unchanged(
        engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    ref = subscribers(engine)[1]
    with session_scope(engine) as s:
        store = RevocationStore(s)
        first, _created = workflow.file_request(store, _window(store, ref), LATER, actor="clerk")
        first_id = first.id
    with session_scope(engine) as s:
        store = RevocationStore(s)
        original = store.revocation_of(ref.id)
        assert original is not None
        before = (original.id, original.revocation_time, original.reason, original.request_id, original.entry_der)
        again, created = workflow.revoke_certificate(store, _cert(store, ref), RevocationReason.SUPERSEDED,
                                                       LATER + dt.timedelta(days=2))
        assert not created
        assert (again.id, again.revocation_time, again.reason, again.request_id, again.entry_der) == before
    # a second window request (another idempotency key) is recorded, but revokes nothing new
    with session_scope(engine) as s:
        store = RevocationStore(s)
        second, created = workflow.file_request(store, _window(store, ref, RevocationReason.CESSATION_OF_OPERATION),
                                                  LATER + dt.timedelta(days=3), actor="clerk")
        assert created and second.id != first_id
    rows = revocations(engine)
    assert len([r for r in rows.values() if r.certificate_id == ref.id]) == 1
    rev = rows[ref.id]
    assert (rev.reason, rev.revocation_time, rev.request_id) == (1, LATER.replace(microsecond=0), first_id)
    filed = [json.loads(e.detail) for e in audit_events(engine, "revocation.request_filed")]
    assert [d["revoked_by_this"] for d in filed] == [True, False]


def test_entry_der_is_the_crl_entry_of_the_revocation(engine: sa.Engine,
                                                      initialized: ceremony.CeremonyResult) -> None:
    ref = subscribers(engine)[2]
    with session_scope(engine) as s:
        store = RevocationStore(s)
        rev, created = workflow.revoke_certificate(store, _cert(store, ref), RevocationReason.SUPERSEDED,
                                                     LATER.replace(microsecond=123456))
        assert created
    rev = revocations(engine)[ref.id]
    when = LATER.replace(microsecond=0)
    assert rev.revocation_time == when
    assert rev.entry_der == encode_entry(ref.serial, when, 4)
    # an independent parser reads it as a revokedCertificates element ...
    parsed = asn1_crl.RevokedCertificate.load(rev.entry_der)
    assert parsed["user_certificate"].native == ref.serial
    assert parsed["revocation_date"].native == when
    assert parsed.crl_reason_value.native == "superseded"
    # ... and cryptography's CRL builder writes the very same bytes for that entry
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=t")
    crl = (x509.CertificateRevocationListBuilder().issuer_name(name).last_update(when)
           .next_update(when + dt.timedelta(days=3))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(ref.serial).revocation_date(when)
                                    .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), False).build())
           .sign(key, hashes.SHA256()))
    assert rev.entry_der in crl.public_bytes(serialization.Encoding.DER)


def _rollover(engine: sa.Engine, keys: TokenSession, ca: str) -> None:
    with session_scope(engine) as s:
        hierarchy.rollover(hierarchy.Context(store=RevocationStore(s), keys=keys, now=NOW + dt.timedelta(days=1),
                                             actor="test", algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), ca)


def test_subscribers_go_on_the_crl_and_ca_certificates_on_the_arl(
        engine: sa.Engine, initialized: ceremony.CeremonyResult, token_session: TokenSession) -> None:
    _rollover(engine, token_session, "osaka")  # makes the two link certificates
    picks = {
        CertKind.SUBSCRIBER: subscribers(engine, "osaka")[0],
        CertKind.SELF_SIGNED: certificates(engine, "osaka", CertKind.SELF_SIGNED)[0],
        CertKind.CROSS: certificates(engine, "bridge", CertKind.CROSS, subject_ca="osaka")[0],
        CertKind.LINK_OLD_WITH_NEW: certificates(engine, "osaka", CertKind.LINK_OLD_WITH_NEW)[0],
        CertKind.LINK_NEW_WITH_OLD: certificates(engine, "osaka", CertKind.LINK_NEW_WITH_OLD)[0],
        CertKind.OCSP_RESPONDER: certificates(engine, "osaka", CertKind.OCSP_RESPONDER)[0],
    }
    with session_scope(engine) as s:
        store = RevocationStore(s)
        for ref in picks.values():
            workflow.revoke_certificate(store, _cert(store, ref), RevocationReason.SUPERSEDED, LATER)
    rows = revocations(engine)
    got = {kind: rows[ref.id].list_type for kind, ref in picks.items()}
    assert got == {CertKind.SUBSCRIBER: ListType.CRL, CertKind.SELF_SIGNED: ListType.ARL,
                   CertKind.CROSS: ListType.ARL, CertKind.LINK_OLD_WITH_NEW: ListType.ARL,
                   CertKind.LINK_NEW_WITH_OLD: ListType.ARL,
                   CertKind.OCSP_RESPONDER: ListType.CRL}  # an end-entity certificate: RFC 5280 CRL
    # and each is listed by the CA that issued it (the bridge for the bridge's cross certificate)
    with session_scope(engine) as s:
        bridge_id = RevocationStore(s).bridge().id
    assert rows[picks[CertKind.CROSS].id].issuer_ca_id == bridge_id


# --- window vs dual control -------------------------------------------------------------------------


def test_a_ca_level_certificate_is_never_revoked_at_a_window_or_online(
        engine: sa.Engine, initialized: ceremony.CeremonyResult) -> None:
    kinds = [CertKind.SELF_SIGNED, CertKind.CROSS, CertKind.OCSP_RESPONDER, CertKind.TLS, CertKind.CVS_SERVER,
             CertKind.RECEIPT_SIGNER]
    for kind in kinds:
        ref = certificates(engine, "bridge", kind)[0]
        for channel in (RequestChannel.RA_WINDOW, RequestChannel.ONLINE):
            with pytest.raises(PermissionDenied, match="dual control"), session_scope(engine) as s:
                store = RevocationStore(s)
                filing = Filing(channel=channel, certificate=_cert(store, ref), applicant=Applicant.SELF,
                                reason=RevocationReason.KEY_COMPROMISE, identity_document_checked=True)
                workflow.file_request(store, filing, LATER, actor="clerk")
    assert count(engine, Revocation) == count(engine, RevocationRequest) == 0


def test_a_window_filing_needs_the_identity_document_checked(engine: sa.Engine,
                                                             initialized: ceremony.CeremonyResult) -> None:
    ref = subscribers(engine)[3]
    with pytest.raises(InvalidInput, match="identity document"), session_scope(engine) as s:
        store = RevocationStore(s)
        workflow.file_request(store, _window(store, ref, identity_document_checked=False), LATER, actor="clerk")
    assert count(engine, Revocation) == count(engine, RevocationRequest) == 0


@pytest.fixture
def staff(engine: sa.Engine, initialized: ceremony.CeremonyResult) -> dict[str, str]:
    """Operators for dual control; 'multi' holds all three roles, to prove persons (not roles) must differ."""
    people = {"rec": (Role.RECEPTIONIST,), "rev": (Role.REVIEWER,), "app": (Role.APPROVER,),
              "multi": (Role.RECEPTIONIST, Role.REVIEWER, Role.APPROVER), "senior1": (Role.SENIOR_OPERATOR,),
              "senior2": (Role.SENIOR_OPERATOR,), "plain": (Role.OPERATOR,)}
    for name, roles in people.items():
        add_operator(engine, name, *roles)
    return {n: n for n in people}


def _file_dual(engine: sa.Engine, ref: CertRef, receptionist: str,
               reason: RevocationReason = RevocationReason.SUPERSEDED) -> str:
    with session_scope(engine) as s:
        store = RevocationStore(s)
        filing = Filing(channel=RequestChannel.DUAL_CONTROL, certificate=_cert(store, ref), reason=reason,
                        receptionist=store.operator(receptionist), note="cross certificate superseded")
        req, created = workflow.file_request(store, filing, LATER, actor=receptionist)
        assert created
        return req.public_id


def _review(engine: sa.Engine, public_id: str, who: str, accept: bool = True) -> RequestStatus:
    with session_scope(engine) as s:
        store = RevocationStore(s)
        return workflow.review(store, public_id, store.operator(who), accept=accept, now=LATER).status


def _approve(engine: sa.Engine, public_id: str, who: str, accept: bool = True) -> RequestStatus:
    with session_scope(engine) as s:
        store = RevocationStore(s)
        req, _rev = workflow.approve(store, public_id, store.operator(who), accept=accept,
                                       now=LATER + dt.timedelta(minutes=5))
        return req.status


def _status(engine: sa.Engine, public_id: str) -> RequestStatus:
    with session_scope(engine) as s:
        return RevocationStore(s).request(public_id).status


def test_dual_control_needs_three_different_people_and_audits_each_step(
        engine: sa.Engine, staff: dict[str, str]) -> None:
    cross = certificates(engine, "bridge", CertKind.CROSS, subject_ca="tokyo")[0]
    public_id = _file_dual(engine, cross, "multi")
    assert _status(engine, public_id) is RequestStatus.PENDING_REVIEW
    assert cross.id not in revocations(engine)
    # the person who filed may not review, even holding the reviewer role
    with pytest.raises(PermissionDenied, match="different person"):
        _review(engine, public_id, "multi")
    # nobody approves before the review
    with pytest.raises(InvalidInput, match="not waiting for approval"):
        _approve(engine, public_id, "app")
    assert _review(engine, public_id, "rev") is RequestStatus.PENDING_APPROVAL
    assert cross.id not in revocations(engine)
    # neither the receptionist nor the reviewer may approve
    with pytest.raises(PermissionDenied, match="different person"):
        _approve(engine, public_id, "multi")
    add_operator(engine, "rev-app", Role.REVIEWER, Role.APPROVER)
    public_id2 = _file_dual(engine, certificates(engine, "bridge", CertKind.CVS_SERVER)[0], "rec")
    _review(engine, public_id2, "rev-app")
    with pytest.raises(PermissionDenied, match="different person"):
        _approve(engine, public_id2, "rev-app")
    assert _status(engine, public_id) is RequestStatus.PENDING_APPROVAL
    assert _approve(engine, public_id, "app") is RequestStatus.COMPLETED
    rev = revocations(engine)[cross.id]
    assert (rev.reason, rev.list_type) == (4, ListType.ARL)
    with session_scope(engine) as s:
        req = RevocationStore(s).request(public_id)
        assert rev.request_id == req.id
        assert (req.receptionist_id, req.reviewer_id, req.approver_id) == tuple(
            RevocationStore(s).operator(n).id for n in ("multi", "rev", "app"))
        assert req.decided_at == LATER + dt.timedelta(minutes=5)
    # a completed request cannot be approved again
    with pytest.raises(InvalidInput, match="not waiting for approval"):
        _approve(engine, public_id, "app")
    steps = [(e.event_type, e.actor, e.result) for e in audit_events(engine)
             if e.event_type.startswith("revocation.") and json.loads(e.detail).get("request") == public_id]
    assert steps == [("revocation.request_filed", "multi", "success"), ("revocation.reviewed", "rev", "success"),
                     ("revocation.approved", "app", "success")]


@pytest.mark.parametrize("stage", ["review", "approval"])
def test_a_rejected_request_revokes_nothing(engine: sa.Engine, staff: dict[str, str], stage: str) -> None:
    cross = certificates(engine, "tokyo", CertKind.CROSS, subject_ca="bridge")[0]
    public_id = _file_dual(engine, cross, "rec")
    if stage == "review":
        assert _review(engine, public_id, "rev", accept=False) is RequestStatus.REJECTED
        with pytest.raises(InvalidInput, match="not waiting for approval"):
            _approve(engine, public_id, "app")
    else:
        _review(engine, public_id, "rev")
        assert _approve(engine, public_id, "app", accept=False) is RequestStatus.REJECTED
    with pytest.raises(InvalidInput, match="not waiting for review"):
        _review(engine, public_id, "rev")
    assert _status(engine, public_id) is RequestStatus.REJECTED
    assert revocations(engine) == {}
    with session_scope(engine) as s:
        assert RevocationStore(s).pending_requests() == []
    last = audit_events(engine)[-1]
    assert last.event_type == ("revocation.reviewed" if stage == "review" else "revocation.rejected")


def test_each_dual_control_step_needs_its_role(engine: sa.Engine, staff: dict[str, str]) -> None:
    cross = certificates(engine, "bridge", CertKind.CROSS, subject_ca="osaka")[0]
    for not_receptionist in ("rev", "app", "plain", "senior1"):
        with pytest.raises(PermissionDenied, match="receptionist role"):
            _file_dual(engine, cross, not_receptionist)
    public_id = _file_dual(engine, cross, "rec")
    for not_reviewer in ("app", "plain", "senior1"):
        with pytest.raises(PermissionDenied, match="reviewer role"):
            _review(engine, public_id, not_reviewer)
    _review(engine, public_id, "rev")
    for not_approver in ("plain", "senior1"):
        with pytest.raises(PermissionDenied, match="approver role"):
            _approve(engine, public_id, not_approver)
    assert _status(engine, public_id) is RequestStatus.PENDING_APPROVAL
    assert revocations(engine) == {}


def test_an_unknown_request_is_not_found(engine: sa.Engine, staff: dict[str, str]) -> None:
    with pytest.raises(NotFound, match="no revocation request"):
        _review(engine, "00000000-0000-0000-0000-000000000000", "rev")


# --- idempotency keys ------------------------------------------------------------------------------


def test_same_terminal_and_key_returns_the_same_request_and_other_content_conflicts(
        engine: sa.Engine, initialized: ceremony.CeremonyResult, token_session: TokenSession,
        tmp_path: Path) -> None:
    t1, t2 = register_terminals(engine, token_session, ["t1", "t2"], tmp_path, now=NOW)
    refs = subscribers(engine)[4:6]
    with session_scope(engine) as s:
        store = RevocationStore(s)
        ids = {t.name: store.terminal(t.name).id for t in (t1, t2)}

    def file(terminal: str, ref: CertRef, key: str, **kw: object) -> tuple[str, bool]:
        with session_scope(engine) as s:
            store = RevocationStore(s)
            req, created = workflow.file_request(
                store, _window(store, ref, terminal_id=ids[terminal], idempotency_key=key, **kw), LATER,
                actor="clerk")
            return req.public_id, created

    first, created = file("t1", refs[0], "key-00000001")
    assert created
    again, created = file("t1", refs[0], "key-00000001")
    assert (again, created) == (first, False)
    rows = revocations(engine)
    assert count(engine, RevocationRequest) == 1 and list(rows) == [refs[0].id]
    for other in ({"reason": RevocationReason.SUPERSEDED}, {"applicant": Applicant.AGENT}):
        with pytest.raises(IdempotencyConflict, match="different request"):
            file("t1", refs[0], "key-00000001", **other)
    with pytest.raises(IdempotencyConflict):
        file("t1", refs[1], "key-00000001")
    # the key belongs to the terminal: another terminal may use the same key for its own request
    theirs, created = file("t2", refs[1], "key-00000001")
    assert created and theirs != first
    assert count(engine, RevocationRequest) == 2 and sorted(revocations(engine)) == sorted(r.id for r in refs)


# --- atomicity --------------------------------------------------------------------------------------


def test_a_failure_while_revoking_leaves_neither_request_nor_revocation(
        engine: sa.Engine, initialized: ceremony.CeremonyResult, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filing is one transaction: if anything fails after the request row was written (here the
    CRL entry encoding; in real life a crash), nothing of it may stay behind, or a retry with the
    same idempotency key would be answered with a request whose certificate was never revoked.
    (On SQLite this needs SQLAlchemy, not pysqlite, to send BEGIN: see ca/storage/engine.py.)"""
    ref = subscribers(engine)[6]

    def broken(*_args: object) -> bytes:
        raise RuntimeError("crash between the request and the revocation")

    monkeypatch.setattr(workflow, "entry_der", broken)
    with pytest.raises(RuntimeError), session_scope(engine) as s:
        store = RevocationStore(s)
        workflow.file_request(store, _window(store, ref), LATER, actor="clerk")
    assert (count(engine, RevocationRequest), count(engine, Revocation)) == (0, 0)


# --- CA key compromise -------------------------------------------------------------------------------


def _compromise(engine: sa.Engine, ca: str, *names: str) -> int:
    with session_scope(engine) as s:
        store = RevocationStore(s)
        ops = tuple(store.operator(n) for n in names)
        return compromise.compromise(store, ca, ops, LATER, note="key found on a stolen laptop")  # type: ignore[arg-type]


def _key_status(engine: sa.Engine, ca: str) -> list[KeyStatus]:
    with session_scope(engine) as s:
        return [k.status for k in RevocationStore(s).ca(ca).keys]


def test_compromise_needs_two_different_senior_operators(engine: sa.Engine, staff: dict[str, str]) -> None:
    for pair, match in ((("senior1", "senior1"), "two different senior operators"),
                        (("senior1", "rec"), "senior-operator role"), (("plain", "senior2"), "senior-operator role"),
                        (("multi", "app"), "senior-operator role")):
        with pytest.raises(PermissionDenied, match=match):
            _compromise(engine, "tokyo", *pair)
    assert _key_status(engine, "tokyo") == [KeyStatus.ACTIVE]
    assert revocations(engine) == {}


@pytest.mark.parametrize("chunk", [5000, 7])  # 7: the bulk insert runs over several chunks
def test_compromise_revokes_everything_the_key_signed_and_every_certificate_of_the_key(
        engine: sa.Engine, staff: dict[str, str], monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(compromise, "COMPROMISE_CHUNK", chunk)
    # one subscriber was revoked earlier: that revocation stands, with its own reason and time
    early = subscribers(engine)[0]
    with session_scope(engine) as s:
        store = RevocationStore(s)
        workflow.file_request(store, _window(store, early), NOW + dt.timedelta(minutes=1), actor="clerk")
    with session_scope(engine) as s:
        store = RevocationStore(s)
        key_id = store.current_key(store.ca("tokyo")).id
        expected = {c.id: c.kind for c in s.scalars(sa.select(Certificate).where(
            sa.or_(Certificate.issuer_key_id == key_id, Certificate.subject_key_id == key_id)))}
        others = {c.id for c in s.scalars(sa.select(Certificate))} - set(expected)
    kinds = sorted(k.value for k in expected.values())
    # 25 subscribers, its responder, its self-signed, its cross to the bridge and the bridge's cross to it
    assert kinds == sorted(["subscriber"] * 25 + ["ocsp-responder", "self-signed", "cross", "cross"])
    total = _compromise(engine, "tokyo", "senior1", "senior2")
    assert total == len(expected) - 1  # all but the one already revoked
    rows = revocations(engine)
    assert set(rows) == set(expected)
    assert not set(rows) & others, "a certificate of another CA's key was revoked"
    when = LATER.replace(microsecond=0)
    for cert_id, rev in rows.items():
        if cert_id == early.id:
            assert (rev.reason, rev.revocation_time) == (1, (NOW + dt.timedelta(minutes=1)).replace(microsecond=0))
            continue
        assert (rev.reason, rev.revocation_time, rev.request_id) == (2, when, None)
        assert rev.list_type is (ListType.ARL if expected[cert_id].is_ca_certificate else ListType.CRL)
        with session_scope(engine) as s:
            cert = s.get(Certificate, cert_id)
            assert cert is not None
            assert (rev.serial, rev.issuer_ca_id) == (cert.serial, cert.issuer_ca_id)
        assert rev.entry_der == encode_entry(rev.serial, when, 2)
    assert _key_status(engine, "tokyo") == [KeyStatus.COMPROMISED]
    assert _key_status(engine, "osaka") == [KeyStatus.ACTIVE]
    [event] = audit_events(engine, "ca.key_compromise")
    assert (event.actor, event.result) == ("senior1+senior2", "success")
    assert json.loads(event.detail)["revoked"] == total


def test_a_second_compromise_of_the_same_key_fails_clearly(engine: sa.Engine, staff: dict[str, str]) -> None:
    _compromise(engine, "hokkaido", "senior1", "senior2")
    before = revocations(engine)
    with pytest.raises(InvalidInput, match="hokkaido has no active key") as err:
        _compromise(engine, "hokkaido", "senior2", "senior1")
    assert "\n" not in str(err.value)
    assert revocations(engine).keys() == before.keys()
    assert len(audit_events(engine, "ca.key_compromise")) == 1
    with pytest.raises(NotFound, match="no CA named 'atlantis'"):
        _compromise(engine, "atlantis", "senior1", "senior2")


def test_compromise_after_a_rollover_revokes_only_what_the_current_key_signed_or_carries(
        engine: sa.Engine, staff: dict[str, str], token_session: TokenSession) -> None:
    _rollover(engine, token_session, "osaka")
    with session_scope(engine) as s:
        store = RevocationStore(s)
        old, new = (k.id for k in store.ca("osaka").keys)
        touched = {c.id: c.kind for c in s.scalars(sa.select(Certificate).where(
            sa.or_(Certificate.issuer_key_id == new, Certificate.subject_key_id == new)))}
    # new self-signed, responder, cross to the bridge, both links, and the bridge's new cross to osaka
    assert sorted(k.value for k in touched.values()) == sorted(
        ["self-signed", "ocsp-responder", "cross", "cross", "link-old-with-new", "link-new-with-old"])
    assert _compromise(engine, "osaka", "senior1", "senior2") == len(touched)
    with session_scope(engine) as s:
        statuses = dict(s.execute(sa.select(KeyGeneration.id, KeyGeneration.status)
                                  .where(KeyGeneration.id.in_([old, new]))).all())
    assert statuses == {old: KeyStatus.RETIRED, new: KeyStatus.COMPROMISED}
    # what only the old key signed (its 25 subscribers among them) stays valid
    assert set(revocations(engine)) == set(touched)
