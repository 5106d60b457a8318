"""The time-stamp authority: tokens from stamp() and over HTTP, checked by `openssl ts` and by revoca's verifier.

Requests are made by `openssl ts -query`, replies and bare tokens are checked with `openssl ts
-verify` against the bridge certificate, and the text dump of `openssl ts -reply -text` shows
the profile (seed 000 section 9).  The TSA key is an RSA key in a real SoftHSM2 token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import subprocess
import threading
import urllib.error
import urllib.request
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ca.enums import CertKind
from ca.errors import NotActivated, RevocaError, UntrustedTime
from ca.hsm.signer import SoftwareSigner
from ca.issuance import Issuer, issue
from ca.storage.engine import session_scope
from ca.storage.models import TimeStamp
from ca.tsa import errors
from ca.tsa.app import QUERY, REPLY, make_app
from ca.tsa.authority import TimeStampAuthority
from ca.tsa.certificate import TSACertificate, ensure_certificate, pem_paths
from ca.tsa.profile import TSA_POLICY_OID
from ca.tsa.request import parse_request
from ca.tsa.response import TimeStampResp, token_of
from ca.tsa.verify import verify_token

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.tools import openssl_verify

DATA = b"an audit chain head, say\n"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation shared by this module's tests, on each database kind."""
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


@pytest.fixture(scope="module")
def tsa(installation: Installation) -> TSACertificate:
    """The TSA certificate, issued (at the real time: openssl checks validity now) with its key in the token."""
    found, issued = ensure_certificate(installation.settings, installation.engine, installation.keys,
                                       now=dt.datetime.now(dt.UTC), actor="test")
    assert issued
    return found


@dataclasses.dataclass(frozen=True)
class Files:
    dir: Path
    data: Path
    tsa_pem: Path
    roots: Path


@pytest.fixture(scope="module")
def files(installation: Installation, tsa: TSACertificate, tmp_path_factory: pytest.TempPathFactory) -> Files:
    d = tmp_path_factory.mktemp("tsa-files")
    (d / "data.txt").write_bytes(DATA)
    cert_path, roots_path = pem_paths(installation.settings)
    return Files(d, d / "data.txt", cert_path, roots_path)


class Server:
    """The TSA's WSGI app on a loopback port, in a thread of this process."""

    def __init__(self, installation: Installation) -> None:
        self.httpd = wsgiref.simple_server.make_server("127.0.0.1", 0, make_app(installation.engine, installation.keys,
                                                                                time_guard=NO_NTP),
                                                       handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def post(self, body: bytes, content_type: str = QUERY) -> tuple[int, str, bytes]:
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": content_type}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.headers["Content-Type"], resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(installation: Installation, tsa: TSACertificate) -> Iterator[Server]:
    s = Server(installation)
    yield s
    s.close()


def _openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", *args], input=input.decode("latin-1") if input else None,
                          capture_output=True, text=True, timeout=60, check=False)


def _query(files: Files, name: str, *flags: str) -> bytes:
    out = files.dir / f"{name}.tsq"
    run = _openssl("-query", "-data", str(files.data), *flags, "-out", str(out))
    assert run.returncode == 0, run.stderr
    return out.read_bytes()


def _openssl_verify(files: Files, path: Path, *, token_in: bool = False, query: Path | None = None,
                    data: Path | None = None) -> subprocess.CompletedProcess[str]:
    source = ["-queryfile", str(query)] if query else ["-data", str(data or files.data)]
    return _openssl("-verify", *source, "-in", str(path), *(["-token_in"] if token_in else []),
                    "-CAfile", str(files.roots), "-untrusted", str(files.tsa_pem))


