"""`revoca serve ocsp --tls` as a subprocess (gunicorn, HTTPS, optional client certificates): an
unsigned request is answered for a registered verifier's TLS client certificate and refused
without one, for a removed verifier and for a verifier whose certificate is revoked.  The
clients are `requests` (with a client certificate) and the real `openssl ocsp` (which cannot
present one, so it signs its request instead).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp

from ca import hierarchy
from ca.config import Settings
from ca.enums import CertKind
from ca.hsm.client import HSMClient
from ca.hsm.signer import KeyAlgorithm
from ca.http.server_tls import ensure_server_tls, tls_paths
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, OCSPQuery
from ca.storage.revocations import RevocationStore
from ca.verifiers import registry

from support.clock import NO_NTP
from support.tools import court_certificate, free_port, ocsp_request, officers_client, wait_listening, write_config

TOKYO = "tokyo"
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}

# One demo installation on SQLite (the TLS path does not depend on the database kind).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def keys(settings: Settings, hsm_socket: Path) -> Iterator[HSMClient]:
    """The officers' client: certificates are signed in two key managers' ceremony session."""
    client = officers_client(hsm_socket, settings)
    yield client
    client.close()


@pytest.fixture
def ocsp_server(settings: Settings, engine: sa.Engine, keys: HSMClient, hsm_socket: Path,
                tmp_path: Path) -> Iterator[str]:
    """`revoca serve ocsp --tls` on a free port, sharing this test's database, data dir and HSM service; its URL.
    Its certificate is the officers' to issue (`revoca tls issue`), before it starts."""
    ensure_server_tls(settings, engine, keys, "127.0.0.1")
    env = {**os.environ, **write_config(settings, tmp_path / "revoca.toml", hsm_socket)}
    port = free_port()
    log = tmp_path / "ocsp-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("revoca")), "serve", "ocsp", "--tls",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc, log, timeout=20.0)
        yield f"https://127.0.0.1:{port}/"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- helpers ------------------------------------------------------------------------------------


