"""The signer signs only what its caller's role may ask, and accounts for every signature (issue 12).

Found in an attack: the RA, OCSP, TSA and status-page workers ran as the HSM service's user;
from such a process a raw `sign` with the bridge key made a `CN=Evil Sub CA` certificate that
`openssl verify` accepted, `generate` made a key, and nothing was audited.

Here the HSM service runs in this process (root, the admin) and the callers are real other
Unix users connecting to its socket (`setpriv`), each mapped to a service identity
(support.signer_policy, shared with tests/integration/cvs/test_cvs_signer.py).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import algos
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from ca.ceremony import demo_key_managers
from ca.crl.tbs import CRLFields
from ca.enums import CertKind, ListType, Role
from ca.errors import PermissionDenied
from ca.hsm.client import HSMClient
from ca.hsm.policy import Caller, Signed, classify
from ca.hsm.service import HSMService
from ca.hsm.signer import KeyAlgorithm
from ca.http.server_tls import ensure_server_tls, tls_paths
from ca.revocation.crl_entry import encode_entry
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate
from ca.storage.store import ReadStore

from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import add_account, password_of
from support.signer_policy import ask, b64, evil_sub_ca_tbs, policy_service, refused_calls, run_as, signed_attributes
from support.tools import as_other_users

pytestmark = as_other_users

# Existing system users stand in for the service identities; all get the socket's group.
AS = {Caller.OCSP: "daemon", Caller.SCHEDULER: "bin", Caller.RA: "sys", Caller.UNKNOWN: "nobody"}


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("signer"), with_keys=False) as made:
        yield made


@pytest.fixture(scope="module")
def service(installation: Installation) -> Iterator[tuple[HSMService, Path]]:
    with policy_service(installation, AS, prefix="rvpol") as made:
        yield made


def _labels(installation: Installation) -> dict[str, str]:
    with session_scope(installation.engine, readonly=True) as s:
        store = ReadStore(s)
        rows = s.scalars(sa.select(Certificate).where(Certificate.key_label.is_not(None))).all()
        by_kind = {(r.kind, r.issuer_ca_id): r.key_label for r in rows}
        bridge, tokyo = store.ca("bridge"), store.ca("tokyo")
        return {"bridge": store.current_key(bridge).key_label, "tokyo": store.current_key(tokyo).key_label,
                "responder": by_kind[(CertKind.OCSP_RESPONDER, tokyo.id)],
                "receipt": by_kind[(CertKind.RECEIPT_SIGNER, bridge.id)]}


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def crl_tbs() -> bytes:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    crl = (x509.CertificateRevocationListBuilder()
           .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tokyo")]))
           .last_update(now).next_update(now + dt.timedelta(days=3))
           .add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(7).revocation_date(now).build())
           .sign(key, hashes.SHA256()))
    return crl.tbs_certlist_bytes


def response_data() -> bytes:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tokyo")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(5).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    der = (x509_ocsp.OCSPResponseBuilder()
           .add_response(cert=cert, issuer=cert, algorithm=hashes.SHA1(), cert_status=x509_ocsp.OCSPCertStatus.GOOD,
                         this_update=now, next_update=now + dt.timedelta(days=1), revocation_time=None,
                         revocation_reason=None)
           .responder_id(x509_ocsp.OCSPResponderEncoding.HASH, cert)
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    return asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"].dump()


def test_the_ocsp_identity_gets_responses_signed_and_nothing_else(installation: Installation,
                                                                  service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    results = ask(sock, AS[Caller.OCSP], [
        ("status", "status", {}),
        ("response with the responder key", "sign", {"label": labels["responder"], "data": b64(response_data())}),
        ("evil sub CA with the bridge key", "sign", {"label": labels["bridge"], "data": b64(evil_sub_ca_tbs())}),
        ("a CRL with the CA key", "sign", {"label": labels["tokyo"], "data": b64(crl_tbs())}),
        ("a CRL digest with the CA key", "sign_digest", {"label": labels["tokyo"], "digest": b64(os.urandom(32))}),
        ("a response with the CA key", "sign", {"label": labels["tokyo"], "data": b64(response_data())}),
        ("raw bytes with the responder key", "sign", {"label": labels["responder"], "data": b64(b"hello")}),
        ("a new key", "generate", {"label": "ca/evil/1/00", "algorithm": "p256"}),
    ])
    assert results["status"] == "ok" and results["response with the responder key"] == "ok"
    assert refused_calls(results) == set(results) - {"status", "response with the responder key"}
    made.wait_for_audit()
    refusals = _audit(installation, before, "hsm.sign_refused")
    assert len(refusals) == 6 and {e.actor for e in refusals} == {"ocsp identity"}
    assert {json.loads(e.detail)["key_label"] for e in refusals} >= {labels["bridge"], labels["tokyo"]}


def test_the_scheduler_signs_lists_the_ra_receipts_and_an_unknown_user_nothing(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    _, sock = service
    labels = _labels(installation)
    scheduler = ask(sock, AS[Caller.SCHEDULER], [
        ("a CRL", "sign", {"label": labels["tokyo"], "data": b64(crl_tbs())}),
        ("a CRL digest", "sign_digest", {"label": labels["tokyo"], "digest": b64(os.urandom(32))}),
        ("a certificate", "sign", {"label": labels["bridge"], "data": b64(evil_sub_ca_tbs())}),
        ("a response", "sign", {"label": labels["responder"], "data": b64(response_data())}),
        ("a CRL with the receipt key", "sign", {"label": labels["receipt"], "data": b64(crl_tbs())}),
        ("a time stamp with a CA key", "sign", {"label": labels["tokyo"],
                                                "data": b64(signed_attributes("1.2.840.113549.1.9.16.1.4"))}),
    ])
    assert refused_calls(scheduler) == {"a certificate", "a response", "a CRL with the receipt key",
                                   "a time stamp with a CA key", "a CRL digest"}  # a bare digest says nothing
    assert scheduler["a CRL"] == "ok"
    ra = ask(sock, AS[Caller.RA], [
        ("a receipt", "sign", {"label": labels["receipt"], "data": b64(signed_attributes("data"))}),
        ("a time stamp with the receipt key", "sign", {"label": labels["receipt"],
                                                       "data": b64(signed_attributes("1.2.840.113549.1.9.16.1.4"))}),
        ("a certificate", "sign", {"label": labels["bridge"], "data": b64(evil_sub_ca_tbs())}),
        ("a receipt with the bridge key", "sign", {"label": labels["bridge"],
                                                   "data": b64(signed_attributes("data"))}),
    ])
    assert ra["a receipt"] == "ok"
    assert refused_calls(ra) == set(ra) - {"a receipt"}
    nobody = ask(sock, AS[Caller.UNKNOWN], [
        ("status", "status", {}),
        ("a CRL", "sign", {"label": labels["tokyo"], "data": b64(crl_tbs())}),
        ("a receipt", "sign", {"label": labels["receipt"], "data": b64(signed_attributes("data"))}),
    ])
    assert nobody["status"] == "ok" and refused_calls(nobody) == {"a CRL", "a receipt"}


def test_every_signature_is_in_the_ledger(installation: Installation, service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    made.ledger.flush()
    before = _audit_ids(installation)
    ask(sock, AS[Caller.OCSP], [(f"response {i}", "sign", {"label": labels["responder"],
                                                          "data": b64(response_data())}) for i in range(5)])
    admin = HSMClient(sock, key_managers=demo_key_managers(installation.settings)[:2])  # the officers' CLI
    admin.call("sign", label=labels["bridge"], data=b64(evil_sub_ca_tbs()))
    admin.close()
    assert made.ledger.flush() == 6
    records = {(e.actor, json.loads(e.detail)["signed"]): json.loads(e.detail)
               for e in _audit(installation, before, "hsm.signatures")}
    assert records[("ocsp", "ocsp-response")]["count"] == 5
    assert records[("ocsp", "ocsp-response")]["key_label"] == labels["responder"]
    assert records[("admin", "certificate")]["count"] == 1
    assert len(records[("admin", "certificate")]["sha256_chain"]) == 64


def test_what_the_bytes_are_decides_not_what_the_caller_says() -> None:
    assert classify(evil_sub_ca_tbs()) is Signed.CERTIFICATE
    assert classify(crl_tbs()) is Signed.CRL
    assert classify(response_data()) is Signed.OCSP_RESPONSE
    assert classify(signed_attributes("data")) is Signed.RECEIPT
    assert classify(signed_attributes("1.2.840.113549.1.9.16.1.4")) is Signed.TIME_STAMP
    tbs = evil_sub_ca_tbs()
    for other in (b"", b"\x30\x00", tbs + b"\x00", tbs[:-1], os.urandom(200),
                  algos.DigestAlgorithm({"algorithm": "sha256"}).dump()):
        assert classify(other) is Signed.OTHER


def _audit_ids(installation: Installation) -> int:
    with session_scope(installation.engine, readonly=True) as s:
        return s.scalar(sa.select(sa.func.max(AuditEvent.id))) or 0


def _audit(installation: Installation, after: int, event_type: str) -> list[AuditEvent]:
    with session_scope(installation.engine, readonly=True) as s:
        rows = s.scalars(sa.select(AuditEvent).where(AuditEvent.id > after, AuditEvent.event_type == event_type)
                         .order_by(AuditEvent.id)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)


# --- ceremony sessions: certificates, key generation and destruction (ca.hsm.sessions) ---------------


def _verify(public_key: object, signature: bytes, tbs: bytes) -> None:
    """The signature over `tbs` is the key's (raises otherwise)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, tbs, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, tbs, padding.PKCS1v15(), hashes.SHA256())


