"""The OCSP responder over HTTP, asked by the real `openssl ocsp` client, checked by openssl and pkilint."""

from __future__ import annotations

import base64
import datetime as dt
import io
import subprocess
import threading
import urllib.parse
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as x509_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ca.enums import CertKind
from ca.hsm.signer import KeyAlgorithm
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, OCSPQuery
from ca.storage.revocations import RevocationStore
from ca.verifiers.registry import add_verifier, remove_verifier
from ocsp.app import make_app
from ocsp.history import QueryHistory
from ocsp.keys import ResponderKeys, keys_dir, passphrase_path
from ocsp.renewal import issue_key_file
from ocsp.responder import Responder

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE
from support.tools import court_certificate, ocsp_request, pkilint_ocsp_response

TOKYO = "tokyo"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation shared by this module's tests, on each database kind."""
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


class Server:
    """The responder's WSGI app on a loopback port, in a thread of this process."""

    def __init__(self, installation: Installation) -> None:
        self.responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
        self.history = QueryHistory(installation.engine, thread=False)
        self.httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, make_app(self.responder, self.history),
                                                       handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        # polling for shutdown every 20 ms, not 500: each test stops a server
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.history.close()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(installation: Installation) -> Iterator[Server]:
    s = Server(installation)
    yield s
    s.close()