def _assert_verifies(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0 and "Verification: OK" in run.stdout, run.stdout + run.stderr


def _reply_text(path: Path, *, token_in: bool = False) -> str:
    run = _openssl("-reply", "-in", str(path), *(["-token_in"] if token_in else []), "-text")
    assert run.returncode == 0, run.stderr
    return run.stdout


def _stamp(installation: Installation, imprint: bytes, hash_name: str = "sha256", **kwargs: object) -> TimeStamp:
    with session_scope(installation.engine) as session:
        row = TimeStampAuthority.load(session, installation.keys,
                                      time_guard=NO_NTP).stamp(session, imprint, hash_name, "test", **kwargs)  # type: ignore[arg-type]
        session.expunge(row)
    return row


def _status(reply: bytes) -> dict[str, object]:
    return TimeStampResp.load(reply)["status"].native  # type: ignore[no-any-return]


# --- the TSA certificate ----------------------------------------------------------------------


class TestCertificate:
    def test_is_issued_by_the_bridge_with_a_critical_time_stamping_eku_only(self, tsa: TSACertificate) -> None:
        cert = tsa.certificate
        assert cert.issuer == tsa.chain[0].subject == x509.Name.from_rfc4514_string(
            "CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP")
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc in (dt.timedelta(days=365),
                                                                         dt.timedelta(days=366))

    def test_key_is_rsa_in_the_token_and_cannot_leave_it(self, installation: Installation, tsa: TSACertificate) -> None:
        public = tsa.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048  # seed 000 6.1, though P-256 is set
        assert installation.keys.key_attributes(tsa.key_label) == {
            "sensitive": True, "extractable": False, "always_sensitive": True, "never_extractable": True}

    def test_openssl_accepts_it_for_time_stamp_signing_under_the_bridge(self, tsa: TSACertificate) -> None:
        openssl_verify(tsa.certificate, trusted=list(tsa.chain), at=dt.datetime.now(dt.UTC),
                       purpose="timestampsign")

    def test_a_fresh_certificate_is_kept(self, installation: Installation, tsa: TSACertificate) -> None:
        again, issued = ensure_certificate(installation.settings, installation.engine, installation.keys,
                                           now=dt.datetime.now(dt.UTC), actor="test")
        assert not issued and again.certificate == tsa.certificate and again.key_label == tsa.key_label


# --- stamp(): tokens in process ---------------------------------------------------------------


class TestStamp:
    @pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
    def test_token_verifies_with_openssl_and_with_revoca(self, installation: Installation, tsa: TSACertificate,
                                                         files: Files,
                                                         hash_name: str) -> None:
        imprint = hashlib.new(hash_name, DATA).digest()
        row = _stamp(installation, imprint, hash_name, nonce=0x1234)
        token = files.dir / f"stamp-{hash_name}.tst"
        token.write_bytes(row.token)
        _assert_verifies(_openssl_verify(files, token, token_in=True))
        assert verify_token(row.token, tsa.certificate, imprint, hash_name) == row.gen_time
        assert (row.hash_algorithm, row.message_imprint, row.requester) == (hash_name, imprint, "test")
        signed = cms.ContentInfo.load(row.token)["content"]  # seed 000 section 9, whatever the imprint's hash
        signer_info = signed["signer_infos"][0]
        assert signer_info["signature_algorithm"]["algorithm"].native == "sha512_rsa"
        assert signer_info["signature_algorithm"]["algorithm"].dotted == "1.2.840.113549.1.1.13"
        assert signer_info["digest_algorithm"]["algorithm"].native == "sha512"
        assert [a["algorithm"].native for a in signed["digest_algorithms"]] == ["sha512"]

    def test_profile_shows_in_openssl_text(self, installation: Installation, files: Files, tsa: TSACertificate) -> None:
        row = _stamp(installation, hashlib.sha256(DATA).digest(), nonce=0xC0FFEE)
        token = files.dir / "profile.tst"
        token.write_bytes(row.token)
        text = _reply_text(token, token_in=True)
        assert f"Policy OID: {TSA_POLICY_OID}" in text
        assert "Accuracy: 0x01 seconds, unspecified millis, unspecified micros" in text
        assert "Ordering: no" in text and "Nonce: 0xC0FFEE" in text
        assert f"{row.serial:X}" in text.split("Serial number: 0x", 1)[1].split()[0]
        assert "TSA: DirName:/C=JP/O=JPKI/OU=Bridge CA/CN=Time-Stamp Authority" in text
        cms_text = subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(token)],
                                  capture_output=True, text=True, timeout=60, check=True).stdout
        assert "algorithm: sha512WithRSAEncryption (1.2.840.113549.1.1.13)" in cms_text
        assert cms_text.count("algorithm: sha512 (2.16.840.1.101.3.4.2.3)") == 2  # digestAlgorithms, SignerInfo
        assert "sha256WithRSAEncryption" not in cms_text.split("signerInfos:", 1)[1]

    def test_token_carries_signing_certificate_v2_and_the_chain(self, installation: Installation,
                                                                tsa: TSACertificate) -> None:
        row = _stamp(installation, hashlib.sha256(DATA).digest())
        signed = cms.ContentInfo.load(row.token)["content"]
        assert signed["version"].native == "v3"
        attrs = {a["type"].native: a["values"][0] for a in signed["signer_infos"][0]["signed_attrs"]}
        assert set(attrs) == {"content_type", "message_digest", "signing_certificate_v2"}
        ess = attrs["signing_certificate_v2"]["certs"][0]
        assert ess["cert_hash"].native == hashlib.sha256(tsa.certificate.public_bytes(
            Encoding.DER)).digest()
        assert {c.chosen.sha256 for c in signed["certificates"]} == {  # a SET OF: DER order, not ours
            hashlib.sha256(c.public_bytes(Encoding.DER)).digest() for c in (tsa.certificate, *tsa.chain)}

    def test_without_cert_req_the_token_has_no_certificates(self, installation: Installation, files: Files) -> None:
        row = _stamp(installation, hashlib.sha256(DATA).digest(), cert_req=False)
        assert not cms.ContentInfo.load(row.token)["content"]["certificates"].native
        token = files.dir / "nocert.tst"
        token.write_bytes(row.token)
        _assert_verifies(_openssl_verify(files, token, token_in=True))

    def test_serials_differ_and_each_token_is_kept(self, installation: Installation, tsa: TSACertificate) -> None:
        rows = [_stamp(installation, hashlib.sha256(bytes([i])).digest()) for i in range(3)]
        assert len({r.serial for r in rows}) == 3 and all(0 < r.serial < 1 << 159 for r in rows)
        with session_scope(installation.engine) as session:
            kept = {r.serial: r.token for r in session.scalars(sa.select(TimeStamp).where(
                TimeStamp.serial.in_([r.serial for r in rows])))}
        assert kept == {r.serial: r.token for r in rows}

    @pytest.mark.parametrize(("hash_name", "size"), [("sha1", 20), ("md5", 16)])
    def test_weak_hash_is_refused_with_bad_alg(self, installation: Installation, tsa: TSACertificate, hash_name: str,
                                               size: int) -> None:
        with pytest.raises(errors.RequestRejected, match=f"hash algorithm {hash_name} is not accepted") as caught:
            _stamp(installation, b"\x01" * size, hash_name)
        assert caught.value.fail_info == errors.BAD_ALG

    def test_imprint_of_the_wrong_length_is_refused_with_bad_data_format(self, installation: Installation,
                                                                        tsa: TSACertificate) -> None:
        with pytest.raises(errors.RequestRejected, match="a sha384 imprint is 48 bytes, not 32") as caught:
            _stamp(installation, b"\x01" * 32, "sha384")
        assert caught.value.fail_info == errors.BAD_DATA_FORMAT

    def test_expired_tsa_certificate_signs_nothing(self, installation: Installation, tsa: TSACertificate) -> None:
        after = tsa.certificate.not_valid_after_utc + dt.timedelta(days=1)
        authority = TimeStampAuthority(tsa.certificate, installation.keys.signer(tsa.key_label), chain=tsa.chain,
                                       clock=lambda: after, time_guard=NO_NTP)
        with session_scope(installation.engine) as session:
            with pytest.raises(errors.RequestRejected, match="is not valid at .*revoca tsa certificate --renew"):
                authority.stamp(session, hashlib.sha256(DATA).digest(), "sha256", "test")
            assert not session.new