def _issue_verifier(settings: Settings, engine: sa.Engine, keys: HSMClient, name: str, out: Path) -> int:
    """A registered verifier with a client certificate from the bridge (as `ensure_demo_verifier` makes
    one): out/NAME.pem and out/NAME.key; returns the certificate's row id."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(engine) as session:
        ctx = hierarchy.Context(store=RevocationStore(session), keys=keys, now=now, actor="test",
                                algorithm=KeyAlgorithm(settings.hsm.key_algorithm), time_guard=NO_NTP)
        cert, certificate_id = registry.issue_certificate(ctx, name, key_path=out / f"{name}.key")
        registry.register(session, name=name, certificate=cert, password=None, now=now,
                          base_dn=settings.repository.base_dn, certificate_id=certificate_id, actor="test")
        (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return certificate_id


def _tokyo(engine: sa.Engine, out: Path) -> tuple[x509.Certificate, list[Certificate]]:
    """tokyo's self-signed certificate (also written to out/tokyo.pem) and its subscriber certificates."""
    with session_scope(engine) as s:
        tokyo = RevocationStore(s).ca(TOKYO)
        root = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                         Certificate.kind == CertKind.SELF_SIGNED))
        rows = s.scalars(sa.select(Certificate).where(Certificate.issuer_ca_id == tokyo.id,
                                                      Certificate.kind == CertKind.SUBSCRIBER)
                         .order_by(Certificate.id)).all()
        s.expunge_all()
    assert root is not None and rows
    ca = x509.load_der_x509_certificate(root)
    (out / "tokyo.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ca, list(rows)


def _revoke(engine: sa.Engine, certificate_id: int, reason: RevocationReason) -> None:
    with session_scope(engine) as s:
        cert = s.get(Certificate, certificate_id)
        assert cert is not None
        revoke_certificate(RevocationStore(s), cert, reason, dt.datetime.now(dt.UTC))


def _ask(url: str, request: bytes, roots: Path, cert: tuple[str, str] | None = None) -> x509_ocsp.OCSPResponse:
    reply = requests.post(url, data=request, headers=OCSP_REQUEST, cert=cert, verify=str(roots), timeout=15)
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "application/ocsp-response"
    return x509_ocsp.load_der_ocsp_response(reply.content)


def _client(out: Path, name: str) -> tuple[str, str]:
    return str(out / f"{name}.pem"), str(out / f"{name}.key")


def _self_signed(out: Path, name: str) -> tuple[str, str]:
    """A client certificate that does not chain to the bridge."""
    cert, key = court_certificate(name)
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    return _client(out, name)


def _history(engine: sa.Engine, count: int, timeout: float = 10.0) -> list[tuple[str, str, bool, str]]:
    """The last `count` queries the server recorded (it writes them once a second), oldest first:
    (channel, response status, with a verifier, answers)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope(engine) as s:
            rows = s.scalars(sa.select(OCSPQuery).order_by(OCSPQuery.id)).all()
            found = [(r.channel, r.response_status, r.verifier_id is not None, r.answers) for r in rows]
        if len(found) >= count or time.monotonic() > deadline:
            return found[-count:]
        time.sleep(0.2)


# --- the test ---------------------------------------------------------------------------------------


def test_unsigned_request_is_answered_for_a_verifiers_tls_client_certificate_only(
        settings: Settings, engine: sa.Engine, keys: HSMClient, ocsp_server: str, tmp_path: Path) -> None:
    url = ocsp_server
    roots = tls_paths(settings)[2]  # written by ensure_server_tls when the server started
    assert roots.exists()
    out = tmp_path / "clients"
    out.mkdir()
    _issue_verifier(settings, engine, keys, "court", out)
    _issue_verifier(settings, engine, keys, "leaving", out)
    revoked_verifier = _issue_verifier(settings, engine, keys, "lost", out)
    ca, subscribers = _tokyo(engine, out)
    subscriber = subscribers[0]
    request = ocsp_request(ca, subscriber.serial)

    # a registered verifier's client certificate: good, then revoked with the reason at once
    response = _ask(url, request, roots, _client(out, "court"))
    assert response.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == subscriber.serial
    assert response.certificate_status == x509_ocsp.OCSPCertStatus.GOOD
    _revoke(engine, subscriber.id, RevocationReason.KEY_COMPROMISE)
    response = _ask(url, request, roots, _client(out, "court"))
    assert response.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason == x509.ReasonFlags.key_compromise

    # no client certificate: the TLS handshake succeeds (CERT_OPTIONAL), the responder refuses
    response = _ask(url, request, roots)
    assert response.response_status == x509_ocsp.OCSPResponseStatus.UNAUTHORIZED

    # a removed verifier: answered before the removal, refused right after it
    assert _ask(url, request, roots, _client(out, "leaving")).certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    registry.remove_verifier(engine, "leaving", reason="contract ended", now=dt.datetime.now(dt.UTC), actor="test")
    response = _ask(url, request, roots, _client(out, "leaving"))
    assert response.response_status == x509_ocsp.OCSPResponseStatus.UNAUTHORIZED

    # a verifier whose own certificate is revoked: the handshake still passes (no CRL check in TLS),
    # the responder refuses
    _revoke(engine, revoked_verifier, RevocationReason.KEY_COMPROMISE)
    response = _ask(url, request, roots, _client(out, "lost"))
    assert response.response_status == x509_ocsp.OCSPResponseStatus.UNAUTHORIZED

    # a client certificate that does not chain to the bridge does not get through the handshake
    # (TLSV1_ALERT_UNKNOWN_CA; with TLS 1.3 some clients see a reset instead, also a ConnectionError)
    with pytest.raises(requests.exceptions.ConnectionError):  # SSLError: alert unknown ca
        _ask(url, request, roots, _self_signed(out, "outsider"))

    # the real openssl ocsp client over HTTPS: it has no TLS client certificate option, so it signs
    # its request with the verifier's key (the "signed" channel, over TLS); unsigned it is refused
    second = subscribers[1]
    cmd = ["openssl", "ocsp", "-issuer", str(out / "tokyo.pem"), "-CAfile", str(out / "tokyo.pem"),
           "-url", url, "-timeout", "10", "-serial", f"0x{second.serial:x}"]
    signed = subprocess.run([*cmd, "-signer", str(out / "court.pem"), "-signkey", str(out / "court.key")],
                            capture_output=True, text=True, timeout=30)
    text = signed.stdout + signed.stderr
    assert "Response verify OK" in text and f"0x{second.serial:x}: good" in text, text
    unsigned = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert "Responder Error: unauthorized (6)" in unsigned.stdout + unsigned.stderr, unsigned.stdout + unsigned.stderr

    # what the server recorded, in order
    revoked_answer, good_answer = f"{subscriber.serial:x}=revoked", f"{second.serial:x}=good"
    assert _history(engine, 8) == [
        ("tls", "successful", True, f"{subscriber.serial:x}=good"),
        ("tls", "successful", True, revoked_answer),
        ("none", "unauthorized", False, ""),
        ("tls", "successful", True, revoked_answer),
        ("tls", "unauthorized", False, ""),
        ("tls", "unauthorized", False, ""),
        ("signed", "successful", True, good_answer),
        ("none", "unauthorized", False, ""),
    ]