@pytest.fixture(scope="module")
def files(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tokyo.pem (the CA); two registered verifiers' certificate and key (RSA, P-256) and an outsider's."""
    out = tmp_path_factory.mktemp("ocsp-files")
    with session_scope(installation.engine) as s:
        tokyo = RevocationStore(s).ca(TOKYO)
        root = s.scalar(sa.select(Certificate.der).where(Certificate.issuer_ca_id == tokyo.id,
                                                         Certificate.kind == CertKind.SELF_SIGNED))
    (out / "tokyo.pem").write_bytes(x509.load_der_x509_certificate(root).public_bytes(serialization.Encoding.PEM))
    now = dt.datetime.now(dt.UTC)
    for name, key in (("verifier-rsa", rsa.generate_private_key(65537, 2048)),
                      ("verifier-ec", ec.generate_private_key(ec.SECP256R1())),
                      ("outsider", ec.generate_private_key(ec.SECP256R1()))):
        cert = _self_signed(name, key)
        (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (out / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
        if name != "outsider":
            add_verifier(installation.engine, name=name, certificate=cert, password=None, now=now, base_dn=LDAP_BASE,
                         actor="test")
    return out


def _self_signed(name: str, key: object) -> x509.Certificate:
    return court_certificate(name, key, days=365)[0]  # type: ignore[arg-type]


def _subscriber(installation: Installation, index: int = 0) -> Certificate:
    with session_scope(installation.engine) as s:
        store = RevocationStore(s)
        rows = s.scalars(sa.select(Certificate).where(Certificate.issuer_ca_id == store.ca(TOKYO).id,
                                                      Certificate.kind == CertKind.SUBSCRIBER)
                         .order_by(Certificate.id)).all()
        row = rows[index]
        s.expunge(row)
        return row


def _revoke(installation: Installation, cert: Certificate, reason: RevocationReason) -> None:
    with session_scope(installation.engine) as s:
        store = RevocationStore(s)
        revoke_certificate(store, s.get(Certificate, cert.id), reason, dt.datetime.now(dt.UTC))  # type: ignore[arg-type]


def _openssl(server: Server, files: Path, serials: list[int], *extra: str, digest: str = "-sha1") -> str:
    """`openssl ocsp` asking about tokyo serials; its whole output (it verifies the response against tokyo.pem)."""
    ca = str(files / "tokyo.pem")
    cmd = ["openssl", "ocsp", "-issuer", ca, "-url", server.url, "-CAfile", ca, "-timeout", "10", digest]
    for serial in serials:
        cmd += ["-serial", f"0x{serial:x}"]
    res = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=30)
    return res.stdout + res.stderr


def _signer(files: Path, name: str) -> list[str]:
    return ["-signer", str(files / f"{name}.pem"), "-signkey", str(files / f"{name}.key")]


def test_signed_request_learns_revoked_with_reason_and_good(installation: Installation, server: Server,
                                                            files: Path) -> None:
    revoked, good = _subscriber(installation, 0), _subscriber(installation, 1)
    _revoke(installation, revoked, RevocationReason.KEY_COMPROMISE)
    for verifier in ("verifier-rsa", "verifier-ec"):
        out = _openssl(server, files, [revoked.serial, good.serial], *_signer(files, verifier), "-nonce")
        assert "Response verify OK" in out, out
        assert f"0x{revoked.serial:x}: revoked" in out, out
        assert "Reason: keyCompromise" in out
        assert f"0x{good.serial:x}: good" in out, out
    # the history has both queries, with the verifier and the answers
    server.history.flush()
    with session_scope(installation.engine) as s:
        rows = s.scalars(sa.select(OCSPQuery).order_by(OCSPQuery.id.desc()).limit(2)).all()
        assert {r.channel for r in rows} == {"signed"} and all(r.nonce for r in rows)
        assert all(r.answers == f"{revoked.serial:x}=revoked,{good.serial:x}=good" for r in rows)
        assert all(r.response_status == "successful" and r.verifier_id is not None for r in rows)


def test_anyone_else_is_unauthorized_and_recorded(installation: Installation, server: Server, files: Path) -> None:
    serial = _subscriber(installation, 2).serial
    for extra in ([], _signer(files, "outsider")):
        out = _openssl(server, files, [serial], *extra)
        assert "Responder Error: unauthorized (6)" in out, out
    server.history.flush()
    with session_scope(installation.engine) as s:
        rows = s.scalars(sa.select(OCSPQuery).order_by(OCSPQuery.id.desc()).limit(2)).all()
        assert [(r.channel, r.response_status, r.verifier_id, r.answers) for r in rows] == [
            ("signed", "unauthorized", None, ""), ("none", "unauthorized", None, "")]


def test_a_removed_verifier_is_unauthorized_at_once(installation: Installation, server: Server, files: Path,
                                                    tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed("leaving", key)
    (tmp_path / "tokyo.pem").write_bytes((files / "tokyo.pem").read_bytes())
    (tmp_path / "leaving.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaving.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    now = dt.datetime.now(dt.UTC)
    add_verifier(installation.engine, name="leaving", certificate=cert, password=None, now=now, base_dn=LDAP_BASE,
                 actor="t")
    serial = _subscriber(installation, 3).serial
    assert f"0x{serial:x}: good" in _openssl(server, tmp_path, [serial], *_signer(tmp_path, "leaving"))
    remove_verifier(installation.engine, "leaving", reason="contract ended", now=now, actor="t")
    out = _openssl(server, tmp_path, [serial], *_signer(tmp_path, "leaving"))
    assert "Responder Error: unauthorized (6)" in out, out


def test_unknown_serial_sha256_cert_ids_and_pkilint(installation: Installation, server: Server, files: Path,
                                                    tmp_path: Path) -> None:
    revoked, good = _subscriber(installation, 4), _subscriber(installation, 5)
    _revoke(installation, revoked, RevocationReason.CESSATION_OF_OPERATION)
    never = (1 << 150) + 12345
    for serial, expect in ((revoked.serial, "revoked"), (good.serial, "good"), (never, "unknown")):
        der = tmp_path / f"{expect}.der"
        out = _openssl(server, files, [serial], *_signer(files, "verifier-ec"), "-respout", str(der), digest="-sha256")
        assert f"0x{serial:x}: {expect}" in out and "Response verify OK" in out, out
        code, report, errors = pkilint_ocsp_response(der)
        assert code == 0 and report.strip() == "", report + errors
        response = x509_ocsp.load_der_ocsp_response(der.read_bytes())
        assert response.hash_algorithm.name == "sha256"
        assert response.next_update_utc > response.this_update_utc
    assert "Reason: cessationOfOperation" in _openssl(server, files, [revoked.serial], *_signer(files, "verifier-ec"))


def test_presigned_answers_are_reused_until_the_status_changes(installation: Installation, files: Path) -> None:
    responder = Responder(installation.engine, installation.keys, time_guard=NO_NTP)
    cert = _subscriber(installation, 6)
    request = _request(cert.serial, files)
    first = responder.respond(request)
    again = responder.respond(request)
    assert again.presigned and again.body == first.body
    _revoke(installation, cert, RevocationReason.AFFILIATION_CHANGED)
    after = responder.respond(request)  # the very next answer, no CRL in between
    assert not after.presigned and after.answers == f"{cert.serial:x}=revoked"
    parsed = x509_ocsp.load_der_ocsp_response(after.body)
    assert parsed.certificate_status == x509_ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason == x509.ReasonFlags.affiliation_changed


def _request(serial: int, files: Path, *, nonce: bytes | None = None, signer: str = "verifier-ec") -> bytes:
    """A request for one tokyo serial (SHA-1 CertID) made with cryptography, signed by `signer` (unless None)."""
    ca = x509.load_pem_x509_certificate((files / "tokyo.pem").read_bytes())
    unsigned = ocsp_request(ca, serial, nonce=nonce)
    return unsigned if signer is None else sign_request(unsigned, files / f"{signer}.pem", files / f"{signer}.key")


def sign_request(unsigned: bytes, cert_path: Path, key_path: Path) -> bytes:
    """RFC 6960 4.1.2: requestorName set to the signer, tbsRequest signed, the signer's certificate attached."""
    cert = asn1_x509.Certificate.load(pem_to_der(cert_path.read_bytes()))
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    request = asn1_ocsp.OCSPRequest.load(unsigned)
    tbs = request["tbs_request"]
    tbs["requestor_name"] = asn1_x509.GeneralName(name="directory_name", value=cert.subject)
    data = tbs.dump(force=True)
    if isinstance(key, rsa.RSAPrivateKey):
        signature, algorithm = key.sign(data, padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"
    else:
        signature, algorithm = key.sign(data, ec.ECDSA(hashes.SHA256())), "sha256_ecdsa"  # type: ignore[union-attr,call-arg]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs, "optional_signature": {
        "signature_algorithm": {"algorithm": algorithm}, "signature": signature, "certs": [cert]}}).dump()