# --- verify_token: revoca's own check -----------------------------------------------------------


def _other_tsa_certificate() -> x509.Certificate:
    """A TSA certificate of another key and issuer (a software key: this one is never trusted)."""
    bridge = Issuer.from_signer(x509.Name.from_rfc4514_string("CN=Other Bridge,O=Elsewhere,C=JP"),
                                SoftwareSigner(rsa.generate_private_key(65537, 2048), "other-bridge"))
    return issue(CertKind.TSA, issuer=bridge, subject=x509.Name.from_rfc4514_string("CN=Other TSA,O=Elsewhere,C=JP"),
                 public_key=rsa.generate_private_key(65537, 2048).public_key(),
                 not_before=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), time_guard=NO_NTP)


@pytest.fixture(scope="module")
def token(installation: Installation, tsa: TSACertificate) -> bytes:
    """A SHA-512 token over DATA."""
    return _stamp(installation, hashlib.sha512(DATA).digest(), "sha512", nonce=7).token


class TestVerifyToken:
    def test_wrong_tsa_certificate_is_named(self, token: bytes) -> None:
        with pytest.raises(errors.InvalidTimeStamp, match="wrong certificate: the token's signingCertificateV2 "
                                                          "names another TSA certificate than the TSA certificate"):
            verify_token(token, _other_tsa_certificate(), hashlib.sha512(DATA).digest(), "sha512")

    def test_a_certificate_without_the_time_stamping_eku_is_not_a_tsa(self, token: bytes,
                                                                       tsa: TSACertificate) -> None:
        with pytest.raises(errors.InvalidTimeStamp, match=r"\(CN=Bridge CA,.*\) is not a TSA certificate"):
            verify_token(token, tsa.chain[0], hashlib.sha512(DATA).digest(), "sha512")

    def test_other_data_is_an_imprint_mismatch(self, token: bytes, tsa: TSACertificate) -> None:
        with pytest.raises(errors.InvalidTimeStamp, match="imprint mismatch: the token stamps sha512"):
            verify_token(token, tsa.certificate, hashlib.sha512(DATA + b"!").digest(), "sha512")
        with pytest.raises(errors.InvalidTimeStamp, match="imprint mismatch"):
            verify_token(token, tsa.certificate, hashlib.sha256(DATA).digest(), "sha256")

    def test_altered_tst_info_is_detected_by_revoca_and_openssl(self, token: bytes, tsa: TSACertificate,
                                                                files: Files) -> None:
        info = cms.ContentInfo.load(token)
        tst = info["content"]["encap_content_info"]["content"].parsed
        forged = tsp.TSTInfo.load(tst.dump())
        forged["gen_time"] = forged["gen_time"].native - dt.timedelta(days=30)  # backdated
        info["content"]["encap_content_info"]["content"] = forged
        tampered = info.dump(force=True)
        with pytest.raises(errors.InvalidTimeStamp, match="TSTInfo was altered: its messageDigest does not match"):
            verify_token(tampered, tsa.certificate, hashlib.sha512(DATA).digest(), "sha512")
        path = files.dir / "backdated.tst"
        path.write_bytes(tampered)
        run = _openssl_verify(files, path, token_in=True)
        assert run.returncode != 0 and "Verification: FAILED" in run.stdout, run.stdout + run.stderr

    def test_altered_signature_is_a_bad_signature(self, token: bytes, tsa: TSACertificate, files: Files) -> None:
        tampered = token[:-1] + bytes([token[-1] ^ 0x01])  # the signature is the token's last field
        with pytest.raises(errors.InvalidTimeStamp, match="bad signature: the token was altered or not signed"):
            verify_token(tampered, tsa.certificate, hashlib.sha512(DATA).digest(), "sha512")
        path = files.dir / "badsig.tst"
        path.write_bytes(tampered)
        assert _openssl_verify(files, path, token_in=True).returncode != 0

    @pytest.mark.parametrize("garbage", [b"", b"\x30\x03\x02\x01\x01", b"not a token"])
    def test_garbage_is_not_a_time_stamp_token(self, garbage: bytes, tsa: TSACertificate) -> None:
        with pytest.raises(errors.InvalidTimeStamp, match="not a time-stamp token"):
            verify_token(garbage, tsa.certificate, hashlib.sha512(DATA).digest(), "sha512")


