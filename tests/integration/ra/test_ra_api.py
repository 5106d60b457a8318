"""The RA API through Flask's test client, on SQLite and PostgreSQL, signing with a real SoftHSM2
token: filing by issuer and serial or by certificate, signed receipts checked by `openssl cms`,
idempotent retries, status and lists per terminal, every refusal (one-line JSON error, an audit
record, nothing changed), receipts while the HSM is down, and online revocation by the subscriber.

The terminal's TLS client certificate reaches the app as its DER in the environ
(ca.ra.auth.CLIENT_CERT_ENVIRON), as the gunicorn middleware puts it there.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from ca import ceremony
from ca.config import Settings
from ca.enums import CertKind, Role
from ca.hsm.token import TokenSession
from ca.http.client_cert import CLIENT_CERT_ENVIRON
from ca.ra.app import MAX_BODY, create_app
from ca.ra.receipts import ReceiptSigner
from ca.revocation import workflow
from ca.revocation.reasons import RevocationReason
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationStore
from ca.subscribers import key_pool

from support.installation import CeremonyTemplates, demo_installation, open_token
from support.ra_fixtures import (
    PASSWORD,
    CertRef,
    SwitchableKeyStore,
    Terminal,
    add_operator,
    audit_events,
    basic_auth,
    bridge_roots_pem,
    certificates,
    last_audit_id,
    new_subscriber,
    receipt_fields,
    register_terminals,
    requests,
    revocations,
    signed_request,
    snapshot,
    subscribers,
    verify_receipt,
)
from support.settings import NOW

AT = NOW + dt.timedelta(days=1)  # the RA's clock: certificates were issued at NOW


# --- an RA installation ------------------------------------------------------------------------------


@dataclasses.dataclass
class RA:
    engine: sa.Engine
    token: TokenSession
    keys: SwitchableKeyStore
    app: Flask
    terminals: dict[str, Terminal]
    roots: bytes
    tmp: Path
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def env(self, terminal: str | None) -> dict[str, Any]:
        return {CLIENT_CERT_ENVIRON: self.terminals[terminal].der} if terminal else {}

    def post(self, body: Any, *, terminal: str | None = "t1", auth: tuple[str, str] | None = ("clerk", PASSWORD),
             headers: dict[str, str] | None = None, **kw: Any) -> TestResponse:
        hdrs = {**(basic_auth(*auth) if auth else {}), **(headers or {})}
        if "data" not in kw:
            kw["json"] = body
        return self.client.post("/v1/revocations", environ_base=self.env(terminal), headers=hdrs, **kw)

    def get(self, path: str, *, terminal: str | None = "t1", auth: tuple[str, str] | None = ("clerk", PASSWORD)
            ) -> TestResponse:
        return self.client.get(path, environ_base=self.env(terminal), headers=basic_auth(*auth) if auth else {})

    def online(self, body: bytes, content_type: str = "application/pkcs7-mime", app: Flask | None = None
               ) -> TestResponse:
        return (app or self.app).test_client().post("/v1/online-revocations", data=body, content_type=content_type)


def window(ref: CertRef, key: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = {"issuer_ca": ref.issuer, "serial": ref.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": key or f"key-{uuid.uuid4()}"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def build_ra(engine: sa.Engine, settings: Settings, result: ceremony.CeremonyResult, tmp: Path) -> RA:
    token = open_token(settings, result)
    keys = SwitchableKeyStore(token, up=True)
    terms = register_terminals(engine, token, ["t1", "t2", "t-off", "t-revoked"], tmp, now=NOW)
    with session_scope(engine) as s:
        store = RevocationStore(s)
        store.terminal("t-off").disabled = True
    for name, roles, disabled in (("clerk", (Role.RECEPTIONIST,), False), ("clerk2", (Role.RECEPTIONIST,), False),
                                  ("clerk-off", (Role.RECEPTIONIST,), True), ("reviewer", (Role.REVIEWER,), False)):
        add_operator(engine, name, *roles, disabled=disabled)
    app = create_app(engine, keys, clock=lambda: AT)
    return RA(engine, token, keys, app, {t.name: t for t in terms}, bridge_roots_pem(engine), tmp)


@pytest.fixture
def ra(engine: sa.Engine, settings: Settings, initialized: ceremony.CeremonyResult, tmp_path: Path) -> Iterator[RA]:
    """A fresh installation per test: terminals t1, t2, t-off (disabled); operators clerk, clerk2 (receptionists),
    clerk-off (disabled receptionist), reviewer (no receptionist role)."""
    installation = build_ra(engine, settings, initialized, tmp_path)
    yield installation
    installation.token.close()


def error_of(resp: TestResponse, status: int) -> str:
    assert resp.status_code == status, f"{resp.status_code} (wanted {status}): {resp.get_data(as_text=True)[:500]}"
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert set(body) == {"error", "status"} and body["status"] == status, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    assert "\n" not in body["error"] and "Traceback" not in body["error"], body
    return body["error"]


# --- filing ---------------------------------------------------------------------------------------------


def test_filing_by_issuer_and_serial_answers_201_with_a_receipt_openssl_verifies(ra: RA) -> None:
    ref = subscribers(ra.engine)[0]
    before = last_audit_id(ra.engine)
    resp = ra.post(window(ref, "window-0001"))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    uuid.UUID(answer["request_id"])
    when = AT.replace(microsecond=0).isoformat()
    assert {k: answer[k] for k in ("accepted_at", "revocation_time", "reason", "serial", "issuer_ca", "status",
                                   "channel")} == {
        "accepted_at": AT.isoformat(), "revocation_time": when, "reason": 1, "serial": ref.hex_serial,
        "issuer_ca": "tokyo", "status": "completed", "channel": "ra-window"}
    assert answer["subject"] == x509.load_der_x509_certificate(ref.der).subject.rfc4514_string()
    # the printed receipt: CMS signed by the bridge's receipt key, over exactly the answer's fields
    assert verify_receipt(answer["receipt"], ra.roots) == receipt_fields(answer)
    rev = revocations(ra.engine)[ref.id]
    assert (rev.reason, rev.revocation_time.isoformat()) == (1, when)
    [req] = requests(ra.engine)
    assert req.public_id == answer["request_id"] and rev.request_id == req.id
    assert req.receipt == base64.b64decode(answer["receipt"])
    filed = audit_events(ra.engine, "revocation.request_filed", after_id=before)
    assert [(e.actor, e.result) for e in filed] == [("clerk at terminal t1", "success")]


def test_the_receipt_signer_is_the_bridges_receipt_key(ra: RA) -> None:
    from asn1crypto import cms

    answer = ra.post(window(subscribers(ra.engine)[1])).get_json()
    signed = cms.ContentInfo.load(base64.b64decode(answer["receipt"]))["content"]
    [cert] = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
    [receipt_signer] = certificates(ra.engine, "bridge", CertKind.RECEIPT_SIGNER)
    assert cert.public_bytes(serialization.Encoding.DER) == receipt_signer.der


@pytest.mark.parametrize("form", ["pem", "base64-der", "colon-hex-serial"])
def test_filing_by_the_certificate_itself_or_by_a_colon_separated_serial(ra: RA, form: str) -> None:
    ref = subscribers(ra.engine, "osaka")[2]
    if form == "colon-hex-serial":
        text = format(ref.serial, "X")
        text = ("0" * (len(text) % 2)) + text
        body = window(ref, serial=":".join(text[i:i + 2] for i in range(0, len(text), 2)))
    else:
        cert = ref.pem if form == "pem" else base64.b64encode(ref.der).decode()
        body = window(ref, issuer_ca=None, serial=None, certificate=cert)
    resp = ra.post(body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert (answer["issuer_ca"], answer["serial"]) == ("osaka", ref.hex_serial)
    assert list(revocations(ra.engine)) == [ref.id]
    assert verify_receipt(answer["receipt"], ra.roots) == receipt_fields(answer)


def test_the_same_idempotency_key_again_answers_200_with_the_original_request(ra: RA) -> None:
    ref = subscribers(ra.engine)[3]
    agent = {"applicant": "agent", "agent_authority": "power-of-attorney"}
    first = ra.post(window(ref, "retry-0001", reason=3, **agent))
    assert first.status_code == 201
    counts = snapshot(ra.engine)
    # the retry may name the certificate another way: the request is the same
    for body in (window(ref, "retry-0001", reason=3, **agent),
                 window(ref, "retry-0001", reason="affiliationChanged", issuer_ca=None,
                        serial=None, certificate=ref.pem, **agent)):
        again = ra.post(body)
        assert again.status_code == 200, again.get_data(as_text=True)
        assert again.get_json() == first.get_json()
    assert snapshot(ra.engine) == counts
    # the same key for something else is a conflict, and changes nothing
    before = last_audit_id(ra.engine)
    for other in (window(ref, "retry-0001", reason=1, **agent),
                  window(ref, "retry-0001", reason=3, applicant="agent", agent_authority="guardianship"),
                  window(subscribers(ra.engine)[4], "retry-0001", reason=3, **agent)):
        assert "already used for a different request" in error_of(ra.post(other), 409)
    assert snapshot(ra.engine) == counts
    assert [e.result for e in audit_events(ra.engine, "ra.request_refused", after_id=before)] == ["failure"] * 3
    # another terminal has its own keys
    assert ra.post(window(subscribers(ra.engine)[4], "retry-0001"), terminal="t2").status_code == 201


def test_a_second_request_for_a_revoked_certificate_keeps_the_original_revocation(ra: RA) -> None:
    ref = subscribers(ra.engine)[5]
    first = ra.post(window(ref, reason="keyCompromise")).get_json()
    second = ra.post(window(ref, reason="superseded"), terminal="t2", auth=("clerk2", PASSWORD))
    assert second.status_code == 201
    answer = second.get_json()
    assert answer["request_id"] != first["request_id"]
    assert answer["revocation_time"] == first["revocation_time"]
    assert answer["already_revoked_by"] == "an earlier request"
    rev = revocations(ra.engine)[ref.id]
    assert rev.reason == 1
    assert verify_receipt(answer["receipt"], ra.roots) == receipt_fields(answer)


def test_status_and_list_show_a_terminal_only_its_own_requests(ra: RA) -> None:
    mine = [ra.post(window(r)).get_json() for r in subscribers(ra.engine)[6:8]]
    theirs = ra.post(window(subscribers(ra.engine)[8]), terminal="t2").get_json()
    status = ra.get(f"/v1/revocations/{mine[0]['request_id']}")
    assert status.status_code == 200
    assert status.get_json() == mine[0]
    listing = ra.get("/v1/revocations").get_json()
    assert listing["terminal"] == "t1"
    assert [i["request_id"] for i in listing["items"]] == [m["request_id"] for m in reversed(mine)]  # newest first
    assert [i["request_id"] for i in ra.get("/v1/revocations", terminal="t2").get_json()["items"]] == [
        theirs["request_id"]]
    paged = ra.get("/v1/revocations?limit=1&offset=1").get_json()
    assert [i["request_id"] for i in paged["items"]] == [mine[0]["request_id"]]
    # another terminal's request does not exist for this one
    before = snapshot(ra.engine)
    assert "from this terminal" in error_of(ra.get(f"/v1/revocations/{theirs['request_id']}"), 404)
    assert snapshot(ra.engine) == before


def _filed_while_the_hsm_is_down(ra: RA, idempotency_key: str) -> tuple[Any, dict[str, Any]]:
    """(subscriber, answer) of a revocation filed while the HSM could not sign its receipt."""
    ra.keys.up = False
    ref = subscribers(ra.engine)[9]
    resp = ra.post(window(ref, idempotency_key))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert answer["receipt"] is None
    return ref, answer


def test_a_receipt_the_hsm_could_not_sign_is_signed_by_a_later_get(ra: RA) -> None:
    ref, answer = _filed_while_the_hsm_is_down(ra, "hsm-down-01")
    assert "not activated" in answer["receipt_error"] and "\n" not in answer["receipt_error"]
    assert ref.id in revocations(ra.engine), "the revocation must not depend on the HSM"
    assert ra.get(f"/v1/revocations/{answer['request_id']}").get_json()["receipt"] is None
    ra.keys.up = True
    later = ra.get(f"/v1/revocations/{answer['request_id']}")
    assert later.status_code == 200
    signed = later.get_json()
    assert receipt_fields(signed) == receipt_fields(answer)
    assert verify_receipt(signed["receipt"], ra.roots) == receipt_fields(answer)
    [req] = requests(ra.engine)
    assert req.receipt == base64.b64decode(signed["receipt"])
    # signed once: the stored receipt is what every later answer carries
    calls = ra.keys.signer_calls
    assert ra.get(f"/v1/revocations/{answer['request_id']}").get_json()["receipt"] == signed["receipt"]
    assert ra.post(window(ref, "hsm-down-01")).get_json()["receipt"] == signed["receipt"]
    assert ra.keys.signer_calls == calls


def test_two_gets_signing_at_once_answer_the_one_stored_receipt(ra: RA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers find no receipt and both sign: the first stored stands, and both answer with it."""
    _, answer = _filed_while_the_hsm_is_down(ra, "race-0001")
    ra.keys.up = True
    path = f"/v1/revocations/{answer['request_id']}"
    real_sign = ReceiptSigner.sign
    theirs: list[bytes] = []

    def sign_while_another_worker_signs(self: ReceiptSigner, *args: Any) -> bytes:
        # the other worker signs and stores its receipt between this one's read and its write
        theirs.append(real_sign(self, *args))
        with session_scope(ra.engine) as session:
            RevocationStore(session).store_receipt(answer["request_id"], theirs[0])
        return real_sign(self, *args)

    monkeypatch.setattr(ReceiptSigner, "sign", sign_while_another_worker_signs)
    mine = base64.b64decode(ra.get(path).get_json()["receipt"])
    [req] = [r for r in requests(ra.engine) if r.public_id == answer["request_id"]]
    assert req.receipt == theirs[0]  # the first stored stands
    assert mine == theirs[0]


