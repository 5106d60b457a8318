"""An RSA key signs with the SHA-2 hash it is asked for (seed 000 section 9 wants sha512WithRSA); ECDSA keys do not.

Through a real SoftHSM2 token directly and through the HSM service's socket; every signature is
checked by cryptography, and a wrong hash name over the socket gets a one-line error.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ca.config import SOFTHSM_MODULE
from ca.errors import InvalidInput
from ca.hsm.client import HSMClient
from ca.hsm.signer import KeyAlgorithm, Signer, SoftwareSigner, as_private_key
from ca.hsm.token import Token, TokenSession

from support.installation import CeremonyTemplates, serving_installation
from support.tools import officers_client

PIN = "0123456789abcdef"
DATA = b"a TSTInfo's signed attributes, say"
SHA2 = [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()]


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenSession]:
    """A token holding one RSA-2048 key ("rsa") and one P-256 key ("ec")."""
    token = Token(SOFTHSM_MODULE, "hash", softhsm_conf=tmp_path_factory.mktemp("hsm") / "softhsm2.conf")
    token.initialize_softhsm(so_pin="so-" + PIN, user_pin=PIN)
    s = token.open(PIN)
    s.generate("rsa", KeyAlgorithm.RSA2048)
    s.generate("ec", KeyAlgorithm.P256)
    yield s
    s.close()


def _verify_rsa(signer: Signer, signature: bytes, algorithm: hashes.HashAlgorithm) -> None:
    public = signer.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, DATA, padding.PKCS1v15(), algorithm)


def _check_sha512(signer: Signer) -> None:
    """sign() and sign_digest() of a SHA-512 signer are sha512WithRSA, and not SHA-256 ones."""
    s512 = signer.with_hash(hashes.SHA512())
    assert (s512.hash_algorithm.name, s512.algorithm, s512.key_label) == ("sha512", signer.algorithm, signer.key_label)
    assert signer.hash_algorithm.name == "sha256"  # the signer it came from is unchanged
    signature = s512.sign(DATA)
    _verify_rsa(signer, signature, hashes.SHA512())
    with pytest.raises(InvalidSignature):
        _verify_rsa(signer, signature, hashes.SHA256())
    digest = hashes.Hash(hashes.SHA512())
    digest.update(DATA)
    assert s512.sign_digest(digest.finalize()) == signature  # PKCS#1 v1.5 is deterministic
    with pytest.raises(InvalidInput, match="signs sha512 digests of 64 bytes, not 32"):
        s512.sign_digest(b"\0" * 32)


def _check_ecdsa_refuses_sha512(signer: Signer) -> None:
    with pytest.raises(InvalidInput, match="is ECDSA p256 and signs with sha256 only, not sha512; only RSA keys"):
        signer.with_hash(hashes.SHA512())
    assert signer.with_hash(hashes.SHA256()).hash_algorithm.name == "sha256"  # its own hash is fine


class TestToken:
    def test_rsa_key_signs_sha512(self, session: TokenSession) -> None:
        _check_sha512(session.signer("rsa"))

    @pytest.mark.parametrize("algorithm", SHA2, ids=lambda h: h.name)
    def test_rsa_key_signs_each_sha2_and_its_digest(self, session: TokenSession,
                                                    algorithm: hashes.HashAlgorithm) -> None:
        signer = session.signer("rsa").with_hash(algorithm)
        signature = signer.sign_digest(_digest(algorithm))
        _verify_rsa(signer, signature, algorithm)
        assert signer.sign(DATA) == signature

    def test_ecdsa_key_keeps_its_curve_hash(self, session: TokenSession) -> None:
        _check_ecdsa_refuses_sha512(session.signer("ec"))
        with pytest.raises(InvalidInput, match="key ec is ECDSA p256 .* not sha512"):
            session.sign("ec", DATA, "sha512")

    @pytest.mark.parametrize("wanted", [hashes.SHA1(), hashes.SHA3_512(), Prehashed(hashes.SHA512())],
                             ids=["sha1", "sha3", "prehashed"])
    def test_other_hashes_are_refused(self, session: TokenSession, wanted: hashes.HashAlgorithm) -> None:
        with pytest.raises(InvalidInput, match="unknown signature hash .* for key rsa; use sha256, sha384 or sha512"):
            session.signer("rsa").with_hash(wanted)

    def test_builders_sign_sha512_through_as_private_key(self, session: TokenSession) -> None:
        signer = session.signer("rsa").with_hash(hashes.SHA512())
        name = x509.Name.from_rfc4514_string("CN=sha512 test")
        now = dt.datetime.now(dt.UTC)
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(signer.public_key())
                   .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)))
        cert = builder.sign(as_private_key(signer), hashes.SHA512())
        assert cert.signature_hash_algorithm is not None and cert.signature_hash_algorithm.name == "sha512"
        cert.verify_directly_issued_by(cert)
        with pytest.raises(InvalidInput, match="signs with sha512, not sha256; pass signer.hash_algorithm"):
            builder.sign(as_private_key(signer), hashes.SHA256())


def _digest(algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(DATA)
    return h.finalize()


def test_software_signer_signs_sha512_too() -> None:
    _check_sha512(SoftwareSigner(rsa.generate_private_key(65537, 2048), "soft"))
    _check_ecdsa_refuses_sha512(SoftwareSigner(ec.generate_private_key(ec.SECP256R1()), "soft-ec"))


# --- through the HSM service -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hsm_socket(ceremony_templates: CeremonyTemplates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The HSM service in this process on a demo installation, activated; SQLite only: the hash is the
    token's business.  Shared by the module's service tests, which only sign and get refused."""
    with serving_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("hsm-hash")) as made:
        assert made.socket is not None
        keys = officers_client(made.socket, made.settings)  # key generation is a ceremony act
        keys.generate("tsa-rsa", KeyAlgorithm.RSA2048)
        keys.generate("other-ec", KeyAlgorithm.P256)
        keys.close()
        yield made.socket