# --- over HTTP ----------------------------------------------------------------------------------


class TestHTTP:
    @pytest.mark.parametrize("hash_flag", ["-sha256", "-sha384", "-sha512"])
    @pytest.mark.parametrize("nonce_flag", ["-no_nonce", None])
    @pytest.mark.parametrize("cert_flag", ["-cert", None])
    def test_openssl_query_gets_a_reply_that_openssl_verifies(self, server: Server, files: Files, hash_flag: str,
                                                              nonce_flag: str | None, cert_flag: str | None) -> None:
        flags = [f for f in (hash_flag, nonce_flag, cert_flag) if f]
        name = "q" + "".join(flags)
        query = _query(files, name, *flags)
        status, content_type, body = server.post(query)
        assert (status, content_type) == (200, REPLY)
        reply = files.dir / f"{name}.tsr"
        reply.write_bytes(body)
        _assert_verifies(_openssl_verify(files, reply, query=files.dir / f"{name}.tsq"))  # imprint and nonce
        _assert_verifies(_openssl_verify(files, reply))
        request = parse_request(query)
        assert (request.nonce is None) == (nonce_flag == "-no_nonce")
        certs = cms.ContentInfo.load(token_of(body))["content"]["certificates"].native
        assert bool(certs) == (cert_flag == "-cert")

    def test_reply_text_shows_accuracy_policy_and_granted(self, server: Server, files: Files) -> None:
        _status_code, _type, body = server.post(_query(files, "text", "-sha256", "-cert"))
        reply = files.dir / "text.tsr"
        reply.write_bytes(body)
        text = _reply_text(reply)
        assert "Status: Granted." in text
        assert "Accuracy: 0x01 seconds" in text and f"Policy OID: {TSA_POLICY_OID}" in text

    def test_each_token_is_stored_with_the_client_as_requester(self, server: Server, files: Files,
                                                             installation: Installation) -> None:
        _s, _t, body = server.post(_query(files, "stored", "-sha384"))
        serial = cms.ContentInfo.load(token_of(body))["content"]["encap_content_info"]["content"].parsed[
            "serial_number"].native
        with session_scope(installation.engine) as session:
            row = session.scalar(sa.select(TimeStamp).where(TimeStamp.serial == serial))
            assert row is not None and row.token == token_of(body) and row.requester == "http:127.0.0.1"

    @pytest.mark.parametrize(("flag", "named"), [("-sha1", "sha1"), ("-md5", "md5")])
    def test_weak_hash_query_is_a_rejection_with_bad_alg(self, server: Server, files: Files, flag: str,
                                                          named: str) -> None:
        status, content_type, body = server.post(_query(files, f"weak{flag}", flag))
        assert (status, content_type) == (200, REPLY)
        assert _status(body) == {"status": "rejection", "fail_info": {"bad_alg"},
                                 "status_string": [f"imprint hash {_OIDS[named]} is not accepted; "
                                                   "use one of sha256, sha384, sha512"]}
        reply = files.dir / f"weak{flag}.tsr"
        reply.write_bytes(body)
        text = _reply_text(reply)
        assert "Status: Rejected." in text and "unrecognized or unsupported algorithm identifier" in text

    def test_other_policy_is_a_rejection_with_unaccepted_policy(self, server: Server, files: Files) -> None:
        _s, _t, body = server.post(_query(files, "policy", "-sha256", "-tspolicy", "1.2.3.4"))
        assert _status(body)["fail_info"] == {"unaccepted_policy"}

    def test_own_policy_is_granted(self, server: Server, files: Files) -> None:
        _s, _t, body = server.post(_query(files, "ownpolicy", "-sha256", "-tspolicy", TSA_POLICY_OID))
        assert _status(body)["status"] == "granted"

    @pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x80", b"\x30\x03\x02\x01\x02"])
    def test_garbage_is_a_rejection_with_bad_data_format(self, server: Server, body: bytes) -> None:
        status, content_type, reply = server.post(body)
        assert (status, content_type) == (200, REPLY)
        assert _status(reply)["status"] == "rejection" and _status(reply)["fail_info"] == {"bad_data_format"}

    def test_other_content_type_is_415(self, server: Server, files: Files) -> None:
        status, _type, body = server.post(_query(files, "ct", "-sha256"), content_type="application/ocsp-request")
        assert status == 415 and b"application/timestamp-query" in body

    def test_big_body_is_413(self, server: Server) -> None:
        status, _type, _body = server.post(b"\x30" * 100_000)
        assert status == 413

    def test_get_is_405(self, server: Server) -> None:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.url, timeout=30)
        assert caught.value.code == 405 and caught.value.headers["Allow"] == "POST"

    @pytest.mark.parametrize(("error", "fail_info"), [
        (NotActivated("HSM not activated: 2 more key manager share(s) needed"), "system_failure"),
        (UntrustedTime("clock off by 5.0 s"), "time_not_available"),
    ])  # fmt: skip
    def test_trouble_on_the_signing_side_is_a_rejection_not_a_500(self, installation: Installation, tsa: TSACertificate,
                                                                   error: RevocaError, fail_info: str) -> None:
        status, headers, body = _call(make_app(installation.engine, _FailingKeys(error),
                                               time_guard=NO_NTP), _VALID_REQUEST)
        assert status == "200 OK" and headers["Content-Type"] == REPLY
        assert _status(body) == {"status": "rejection", "status_string": [str(error)], "fail_info": {fail_info}}