def pem_to_der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def test_responder_key_in_an_encrypted_file(installation: Installation, files: Path) -> None:
    cert, path = issue_key_file(installation.settings, installation.engine, installation.keys, TOKYO,
                                algorithm=KeyAlgorithm.RSA2048,
                                now=dt.datetime.now(dt.UTC), actor="test")
    with pytest.raises(TypeError):  # encrypted: useless without the passphrase kept elsewhere
        serialization.load_pem_private_key(path.read_bytes(), None)
    keys = ResponderKeys(installation.keys, keys_dir(installation.settings), passphrase_path(installation.settings))
    responder = Responder(installation.engine, keys, key_files=True, time_guard=NO_NTP)
    outcome = responder.respond(_request(_subscriber(installation, 7).serial, files, nonce=b"0123456789abcdef"))
    parsed = x509_ocsp.load_der_ocsp_response(outcome.body)
    assert parsed.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert [c.serial_number for c in parsed.certificates] == [cert.serial_number]
    cert.public_key().verify(parsed.signature, parsed.tbs_response_bytes, padding.PKCS1v15(),  # type: ignore[union-attr,call-arg]
                             parsed.signature_hash_algorithm)  # type: ignore[arg-type]
    # the token's responder still answers when files are not asked for
    token_answer = x509_ocsp.load_der_ocsp_response(Responder(installation.engine, installation.keys,
                                                              time_guard=NO_NTP).respond(
        _request(_subscriber(installation, 7).serial, files)).body)
    assert [c.serial_number for c in token_answer.certificates] != [cert.serial_number]


# --- HTTP and bad input, through the WSGI app in this process ---------------------------------


def _call(app, method: str = "POST", body: bytes = b"", *, content_type: str = "application/ocsp-request",  # type: ignore[no-untyped-def]
          path: str = "/", length: str | None = None) -> tuple[str, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": content_type,
               "CONTENT_LENGTH": str(len(body)) if length is None else length, "wsgi.input": io.BytesIO(body)}
    got: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    out = b"".join(app(environ, start_response))
    return got["status"], got["headers"], out  # type: ignore[return-value]


def _status_of(body: bytes) -> str:
    return asn1_ocsp.OCSPResponse.load(body)["response_status"].native


