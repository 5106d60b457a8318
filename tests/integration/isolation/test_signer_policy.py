"""The signer signs only what its caller's role may ask, and accounts for every signature (issue 12).

Found in an attack: the RA, OCSP, TSA and status-page workers ran as the HSM service's user;
from such a process a raw `sign` with the bridge key made a `CN=Evil Sub CA` certificate that
`openssl verify` accepted, `generate` made a key, and nothing was audited.

Here the HSM service runs in this process (root, the admin) and the callers are real other
Unix users connecting to its socket (`setpriv`), each mapped to a service identity.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pwd
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import algos, cms
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from ca.enums import CertKind
from ca.hsm import token_for
from ca.hsm.callers import CallerMap
from ca.hsm.client import HSMClient
from ca.hsm.ledger import SignatureLedger
from ca.hsm.policy import Caller, Signed, SigningPolicy, classify
from ca.hsm.service import HSMService, serve_in_thread
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate
from ca.storage.store import ReadStore

from support.installation import CeremonyTemplates, Installation, demo_installation

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as other users (setpriv)")

# Existing system users stand in for the service identities; all get the socket's group.
AS = {Caller.OCSP: "daemon", Caller.SCHEDULER: "bin", Caller.RA: "sys", Caller.UNKNOWN: "nobody"}
SOCKET_GROUP = "daemon"

CLIENT = r"""
import json, sys
from ca.errors import RevocaError
from ca.hsm.client import HSMClient
client = HSMClient(sys.argv[1], timeout=30)
results = {}
for name, op, fields in json.load(sys.stdin):
    try:
        client.call(op, **fields)
        results[name] = "ok"
    except RevocaError as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("signer"), with_keys=False) as made:
        yield made


@pytest.fixture(scope="module")
def service(installation: Installation) -> Iterator[tuple[HSMService, Path]]:
    callers = CallerMap({pwd.getpwnam(user).pw_uid: caller for caller, user in AS.items()
                         if caller is not Caller.UNKNOWN}, frozenset({0}))
    made = HSMService(token_for(installation.settings), installation.engine, policy=SigningPolicy(),
                      callers=callers, ledger=SignatureLedger(installation.engine, thread=False))
    directory = Path(tempfile.mkdtemp(prefix="rvpol"))
    os.chmod(directory, 0o755)
    sock = directory / "run" / "hsm.sock"
    server, _thread = serve_in_thread(sock, made, clients_gid=1)
    client = HSMClient(sock)
    for _, share in installation.result.shares[:2]:
        client.activate(share.encode())  # type: ignore[attr-defined]
    client.close()
    yield made, sock
    server.shutdown()
    server.server_close()
    made.close()


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


def evil_sub_ca_tbs() -> bytes:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Evil Sub CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.tbs_certificate_bytes


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