_OIDS = {"sha1": "1.3.14.3.2.26", "md5": "1.2.840.113549.2.5"}


class _FailingKeys:
    """A KeyStore whose key cannot be had: what the HSM service answers when not activated, say."""

    def __init__(self, error: RevocaError) -> None:
        self.error = error

    def generate(self, label: str, algorithm: object) -> object:
        raise AssertionError("not used")

    def signer(self, label: str) -> object:
        raise self.error


def _call(app: object, body: bytes) -> tuple[str, dict[str, str], bytes]:
    got: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(headers)

    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": QUERY, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1"}
    out = b"".join(app(environ, start_response))  # type: ignore[operator]
    return got["status"], got["headers"], out  # type: ignore[return-value]


_VALID_REQUEST = tsp.TimeStampReq({
    "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                         "hashed_message": hashlib.sha256(DATA).digest()},
    "nonce": 42, "cert_req": True,
}).dump()  # fmt: skip


def _mutations() -> st.SearchStrategy[bytes]:
    flipped = st.tuples(st.integers(0, len(_VALID_REQUEST) - 1), st.integers(1, 255)).map(
        lambda p: _VALID_REQUEST[:p[0]] + bytes([_VALID_REQUEST[p[0]] ^ p[1]]) + _VALID_REQUEST[p[0] + 1:])
    truncated = st.integers(0, len(_VALID_REQUEST) - 1).map(lambda n: _VALID_REQUEST[:n])
    return st.one_of(st.binary(max_size=200), truncated, flipped)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_mutations())
# found by hypothesis: an empty hash OID (06 00) made asn1crypto raise AttributeError deep inside
@example(body=b"0<\x02\x01\x00010\r\x06\x00\x01\x01\x00\x01\x04\x00\x00\x00\x00\x01\x00\x04 " + b"\x00" * 32
         + b"\x01\x01\x00\x07\x01\x00")
def test_any_body_gets_a_time_stamp_response_never_a_500(installation: Installation, tsa: TSACertificate,
                                                         body: bytes) -> None:
    status, headers, reply = _call(_APPS.setdefault(id(installation), make_app(installation.engine,
                                                                               installation.keys,
                                                                               time_guard=NO_NTP)), body)
    assert status == "200 OK" and headers["Content-Type"] == REPLY
    answer = _status(reply)
    assert answer["status"] in ("granted", "rejection")
    if answer["status"] == "rejection":
        # the request's fault is named; a systemFailure here would be a parser bug
        assert answer["fail_info"] and answer["fail_info"] != {"system_failure"}, answer
    else:
        request = parse_request(body)
        verify_token(token_of(reply), tsa.certificate, request.imprint, request.hash_name)


_APPS: dict[int, object] = {}