def test_a_crash_between_request_and_revocation_then_a_retry_still_revokes(
        ra: RA, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies (here: an exception) after the request row is written but before the
    revocation is: the terminal got no answer and retries with the same key; the certificate
    must end up revoked and the retry's answer must say so."""
    ref = subscribers(ra.engine)[10]

    def crash(*_args: object) -> bytes:
        raise RuntimeError("killed between the request row and the revocation row")

    monkeypatch.setattr(workflow, "entry_der", crash)
    assert ra.post(window(ref, "crash-0001")).status_code == 500
    monkeypatch.undo()
    retry = ra.post(window(ref, "crash-0001"))
    assert retry.status_code == 201, retry.get_data(as_text=True)  # the crashed attempt left nothing behind
    assert retry.get_json()["revocation_time"] is not None
    assert ref.id in revocations(ra.engine)


# --- online revocation by the subscriber --------------------------------------------------------------------


def test_the_subscriber_revokes_online_with_a_request_signed_by_their_own_key(ra: RA) -> None:
    ref, key = new_subscriber(ra.engine, ra.token, now=NOW)
    resp = ra.online(signed_request(ref.der, key, {"reason": "cessationOfOperation"}))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert (answer["channel"], answer["reason"], answer["serial"], answer["status"]) == (
        "online", 5, ref.hex_serial, "completed")
    assert verify_receipt(answer["receipt"], ra.roots) == receipt_fields(answer)
    rev = revocations(ra.engine)[ref.id]
    [req] = requests(ra.engine)
    assert (rev.reason, rev.request_id) == (5, req.id)
    assert (req.terminal_id, req.receptionist_id, req.applicant.value) == (None, None, "self")
    # with the serial named and the reason as a number, and as application/cms
    ref2, key2 = new_subscriber(ra.engine, ra.token, now=NOW)
    resp = ra.online(signed_request(ref2.der, key2, {"reason": 5, "serial": ref2.hex_serial}), "application/cms")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert revocations(ra.engine)[ref2.id].reason == 5


# --- refusals: one shared installation per database, since a refusal must change nothing ----------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ceremony_templates: CeremonyTemplates) -> Iterator[RA]:
    tmp = tmp_path_factory.mktemp(f"ra-{request.param}")
    with demo_installation(ceremony_templates, request.param, tmp, with_keys=False) as demo:
        yield from _shared_ra(demo.engine, demo.settings, demo.result, tmp)


def _shared_ra(engine: sa.Engine, settings_: Settings, result: ceremony.CeremonyResult, tmp: Path) -> Iterator[RA]:
    installation = build_ra(engine, settings_, result, tmp)
    # what the refusals refer to: a revoked certificate with a request from t1, a revoked terminal,
    # and an unrevoked subscriber with its key for online requests
    revoked = subscribers(engine)[0]
    setup = installation.post(window(revoked, "setup-key-01"))
    assert setup.status_code == 201, setup.get_data(as_text=True)
    with session_scope(engine) as s:
        store = RevocationStore(s)
        terminal_cert = store.certificate_by_fingerprint(
            hashlib.sha256(installation.terminals["t-revoked"].der).digest())
        assert terminal_cert is not None
        workflow.revoke_certificate(store, terminal_cert, RevocationReason.CESSATION_OF_OPERATION, NOW)
    online_ref, online_key = new_subscriber(engine, installation.token, now=NOW)
    revoked_online_key = key_pool(2048)[0]  # generate_subscribers gives the first pooled key to each single one
    installation.extra.update(revoked=revoked, setup_id=setup.get_json()["request_id"], free=subscribers(engine)[1],
                              online_ref=online_ref, online_key=online_key, revoked_key=revoked_online_key)
    try:
        yield installation
    finally:
        installation.token.close()


def _foreign_cert() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate revoca never issued (self-signed, its own key)."""
    key = key_pool(2048)[3]
    name = x509.Name.from_rfc4514_string("CN=Not from revoca,O=Elsewhere,C=JP")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW)
            .not_valid_after(NOW + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    return cert, key


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _online_body(ra: RA, content: dict[str, Any] | bytes = b'{"reason": "keyCompromise"}', *,
                 ref: CertRef | None = None, key: Any = None) -> bytes:
    ref = ref or ra.extra["online_ref"]
    return signed_request(ref.der, key or ra.extra["online_key"], content)


def _tampered(ra: RA) -> bytes:
    body = _online_body(ra, b'{"reason": 4}')
    return body.replace(b'{"reason": 4}', b'{"reason": 1}')  # same length: the DER stays well-formed


def _terminal_signed(ra: RA) -> bytes:
    t = ra.terminals["t1"]
    key = serialization.load_pem_private_key(t.key_path.read_bytes(), None)
    cert = x509.load_pem_x509_certificate(t.cert_path.read_bytes())
    return signed_request(_der(cert), key, {"reason": "keyCompromise"})


Case = Callable[[RA], TestResponse]

REFUSALS: dict[str, tuple[int, Case]] = {
    # who is calling
    "no client certificate": (401, lambda ra: ra.post(window(ra.extra["free"]), terminal=None)),
    "unregistered client certificate": (403, lambda ra: ra.client.post(
        "/v1/revocations", json=window(ra.extra["free"]), headers=basic_auth("clerk"),
        environ_base={CLIENT_CERT_ENVIRON: _der(_foreign_cert()[0])})),
    "subscriber certificate as client certificate": (403, lambda ra: ra.client.post(
        "/v1/revocations", json=window(ra.extra["free"]), headers=basic_auth("clerk"),
        environ_base={CLIENT_CERT_ENVIRON: ra.extra["free"].der})),
    "disabled terminal": (403, lambda ra: ra.post(window(ra.extra["free"]), terminal="t-off")),
    "terminal certificate revoked": (403, lambda ra: ra.post(window(ra.extra["free"]), terminal="t-revoked")),
    "no Basic credentials": (401, lambda ra: ra.post(window(ra.extra["free"]), auth=None)),
    "Basic not base64": (401, lambda ra: ra.post(window(ra.extra["free"]), auth=None,
                                                 headers={"Authorization": "Basic %%%not-base64"})),
    "Basic without colon": (401, lambda ra: ra.post(window(ra.extra["free"]), auth=None, headers={
        "Authorization": "Basic " + base64.b64encode(b"clerk").decode()})),
    "Bearer instead of Basic": (401, lambda ra: ra.post(window(ra.extra["free"]), auth=None,
                                                        headers={"Authorization": "Bearer abc"})),
    "wrong password": (403, lambda ra: ra.post(window(ra.extra["free"]), auth=("clerk", "wrong password!"))),
    "unknown operator": (403, lambda ra: ra.post(window(ra.extra["free"]), auth=("nobody", PASSWORD))),
    "disabled operator": (403, lambda ra: ra.post(window(ra.extra["free"]), auth=("clerk-off", PASSWORD))),
    "operator without the receptionist role": (403, lambda ra: ra.post(window(ra.extra["free"]),
                                                                       auth=("reviewer", PASSWORD))),
    # which certificate
    "unknown CA": (404, lambda ra: ra.post(window(ra.extra["free"], issuer_ca="atlantis"))),
    "unknown serial": (404, lambda ra: ra.post(window(ra.extra["free"], serial="1234abcd"))),
    "certificate revoca never issued": (404, lambda ra: ra.post(window(
        ra.extra["free"], issuer_ca=None, serial=None,
        certificate=_foreign_cert()[0].public_bytes(serialization.Encoding.PEM).decode()))),
    "serial not hexadecimal": (422, lambda ra: ra.post(window(ra.extra["free"], serial="12xz"))),
    "serial zero": (422, lambda ra: ra.post(window(ra.extra["free"], serial="00"))),
    "serial as a number": (422, lambda ra: ra.post(window(ra.extra["free"], serial=1234))),
    "no certificate named": (422, lambda ra: ra.post(window(ra.extra["free"], issuer_ca=None, serial=None))),
    "certificate neither PEM nor DER": (422, lambda ra: ra.post(window(ra.extra["free"], issuer_ca=None, serial=None,
                                                                       certificate="bm90IGEgY2VydA=="))),
    "CA-level certificate at a window": (403, lambda ra: ra.post(window(
        certificates(ra.engine, "bridge", CertKind.TLS)[0]))),
    # what is asked
    "certificateHold by name": (422, lambda ra: ra.post(window(ra.extra["free"], reason="certificateHold"))),
    "certificateHold by number": (422, lambda ra: ra.post(window(ra.extra["free"], reason=6))),
    "unknown reason name": (422, lambda ra: ra.post(window(ra.extra["free"], reason="bogus"))),
    "reason 0 (unspecified)": (422, lambda ra: ra.post(window(ra.extra["free"], reason=0))),
    "reason 8": (422, lambda ra: ra.post(window(ra.extra["free"], reason=8))),
    "no reason": (422, lambda ra: ra.post(window(ra.extra["free"], reason=None))),
    "identity document not checked": (422, lambda ra: ra.post(window(ra.extra["free"],
                                                                     identity_document_checked=False))),
    "identity document 'true' as text": (422, lambda ra: ra.post(window(ra.extra["free"],
                                                                        identity_document_checked="true"))),
    "no applicant": (422, lambda ra: ra.post(window(ra.extra["free"], applicant=None))),
    "unknown applicant": (422, lambda ra: ra.post(window(ra.extra["free"], applicant="neighbour"))),
    "no idempotency key": (422, lambda ra: ra.post({k: v for k, v in window(ra.extra["free"]).items()
                                                    if k != "idempotency_key"})),
    "idempotency key too short": (422, lambda ra: ra.post(window(ra.extra["free"], "short"))),
    "idempotency key too long": (422, lambda ra: ra.post(window(ra.extra["free"], "k" * 129))),
    "idempotency key a number": (422, lambda ra: ra.post(window(ra.extra["free"], idempotency_key=12345678))),
    "idempotency key reused for other content": (409, lambda ra: ra.post(window(ra.extra["free"], "setup-key-01"))),
    # how it is sent
    "malformed JSON": (422, lambda ra: ra.post(None, data=b'{"reason": "keyCompromise",',
                                               content_type="application/json")),
    "JSON array": (422, lambda ra: ra.post([window(ra.extra["free"])])),
    "JSON string": (422, lambda ra: ra.post("keyCompromise")),
    "JSON null": (422, lambda ra: ra.post(None, data=b"null", content_type="application/json")),
    "not UTF-8": (422, lambda ra: ra.post(None, data=b'{"reason": "\xff\xfe"}', content_type="application/json")),
    "text/plain content type": (422, lambda ra: ra.post(None, data=json.dumps(window(ra.extra["free"])),
                                                        content_type="text/plain")),
    "form-encoded": (422, lambda ra: ra.post(None, data={"reason": "keyCompromise"})),
    "JSON nested 10,000 deep": (422, lambda ra: ra.post(None, data=b"[" * 10_000, content_type="application/json")),
    "JSON objects nested 5,000 deep": (422, lambda ra: ra.post(None, data=b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
                                                               content_type="application/json")),
    "a valid filing with a note nested 40 deep": (422, lambda ra: ra.post(window(ra.extra["free"],
                                                                                 note=_nested(40)))),
    "body over 64 KiB": (413, lambda ra: ra.post(window(ra.extra["free"], note="x" * MAX_BODY))),
    "PUT on the collection": (405, lambda ra: ra.client.put("/v1/revocations", json={},
                                                            environ_base=ra.env("t1"))),
    "DELETE a request (no un-revoke)": (405, lambda ra: ra.client.delete(f"/v1/revocations/{ra.extra['setup_id']}",
                                                                         environ_base=ra.env("t1"))),
    "GET the online endpoint": (405, lambda ra: ra.client.get("/v1/online-revocations")),
    # reading
    "status without client certificate": (401, lambda ra: ra.get(f"/v1/revocations/{ra.extra['setup_id']}",
                                                                  terminal=None)),
    "status of another terminal's request": (404, lambda ra: ra.get(f"/v1/revocations/{ra.extra['setup_id']}",
                                                                     terminal="t2")),
    "status of an unknown request": (404, lambda ra: ra.get(f"/v1/revocations/{uuid.uuid4()}")),
    "status from a disabled terminal": (403, lambda ra: ra.get(f"/v1/revocations/{ra.extra['setup_id']}",
                                                                terminal="t-off")),
    "list without client certificate": (401, lambda ra: ra.get("/v1/revocations", terminal=None)),
    "list without a clerk (it names citizens)": (401, lambda ra: ra.get("/v1/revocations", auth=None)),
    "list by a reviewer, not a receptionist": (403, lambda ra: ra.get("/v1/revocations",
                                                                      auth=("reviewer", PASSWORD))),
    "list with a limit that is no number": (422, lambda ra: ra.get("/v1/revocations?limit=ten")),
    # online
    "online: signed by another key": (403, lambda ra: ra.online(_online_body(ra, key=key_pool(2048)[1]))),
    "online: content changed after signing": (403, lambda ra: ra.online(_tampered(ra))),
    "online: certificate revoca never issued": (404, lambda ra: ra.online(signed_request(
        *(lambda c, k: (_der(c), k))(*_foreign_cert()), {"reason": "keyCompromise"}))),
    "online: already revoked": (403, lambda ra: ra.online(_online_body(ra, ref=ra.extra["revoked"],
                                                                       key=ra.extra["revoked_key"]))),
    "online: RA terminal key (not a subscriber)": (403, lambda ra: ra.online(_terminal_signed(ra))),
    "online: certificate not valid at that time": (403, lambda ra: ra.online(
        _online_body(ra), app=create_app(ra.engine, ra.keys, clock=lambda: NOW + dt.timedelta(days=5 * 365)))),
    "online: certificateHold": (422, lambda ra: ra.online(_online_body(ra, b'{"reason": "certificateHold"}'))),
    "online: no reason": (422, lambda ra: ra.online(_online_body(ra, b'{"serial": "1"}'))),
    "online: another serial named": (422, lambda ra: ra.online(_online_body(ra, b'{"reason": 1, "serial": "ab"}'))),
    "online: signed content not JSON": (422, lambda ra: ra.online(_online_body(ra, b"please revoke"))),
    "online: garbage body": (422, lambda ra: ra.online(b"\x30\x03garbage")),
    "online: empty body": (422, lambda ra: ra.online(b"")),
    "online: 10,000 brackets": (422, lambda ra: ra.online(b"[" * 10_000)),
    "online: 10,000 brackets as JSON": (422, lambda ra: ra.online(b"[" * 10_000, "application/json")),
    # seed 004 4.9.3.1: online only to end the use of the certificate; cACompromise never filed (issue 13)
    "online: keyCompromise (reported at the window)": (422, lambda ra: ra.online(_online_body(ra))),
    "online: superseded": (422, lambda ra: ra.online(_online_body(ra, b'{"reason": 4}'))),
    "window: cACompromise (the CA-compromise path's alone)": (422, lambda ra: ra.post(
        window(ra.extra["free"], reason="cACompromise"))),
    "online: JSON instead of CMS": (422, lambda ra: ra.online(b'{"reason": 1}', "application/json")),
    "online: CMS cut in half": (422, lambda ra: ra.online(_online_body(ra)[:400])),
}


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_refusal_is_one_json_line_with_an_audit_record_and_changes_nothing(shared: RA, case: str) -> None:
    status, call = REFUSALS[case]
    before, audit_before = snapshot(shared.engine), last_audit_id(shared.engine)
    revoked_before = set(revocations(shared.engine))
    message = error_of(call(shared), status)
    assert snapshot(shared.engine) == before, f"{case}: something changed"
    assert set(revocations(shared.engine)) == revoked_before
    refused = audit_events(shared.engine, "ra.request_refused", after_id=audit_before)
    assert [(e.result, json.loads(e.detail)["status"], json.loads(e.detail)["error"]) for e in refused] == [
        ("failure", status, message)], f"{case}: no (or more than one) audit record of the refusal"
    # nothing succeeded but, perhaps, the clerk's login (recorded with the refusal: test_ra_logins)
    assert not [e for e in audit_events(shared.engine, after_id=audit_before)
                if e.result == "success" and e.event_type != "operator.login"]


def test_the_audit_record_of_a_refusal_names_the_terminal_and_clerk_it_knows(shared: RA) -> None:
    before = last_audit_id(shared.engine)
    error_of(shared.post(window(shared.extra["free"], reason="certificateHold")), 422)
    [event] = audit_events(shared.engine, "ra.request_refused", after_id=before)
    assert event.actor == "clerk at terminal t1"


@pytest.mark.parametrize("body", [b'{"reason": ', b'{"reason": "keyCompromise"}'], ids=["malformed", "no-key"])
def test_a_caller_without_client_certificate_gets_401_whatever_the_body(shared: RA, body: bytes) -> None:
    error_of(shared.post(None, terminal=None, auth=None, data=body, content_type="application/json"), 401)


@pytest.mark.parametrize("query", ["limit=-1", "offset=100000000000000000000", "limit=0&offset=-1"])
def test_list_paging_out_of_range_is_refused_or_clamped_never_a_500(shared: RA, query: str) -> None:
    resp = shared.get(f"/v1/revocations?{query}")
    assert resp.status_code in (200, 422), resp.get_data(as_text=True)[:300]
    if resp.status_code == 200:
        body = resp.get_json()
        assert 0 <= body["limit"] <= 500 and body["offset"] >= 0, body


UNSTORABLE: dict[str, Callable[[RA, CertRef], TestResponse]] = {
    "NUL in the idempotency key": lambda ra, ref: ra.post(window(ref, "key-\x00-0001")),
    "NUL in the CA name": lambda ra, ref: ra.post(window(ref, issuer_ca="to\x00kyo")),
    "NUL in the operator name": lambda ra, ref: ra.post(window(ref), auth=("cl\x00erk", PASSWORD)),
    "lone surrogate in the CA name": lambda ra, ref: ra.post(
        None, content_type="application/json",
        data=json.dumps(window(ref, issuer_ca="PLACEHOLDER")).replace("PLACEHOLDER", "\\ud800")),
    "lone surrogate in the idempotency key": lambda ra, ref: ra.post(
        None, content_type="application/json",
        data=json.dumps(window(ref, "PLACEHOLDER")).replace("PLACEHOLDER", "key-\\udfff-0001")),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_text_the_database_cannot_hold_is_never_a_500(shared: RA, case: str) -> None:
    ref = subscribers(shared.engine, "hokkaido")[list(UNSTORABLE).index(case)]
    before = snapshot(shared.engine)
    resp = UNSTORABLE[case](shared, ref)
    assert resp.status_code < 500, f"{resp.status_code}: {resp.get_data(as_text=True)[:300]}"
    if resp.status_code >= 400:  # where the database can hold the text (SQLite and NUL) a 201 is right too
        error_of(resp, resp.status_code)
        assert snapshot(shared.engine) == before


def _mutate_oid(body: bytes, old: bytes, new: bytes) -> bytes:
    at = body.index(old)
    return body[:at] + new + body[at + len(old):]


RSA_ENCRYPTION = bytes.fromhex("06092a864886f70d010101")
MALFORMED_CMS = {
    # the certificate inside is not a certificate cryptography can load (version tag changed)
    "certificate unparsable": lambda body: _mutate_oid(body, bytes.fromhex("a003020102"),
                                                       bytes.fromhex("0403020102")),
    # the certificate's key is of an unknown algorithm
    "certificate key algorithm unknown": lambda body: _mutate_oid(body, RSA_ENCRYPTION,
                                                                  bytes.fromhex("06092a864886f70d01011d")),
}


@pytest.mark.parametrize("case", list(MALFORMED_CMS))
def test_a_malformed_online_request_is_422_not_500(shared: RA, case: str) -> None:
    body = MALFORMED_CMS[case](_online_body(shared))
    resp = shared.online(body)
    assert 400 <= resp.status_code < 500, f"{resp.status_code}: {resp.get_data(as_text=True)[:300]}"


# --- fuzzing -------------------------------------------------------------------------------------------------------


_TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=40)  # NUL: see the test above
_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
                     max_leaves=10)
_FIELDS = st.sampled_from(["issuer_ca", "serial", "certificate", "reason", "applicant", "identity_document_checked",
                           "idempotency_key"])


@st.composite
def _bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed requests with some fields random, so the fuzzing gets past the first checks."""
    body: dict[str, Any] = {"issuer_ca": draw(st.sampled_from(["tokyo", "osaka", "bridge", "x"])),
                            "serial": draw(st.sampled_from(["1", "ff", "0"]) | _TEXT),
                            "reason": draw(st.sampled_from(["keyCompromise", 6, 9]) | _JSON),
                            "applicant": draw(st.sampled_from(["self", "agent"]) | _JSON),
                            "identity_document_checked": draw(st.booleans() | _JSON),
                            "idempotency_key": draw(st.text(min_size=8, max_size=16).filter(lambda s: "\x00" not in s)
                                                    | _JSON)}
    for field in draw(st.lists(_FIELDS, max_size=3)):
        body.pop(field, None)
    body.update(draw(st.dictionaries(_FIELDS | _TEXT, _JSON, max_size=3)))
    return body


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies())
def test_random_json_bodies_never_get_a_500(shared: RA, body: dict[str, Any]) -> None:
    resp = shared.post(body)
    assert resp.status_code < 500, (body, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400:
        error_of(resp, resp.status_code)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | _JSON.map(lambda v: json.dumps(v).encode()))