@pytest.fixture
def app(installation: Installation):  # type: ignore[no-untyped-def]
    return make_app(Responder(installation.engine, installation.keys, time_guard=NO_NTP))


def test_http_answers(installation: Installation, app, files: Path) -> None:  # type: ignore[no-untyped-def]
    serial = _subscriber(installation, 8).serial
    status, headers, body = _call(app, body=_request(serial, files))
    assert status == "200 OK" and headers["Content-Type"] == "application/ocsp-response"
    assert headers["Cache-Control"] == "private" and _status_of(body) == "successful"
    # RFC 5019 GET: the request, base64 and URL-encoded, after the responder URL
    encoded = urllib.parse.quote(base64.b64encode(_request(serial, files)).decode(), safe="")
    status, _, body = _call(app, "GET", path="/" + encoded)
    assert status == "200 OK" and _status_of(body) == "successful"
    assert _status_of(_call(app, "GET", path="/not-base64!")[2]) == "malformed_request"
    assert _call(app, body=b"x", content_type="text/plain")[0].startswith("415")
    assert _call(app, body=b"", length="99999999")[0].startswith("413")
    assert _call(app, body=b"x", length="")[0].startswith("411")
    assert _call(app, "PUT")[0].startswith("405")
    assert _status_of(_call(app, body=b"\x30\x03\x02\x01\x00")[2]) == "malformed_request"
    # RFC 8954: a nonce over 32 bytes is refused, 32 is fine
    assert _status_of(_call(app, body=_request(serial, files, nonce=b"n" * 33))[2]) == "malformed_request"
    assert _status_of(_call(app, body=_request(serial, files, nonce=b"n" * 32))[2]) == "successful"
def test_unknown_issuer_is_unauthorized(installation: Installation, app, files: Path) -> None:  # type: ignore[no-untyped-def]
    unsigned = (x509_ocsp.OCSPRequestBuilder().add_certificate_by_hash(b"\x01" * 20, b"\x02" * 20, 5, hashes.SHA1())
                .build().public_bytes(serialization.Encoding.DER))
    signed = sign_request(unsigned, files / "verifier-ec.pem", files / "verifier-ec.key")
    assert _status_of(_call(app, body=signed)[2]) == "unauthorized"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=600))
def test_garbage_never_breaks_the_endpoint(app, body: bytes) -> None:  # type: ignore[no-untyped-def]
    status, _, answer = _call(app, body=body)
    assert status == "200 OK"
    assert _status_of(answer) in ("malformed_request", "unauthorized")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_signed_requests_never_break_the_endpoint(installation: Installation, app, files: Path,
                                                          data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    good = _REQUESTS.setdefault("good", _request(_subscriber(installation, 9).serial, files, nonce=b"abc"))
    i = data.draw(st.integers(0, len(good) - 1))
    mutated = bytearray(good)
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if how == "flip":
        mutated[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "cut":
        del mutated[i:]
    else:
        mutated[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    status, _, answer = _call(app, body=bytes(mutated))
    assert status == "200 OK" and _status_of(answer) in ("malformed_request", "unauthorized", "successful")


_REQUESTS: dict[str, bytes] = {}


def test_ca_signed_mode_and_next_update_from_the_crl_schedule(installation: Installation, files: Path) -> None:
    from ca.crl.issue import issue_list
    from ca.enums import ListType

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, TOKYO, ListType.CRL, now=now,
                        time_guard=NO_NTP)
    responder = Responder(installation.engine, installation.keys, ca_signed=True, time_guard=NO_NTP)
    parsed = x509_ocsp.load_der_ocsp_response(responder.respond(_request(_subscriber(installation, 10).serial,
                                                                         files)).body)
    assert parsed.response_status == x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificates == []  # the CA signs: the relying party has its certificate already
    tokyo = x509.load_pem_x509_certificate((files / "tokyo.pem").read_bytes())
    tokyo.public_key().verify(parsed.signature, parsed.tbs_response_bytes,  # type: ignore[call-arg]
                              ec.ECDSA(parsed.signature_hash_algorithm))  # type: ignore[arg-type]
    assert parsed.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(tokyo.public_key()).digest
    # nextUpdate is the CA's current CRL's: caching the answer is as current as caching the CRL
    assert parsed.next_update_utc == issued.next_update