def signed_attributes(content_type: str) -> bytes:
    return cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": [content_type]}),
        cms.CMSAttribute({"type": "message_digest", "values": [os.urandom(32)]}),
    ]).dump()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ask(sock: Path, user: str, calls: list[tuple[str, str, dict[str, str]]]) -> dict[str, str]:
    """Each call made by a process of `user` (in the socket's group) over its own connection."""
    proc = subprocess.run(["setpriv", f"--reuid={user}", f"--regid={SOCKET_GROUP}", "--clear-groups",
                           sys.executable, "-c", CLIENT, str(sock)], input=json.dumps(calls), capture_output=True,
                          text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _refused(results: dict[str, str]) -> set[str]:
    return {name for name, got in results.items() if got.startswith("PermissionDenied")}


def test_the_ocsp_identity_gets_responses_signed_and_nothing_else(installation: Installation,
                                                                  service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    before = _audit_ids(installation)
    results = ask(sock, AS[Caller.OCSP], [
        ("status", "status", {}),
        ("response with the responder key", "sign", {"label": labels["responder"], "data": _b64(response_data())}),
        ("evil sub CA with the bridge key", "sign", {"label": labels["bridge"], "data": _b64(evil_sub_ca_tbs())}),
        ("a CRL with the CA key", "sign", {"label": labels["tokyo"], "data": _b64(crl_tbs())}),
        ("a CRL digest with the CA key", "sign_digest", {"label": labels["tokyo"], "digest": _b64(os.urandom(32))}),
        ("a response with the CA key", "sign", {"label": labels["tokyo"], "data": _b64(response_data())}),
        ("raw bytes with the responder key", "sign", {"label": labels["responder"], "data": _b64(b"hello")}),
        ("a new key", "generate", {"label": "ca/evil/1/00", "algorithm": "p256"}),
    ])
    assert results["status"] == "ok" and results["response with the responder key"] == "ok"
    assert _refused(results) == set(results) - {"status", "response with the responder key"}
    made.wait_for_audit()
    refusals = _audit(installation, before, "hsm.sign_refused")
    assert len(refusals) == 6 and {e.actor for e in refusals} == {"ocsp identity"}
    assert {json.loads(e.detail)["key_label"] for e in refusals} >= {labels["bridge"], labels["tokyo"]}


def test_the_scheduler_signs_lists_the_ra_receipts_and_an_unknown_user_nothing(
        installation: Installation, service: tuple[HSMService, Path]) -> None:
    _, sock = service
    labels = _labels(installation)
    scheduler = ask(sock, AS[Caller.SCHEDULER], [
        ("a CRL", "sign", {"label": labels["tokyo"], "data": _b64(crl_tbs())}),
        ("a CRL digest", "sign_digest", {"label": labels["tokyo"], "digest": _b64(os.urandom(32))}),
        ("a certificate", "sign", {"label": labels["bridge"], "data": _b64(evil_sub_ca_tbs())}),
        ("a response", "sign", {"label": labels["responder"], "data": _b64(response_data())}),
        ("a CRL with the receipt key", "sign", {"label": labels["receipt"], "data": _b64(crl_tbs())}),
        ("a time stamp with a CA key", "sign", {"label": labels["tokyo"],
                                                "data": _b64(signed_attributes("1.2.840.113549.1.9.16.1.4"))}),
    ])
    assert _refused(scheduler) == {"a certificate", "a response", "a CRL with the receipt key",
                                   "a time stamp with a CA key"}
    assert scheduler["a CRL"] == scheduler["a CRL digest"] == "ok"
    ra = ask(sock, AS[Caller.RA], [
        ("a receipt", "sign", {"label": labels["receipt"], "data": _b64(signed_attributes("data"))}),
        ("a time stamp with the receipt key", "sign", {"label": labels["receipt"],
                                                       "data": _b64(signed_attributes("1.2.840.113549.1.9.16.1.4"))}),
        ("a certificate", "sign", {"label": labels["bridge"], "data": _b64(evil_sub_ca_tbs())}),
        ("a receipt with the bridge key", "sign", {"label": labels["bridge"],
                                                   "data": _b64(signed_attributes("data"))}),
    ])
    assert ra["a receipt"] == "ok"
    assert _refused(ra) == set(ra) - {"a receipt"}
    nobody = ask(sock, AS[Caller.UNKNOWN], [
        ("status", "status", {}),
        ("a CRL", "sign", {"label": labels["tokyo"], "data": _b64(crl_tbs())}),
        ("a receipt", "sign", {"label": labels["receipt"], "data": _b64(signed_attributes("data"))}),
    ])
    assert nobody["status"] == "ok" and _refused(nobody) == {"a CRL", "a receipt"}


def test_every_signature_is_in_the_ledger(installation: Installation, service: tuple[HSMService, Path]) -> None:
    made, sock = service
    labels = _labels(installation)
    made.ledger.flush()
    before = _audit_ids(installation)
    ask(sock, AS[Caller.OCSP], [(f"response {i}", "sign", {"label": labels["responder"],
                                                          "data": _b64(response_data())}) for i in range(5)])
    admin = HSMClient(sock)
    admin.call("sign", label=labels["bridge"], data=_b64(evil_sub_ca_tbs()))  # root: the officers' CLI
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