def test_random_bytes_as_json_never_get_a_500(shared: RA, data: bytes) -> None:
    resp = shared.post(None, data=data, content_type="application/json")
    assert resp.status_code < 500, (data, resp.get_data(as_text=True)[:300])
    error_of(resp, resp.status_code)


@pytest.mark.parametrize("values", [[], [b"\x00" * 32, b"\x01" * 32]], ids=["no value", "two values"])
def test_a_message_digest_without_exactly_one_value_is_refused_not_a_500(shared: RA, values: list[bytes]) -> None:
    info = cms.ContentInfo.load(_online_body(shared))
    attrs = info["content"]["signer_infos"][0]["signed_attrs"]
    for attr in attrs:
        if attr["type"].native == "message_digest":
            attr["values"] = values  # found by hypothesis: an empty SET OF values was an IndexError
    body = cms.ContentInfo.load(info.dump(force=True)).dump()
    resp = shared.online(body)
    assert resp.status_code == 422, resp.get_data(as_text=True)[:300]
    assert "messageDigest" in error_of(resp, 422)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=3))
def test_corrupted_online_requests_never_get_a_500(shared: RA, flips: list[tuple[int, int]]) -> None:
    body = bytearray(_online_body(shared))
    for at, value in flips:
        body[at % len(body)] = value
    resp = shared.online(bytes(body))
    assert resp.status_code < 500, resp.get_data(as_text=True)[:300]