@pytest.fixture(scope="module")
def client(hsm_socket: Path) -> Iterator[HSMClient]:
    c = HSMClient(hsm_socket)
    yield c
    c.close()


def _raw(path: Path, request: dict[str, object]) -> bytes:
    """One request line as any client (an old one, a broken one) sends it; the reply line as it comes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(str(path))
        with sock.makefile("rwb") as f:
            f.write(json.dumps(request).encode() + b"\n")
            f.flush()
            return f.readline()


class TestService:
    def test_rsa_key_signs_sha512_and_old_requests_keep_sha256(self, client: HSMClient, hsm_socket: Path) -> None:
        signer = client.signer("tsa-rsa")
        _check_sha512(signer)
        _check_ecdsa_refuses_sha512(client.signer("other-ec"))
        old = json.loads(_raw(hsm_socket, {"op": "sign", "label": "tsa-rsa", "data": base64.b64encode(DATA).decode()}))
        _verify_rsa(signer, base64.b64decode(old["signature"]), hashes.SHA256())

    def test_the_service_refuses_sha512_for_an_ecdsa_key(self, client: HSMClient, hsm_socket: Path) -> None:
        for op, field, value in (("sign", "data", DATA), ("sign_digest", "digest", _digest(hashes.SHA512()))):
            with pytest.raises(InvalidInput, match="key other-ec is ECDSA p256 and signs with sha256 only"):
                client.call(op, label="other-ec", hash="sha512", **{field: base64.b64encode(value).decode()})

    @pytest.mark.parametrize("value", ["md5", "SHA512", "", 512, ["sha512"], {"name": "sha512"}])
    def test_bad_hash_name_gets_one_line_error(self, client: HSMClient, hsm_socket: Path, value: object) -> None:
        for op, field in (("sign", "data"), ("sign_digest", "digest")):
            line = _raw(hsm_socket, {"op": op, "label": "tsa-rsa", "hash": value,
                                     field: base64.b64encode(_digest(hashes.SHA512())).decode()})
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            reply = json.loads(line)
            assert reply["ok"] is False and reply["error"] == "InvalidInput", reply
            assert reply["message"].startswith("unknown signature hash ")
            assert reply["message"].endswith("for key tsa-rsa; use sha256, sha384 or sha512")
        assert client.status()["activated"]  # still serving