def test_root_without_a_ceremony_session_gets_no_certificate_key_or_destruction(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    root = HSMClient(sock)  # this test runs as root: the admin identity, and still refused
    for what, call in (("a certificate signature", lambda: root.call("sign", label=labels["bridge"],
                                                                     data=b64(evil_sub_ca_tbs()))),
                       ("key generation", lambda: root.generate("ca/evil/1/aa", KeyAlgorithm.P256)),
                       ("key destruction", lambda: root.destroy(labels["tokyo"]))):
        with pytest.raises(PermissionDenied, match=f"{what} needs a ceremony session opened by 2 different key"):
            call()
    root.close()
    made.wait_for_audit()
    refused = [(e.actor, json.loads(e.detail)["op"]) for e in _audit(installation, before, "hsm.sign_refused")]
    assert refused == [("admin identity", "sign"), ("admin identity", "generate")]
    (destroy,) = _audit(installation, before, "hsm.key_destroyed")
    assert destroy.result == "failure" and json.loads(destroy.detail)["key_label"] == labels["tokyo"]
    # nothing happened: the key was not made, the CA key is still there and signs
    assert made.activation.session().object_classes(labels["tokyo"]) == ["private_key", "public_key"]
    with pytest.raises(Exception, match="no key labelled"):
        made.activation.session().signer("ca/evil/1/aa")


def test_in_a_session_of_two_key_managers_root_signs_a_certificate_and_makes_a_key(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    officers = HSMClient(sock, key_managers=demo_key_managers(installation.settings)[:2])
    tbs = evil_sub_ca_tbs()  # what the bytes are does not matter here: the officers asked for it
    signature = base64.b64decode(officers.call("sign", label=labels["bridge"], data=b64(tbs))["signature"])
    _verify(officers.signer(labels["bridge"]).public_key(), signature, tbs)
    public = officers.generate("ca/session-test/1/bb", KeyAlgorithm.P256)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    other = HSMClient(sock)  # the session is the connection's: another connection of root has none
    with pytest.raises(PermissionDenied, match="ceremony session"):
        other.call("sign", label=labels["bridge"], data=b64(tbs))
    other.close()
    officers.close_ceremony()
    with pytest.raises(PermissionDenied, match="ceremony session"):
        officers.call("sign", label=labels["bridge"], data=b64(tbs))
    officers.close()
    made.wait_for_audit()
    (opened,) = _audit(installation, before, "hsm.ceremony_opened")
    assert opened.result == "success" and opened.actor == "keymanager1+keymanager2"
    (closed,) = _audit(installation, before, "hsm.ceremony_closed")
    detail = json.loads(closed.detail)
    assert detail["why"] == "closed by the client" and detail["key_managers"] == ["keymanager1", "keymanager2"]
    assert detail["done"] == {"certificates": 1, "keys generated": 1}


def test_a_session_needs_m_different_current_key_managers(installation: Installation,
                                                          service: tuple[HSMService, Path]) -> None:
    made, sock = service
    before = _audit_ids(installation)
    (km1, pw1), (km2, pw2), _ = demo_key_managers(installation.settings)
    add_account(installation.engine, "km-alone", Role.KEY_MANAGER, approved=False)  # one person made it
    add_account(installation.engine, "km-senior", Role.SENIOR_OPERATOR)
    attempts = {
        "one key manager": [(km1, pw1)],
        "the same twice": [(km1, pw1), (km1, pw1)],
        "a wrong password": [(km1, pw1), (km2, pw1)],
        "not a key manager": [(km1, pw1), ("km-senior", password_of("km-senior"))],
        "an unapproved account": [(km1, pw1), ("km-alone", password_of("km-alone"))],
    }
    for people in attempts.values():
        with pytest.raises(PermissionDenied, match="ceremony session refused: it needs 2 different key managers"):
            HSMClient(sock, key_managers=people).status()
    made.wait_for_audit()
    failures = [json.loads(e.detail)["error"] for e in _audit(installation, before, "hsm.ceremony_opened")]
    assert len(failures) == len(attempts)
    # each refusal is audited from a thread of its own (the caller may hold SQLite's write lock), so
    # the records' order is not the attempts': each reason once, in any order
    reasons = ("1 key manager(s) given, 2 needed", "named twice", "wrong password",
               "does not hold the key-manager role", "never approved by a second person")
    assert sorted(next(i for i, why in enumerate(reasons) if why in failure) for failure in failures) == [0, 1, 2, 3, 4]


def test_an_expired_session_signs_no_certificate(installation: Installation,
                                                 service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    ttl, made.session_ttl = made.session_ttl, dt.timedelta(0)
    try:
        officers = HSMClient(sock, key_managers=demo_key_managers(installation.settings)[:2])
        with pytest.raises(PermissionDenied, match="ceremony session"):
            officers.call("sign", label=labels["bridge"], data=b64(evil_sub_ca_tbs()))
        officers.close()
    finally:
        made.session_ttl = ttl
    made.wait_for_audit()
    (closed,) = _audit(installation, before, "hsm.ceremony_closed")
    assert json.loads(closed.detail)["why"] == "expired"


def test_service_identities_open_no_session_even_with_the_key_managers_passwords(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    people = [{"name": n, "password": p} for n, p in demo_key_managers(installation.settings)[:2]]
    for caller in (Caller.OCSP, Caller.RA, Caller.UNKNOWN):
        results = ask(sock, AS[caller], [
            ("open a session", "ceremony_open", {"operators": people}),  # type: ignore[dict-item]
            ("a certificate", "sign", {"label": labels["bridge"], "data": b64(evil_sub_ca_tbs())}),
            ("a key", "generate", {"label": "ca/evil/2/cc", "algorithm": "p256"}),
            ("destroy", "destroy", {"label": labels["tokyo"]}),
        ])
        assert refused_calls(results) == set(results), (caller, results)
        assert "may not open a ceremony session" in results["open a session"] or \
            "only the officers' CLI" in results["open a session"]
    made.wait_for_audit()
    opened = _audit(installation, before, "hsm.ceremony_opened")
    assert [(e.result, e.actor) for e in opened] == [
        ("failure", "ocsp identity"), ("failure", "ra identity"), ("failure", "unknown identity")]
    assert made.activation.session().object_classes(labels["tokyo"]) == ["private_key", "public_key"]


# --- streamed lists (ca.hsm.crl_stream): judged while hashed, no bare digest --------------------------

STREAM_CLIENT = r"""
import base64, json, sys
from ca.errors import RevocaError
from ca.hsm.client import HSMClient
client = HSMClient(sys.argv[1], timeout=30)
results = {}
for name, label, data in json.load(sys.stdin):
    tbs = base64.b64decode(data)
    try:
        reply = client.stream("sign_list", len(tbs), lambda send: send(tbs), label=label)
        results[name] = "ok " + reply["signature"]
    except RevocaError as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


@dataclasses.dataclass(frozen=True)
class _CA:
    label: str
    fields: CRLFields
    certificate: x509.Certificate


def _ca(installation: Installation, name: str) -> _CA:
    with session_scope(installation.engine, readonly=True) as s:
        store = ReadStore(s)
        ca = store.ca(name)
        key = store.current_key(ca)
        cert = x509.load_der_x509_certificate(store.self_signed_der(ca, key))
        assert key.key_label is not None
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        fields = CRLFields(issuer=cert.subject.public_bytes(), this_update=now,
                           next_update=now + dt.timedelta(hours=72), number=4242, authority_key_id=key.ski,
                           list_type=ListType.CRL, algorithm=KeyAlgorithm(key.algorithm))
        return _CA(key.key_label, fields, cert)


def _tbs(fields: CRLFields, entries: bytes, count: int) -> bytes:
    return fields.tbs_prefix(len(entries), count) + entries + fields.tbs_suffix


def _entries(n: int) -> bytes:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return b"".join(encode_entry(0x1000 + i, now, 1) for i in range(n))


def ask_stream(sock: Path, user: str, lists: list[tuple[str, str, bytes]]) -> dict[str, str]:
    return run_as(user, STREAM_CLIENT, sock, [(n, label, b64(tbs)) for n, label, tbs in lists])


def test_the_scheduler_streams_its_cas_list_and_the_signer_judges_it(
        installation: Installation, service: tuple[HSMService, Path], tmp_path: Path) -> None:
    made, sock = service
    tokyo, bridge = _ca(installation, "tokyo"), _ca(installation, "bridge")
    f = tokyo.fields
    good = _tbs(f, _entries(3000), 3000)  # several blocks' worth is not needed: framing is per entry
    day_ago = f.this_update - dt.timedelta(days=1)
    lists = [
        ("tokyo's CRL", tokyo.label, good),
        ("tokyo's key, the bridge's name", tokyo.label,
         _tbs(dataclasses.replace(f, issuer=bridge.fields.issuer), _entries(2), 2)),
        ("another key's identifier", tokyo.label, _tbs(dataclasses.replace(f, authority_key_id=b"\x01" * 20), b"", 0)),
        ("dated a day ago", tokyo.label, _tbs(dataclasses.replace(
            f, this_update=day_ago, next_update=day_ago + dt.timedelta(hours=72)), b"", 0)),
        ("valid for a year", tokyo.label, _tbs(dataclasses.replace(
            f, next_update=f.this_update + dt.timedelta(days=365)), b"", 0)),
        ("an entry that is no entry", tokyo.label, _tbs(f, b"\x30\x03\x04\x01\x00", 1)),
        ("an entry with a serial of 30 octets", tokyo.label,
         _tbs(f, b"\x30\x2f\x02\x1e" + b"\x01" * 30 + b"\x17\x0d" + b"260101000000Z", 1)),
        ("a certificate, streamed", tokyo.label, evil_sub_ca_tbs()),
        ("a list cut short", tokyo.label, good[:-40]),
    ]
    before = _audit_ids(installation)
    results = ask_stream(sock, AS[Caller.SCHEDULER], lists)
    why = {"tokyo's key, the bridge's name": "issuer is not the CA whose key this is",
           "another key's identifier": "authority key identifier is not this key's",
           "dated a day ago": "thisUpdate .* is not now", "valid for a year": "nextUpdate .* within 31 days",
           "an entry that is no entry": "serial number of at most 20 octets",
           "an entry with a serial of 30 octets": "serial number of at most 20 octets",
           "a certificate, streamed": "not a version 2 list", "a list cut short": "spanning the declared length"}
    for name, reason in why.items():
        assert re.search(f"PermissionDenied: key {tokyo.label} signs no such list: .*{reason}", results[name]), name
    assert results["tokyo's CRL"].startswith("ok "), results["tokyo's CRL"]
    assert refused_calls(results) == set(results) - {"tokyo's CRL"}, results
    # the signed list, put together, verifies with openssl against tokyo's certificate
    signature = base64.b64decode(results["tokyo's CRL"][3:])
    der = f.certificate_list_header(len(good), signature) + good + f.signature_tail(signature)
    (tmp_path / "tokyo.crl").write_bytes(der)
    (tmp_path / "tokyo.pem").write_bytes(tokyo.certificate.public_bytes(serialization.Encoding.PEM))
    check = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / "tokyo.crl"), "-CAfile",
                            str(tmp_path / "tokyo.pem"), "-noout"], capture_output=True, text=True)
    assert check.returncode == 0 and "verify OK" in check.stderr + check.stdout, check.stderr
    # the OCSP identity may not have even a good list signed
    ocsp = ask_stream(sock, AS[Caller.OCSP], [("tokyo's CRL", tokyo.label, good)])
    assert refused_calls(ocsp) == {"tokyo's CRL"}
    made.wait_for_audit()
    refusals = _audit(installation, before, "hsm.sign_refused")
    assert [json.loads(e.detail)["op"] for e in refusals] == ["sign_list"] * (len(lists) - 1 + 1)
    assert {e.actor for e in refusals} == {"scheduler identity", "ocsp identity"}


def test_a_service_without_its_tls_certificate_is_told_to_have_the_key_managers_issue_it(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    """`revoca serve ra` (and `serve ocsp --tls`) make no certificate of their own any more: without
    one they stop with one line naming `revoca tls issue`; the key managers' session makes it."""
    _, sock = service
    cert_path, key_path, _ = tls_paths(installation.settings)
    cert_path.unlink(missing_ok=True)
    root = HSMClient(sock)
    with pytest.raises(PermissionDenied, match=r"TLS certificate .* missing .*`revoca tls issue --host 127\.0\.0\.1`"):
        ensure_server_tls(installation.settings, installation.engine, root, "127.0.0.1")
    root.close()
    assert not cert_path.exists()
    officers = HSMClient(sock, key_managers=demo_key_managers(installation.settings)[:2])
    made, key, _roots = ensure_server_tls(installation.settings, installation.engine, officers, "127.0.0.1")
    officers.close()
    cert = x509.load_pem_x509_certificate(made.read_bytes())
    assert key == key_path and cert.issuer.rfc4514_string().startswith("CN=")