# --- OpenAPI ------------------------------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_openapi_json_describes_every_endpoint(shared: RA) -> None:
    resp = shared.client.get("/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    spec = json.loads(resp.get_data())
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:  # not installed here: check the structure by hand
        validate = None
    if validate is not None:
        validate(spec)
    assert re.fullmatch(r"3\.\d+\.\d+", spec["openapi"])
    assert spec["info"]["title"] and spec["info"]["version"]
    for ref in _refs(spec):  # every $ref resolves inside the document
        node: Any = spec
        assert ref.startswith("#/"), ref
        for part in ref[2:].split("/"):
            node = node[part]
    flask_paths: dict[str, set[str]] = {}
    for rule in shared.app.url_map.iter_rules():
        if rule.endpoint != "static":
            flask_paths.setdefault(re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule), set()).update(
                m for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
    spec_paths = {re.sub(r"\{\w+\}", "{}", p): {m.upper() for m in ops} for p, ops in spec["paths"].items()}
    assert spec_paths == flask_paths
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("responses"), (path, method)
            for code in op["responses"]:
                assert re.fullmatch(r"[1-5]\d\d", code), (path, method, code)
    post = spec["paths"]["/v1/revocations"]["post"]
    assert {"201", "200", "401", "403", "404", "409", "413", "422"} <= set(post["responses"])
    schema = spec["components"]["schemas"]["RevocationRequest"]
    assert set(schema["required"]) == {"reason", "applicant", "identity_document_checked", "idempotency_key"}
    reasons = spec["components"]["schemas"]["Reason"]["oneOf"][0]["enum"]
    assert "certificateHold" not in reasons and "cACompromise" not in reasons and len(reasons) == 4
    assert set(spec["components"]["schemas"]["Receipt"]["properties"]) >= {
        "request_id", "accepted_at", "revocation_time", "reason", "serial", "receipt", "receipt_error"}


def test_clerks_are_stored_with_password_hashes_only(shared: RA) -> None:
    """Only hashes of credentials are stored (seed 004 5.2.3)."""
    with shared.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT credential_hash FROM operators")).scalars().all()
    assert rows and all(r.startswith("scrypt$") and PASSWORD not in r for r in rows)


def test_online_request_with_a_certificate_of_invalid_version_is_422(shared: RA) -> None:
    """Found by the corruption test: cryptography raises InvalidVersion, not ValueError."""
    body = _online_body(shared)
    at = body.index(bytes.fromhex("a003020102"))  # the certificate's [0] version v3
    resp = shared.online(body[:at] + bytes.fromhex("a003020111") + body[at + 5:])  # version 17
    assert resp.status_code == 422, resp.get_data(as_text=True)[:300]
