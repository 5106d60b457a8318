"""ca.der.cms, the one CMS SignedData builder, checked by a second implementation: `openssl cms
-verify` and `openssl ts -verify` read what it makes, the HSM policy classifies what it sends to
the signer, and id-data SignedData equals what cryptography's PKCS7 builder made before
(byte for byte for RSA, whose signatures are deterministic)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ca.der.cms import SignedAttributes, sign_data, signed_data
from ca.errors import InvalidInput, TokenError
from ca.hsm.policy import CVS_ANSWER, Signed, classify
from ca.hsm.signer import SoftwareSigner, as_private_key
from ca.tsa.token import build_tst_info

NOW = dt.datetime(2026, 11, 1, 9, 0, 5, tzinfo=dt.UTC)
ROOT_KEY = rsa.generate_private_key(65537, 2048)
Key = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
KEYS: dict[str, Key] = {
    "rsa2048": rsa.generate_private_key(65537, 2048),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(key: Key, cn: str, *, ca: bool = False, time_stamping: bool = False) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name("Test Bridge CA"))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if time_stamping:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
    return builder.sign(ROOT_KEY, hashes.SHA256())


ROOT = (x509.CertificateBuilder().subject_name(_name("Test Bridge CA")).issuer_name(_name("Test Bridge CA"))
        .public_key(ROOT_KEY.public_key()).serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1)).not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ROOT_KEY, hashes.SHA256()))


class RecordingSigner(SoftwareSigner):
    """A software key that keeps what it was asked to sign: what the HSM service would parse."""

    sent: list[bytes]

    def sign(self, data: bytes) -> bytes:
        self.sent.append(data)
        return super().sign(data)


def _signer(kind: str, label: str = "receipt-signer/test") -> RecordingSigner:
    signer = RecordingSigner(KEYS[kind], label)
    signer.sent = []
    return signer


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def _files(tmp_path: Path, der: bytes) -> tuple[Path, Path]:
    (tmp_path / "roots.pem").write_bytes(ROOT.public_bytes(Encoding.PEM))
    (tmp_path / "signed.der").write_bytes(der)
    return tmp_path / "signed.der", tmp_path / "roots.pem"


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("content_type", ["data", CVS_ANSWER])
def test_openssl_cms_verifies_it_and_reads_the_content_back(tmp_path: Path, kind: str, content_type: str) -> None:
    signer = _signer(kind)
    der = signed_data(content_type, b"the answer \x00\xff", certificate=_certificate(KEYS[kind], "signer"),
                      signer=signer, attributes=SignedAttributes(signing_time=NOW), extra_certificates=[ROOT])
    signed, roots = _files(tmp_path, der)
    done = _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed), "-CAfile", str(roots),
                    "-purpose", "any", "-out", str(tmp_path / "content"))
    assert done.returncode == 0, done.stderr
    assert "Verification successful" in done.stderr
    assert (tmp_path / "content").read_bytes() == b"the answer \x00\xff"
    sd = cms.ContentInfo.load(der)["content"]
    assert sd["version"].native == ("v1" if content_type == "data" else "v3")  # RFC 5652 5.1
    assert [a["type"].native for a in sd["signer_infos"][0]["signed_attrs"]] == [
        "content_type", "signing_time", "message_digest"]


def test_openssl_cms_refuses_it_once_a_content_byte_changes(tmp_path: Path) -> None:
    signer = _signer("p256")
    der = signed_data(CVS_ANSWER, b"status: valid", certificate=_certificate(KEYS["p256"], "signer"), signer=signer,
                      attributes=SignedAttributes(signing_time=NOW), extra_certificates=[ROOT])
    signed, roots = _files(tmp_path, der.replace(b"status: valid", b"status: VALID"))
    done = _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed), "-CAfile", str(roots),
                    "-purpose", "any", "-out", str(tmp_path / "content"))
    assert done.returncode != 0 and "content verify error" in done.stderr


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_openssl_ts_verifies_a_time_stamp_token_with_signing_certificate_v2(tmp_path: Path, kind: str) -> None:
    certificate = _certificate(KEYS[kind], "Test TSA", time_stamping=True)
    signer = _signer(kind, "tsa/test")
    data = b"archived bytes"
    tst = build_tst_info(serial=42, gen_time=NOW, hash_name="sha256", imprint=hashlib.sha256(data).digest(),
                         nonce=None, tsa_name=None)
    token = signed_data("tst_info", tst.dump(), certificate=certificate, signer=signer,
                        attributes=SignedAttributes(signing_certificate_v2=True), extra_certificates=[ROOT])
    signed, roots = _files(tmp_path, token)
    (tmp_path / "data").write_bytes(data)
    done = _openssl("ts", "-verify", "-token_in", "-in", str(signed), "-data", str(tmp_path / "data"),
                    "-CAfile", str(roots))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout
    (tmp_path / "data").write_bytes(data + b".")
    assert _openssl("ts", "-verify", "-token_in", "-in", str(signed), "-data", str(tmp_path / "data"),
                    "-CAfile", str(roots)).returncode != 0


def test_the_signer_is_sent_what_the_hsm_policy_classifies_by_content_type() -> None:
    tst = build_tst_info(serial=1, gen_time=NOW, hash_name="sha256", imprint=bytes(32), nonce=None, tsa_name=None)
    cases = {"data": (b"x", Signed.RECEIPT), CVS_ANSWER: (b"x", Signed.CVS_ANSWER),
             "tst_info": (tst.dump(), Signed.TIME_STAMP)}
    for content_type, (content, expected) in cases.items():
        signer = _signer("p256")
        der = signed_data(content_type, content, certificate=_certificate(KEYS["p256"], "signer"), signer=signer,
                          attributes=SignedAttributes(signing_time=NOW))
        [sent] = signer.sent
        assert classify(sent) is expected
        # the SET OF that was signed is the one carried, byte for byte (RFC 5652 5.4)
        assert cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"].untag().dump(force=True) == sent


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_id_data_is_what_cryptographys_pkcs7_builder_made(kind: str) -> None:
    """Receipts and disclosure bundles were made by PKCS7SignatureBuilder: same attributes, same bytes."""
    certificate = _certificate(KEYS[kind], "Receipt signer")
    before = (pkcs7.PKCS7SignatureBuilder().set_data(b'{"type":"receipt"}')
              .add_signer(certificate, as_private_key(_signer(kind)), _signer(kind).hash_algorithm)  # type: ignore[arg-type]
              .sign(Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    old_info = cms.ContentInfo.load(before)["content"]["signer_infos"][0]
    [signing_time] = [a["values"][0].native for a in old_info["signed_attrs"] if a["type"].native == "signing_time"]
    signer = _signer(kind)
    after = sign_data(b'{"type":"receipt"}', certificate=certificate, signer=signer, now=signing_time)
    [sent] = signer.sent
    assert sent == old_info["signed_attrs"].untag().dump(force=True)  # the signer is sent the same bytes
    if kind == "rsa2048":
        assert after == before
    else:  # ECDSA signatures are randomised: everything else is the same
        new, old = cms.ContentInfo.load(after)["content"], cms.ContentInfo.load(before)["content"]
        for field in ("version", "digest_algorithms", "encap_content_info", "certificates"):
            assert new[field].dump() == old[field].dump()
        new_info = new["signer_infos"][0]
        for field in ("version", "sid", "digest_algorithm", "signed_attrs", "signature_algorithm"):
            assert new_info[field].dump() == old_info[field].dump()


def test_without_certificates_none_is_carried() -> None:
    der = signed_data(CVS_ANSWER, b"x", certificate=_certificate(KEYS["p256"], "signer"), signer=_signer("p256"),
                      attributes=SignedAttributes(signing_certificate_v2=True), extra_certificates=[ROOT],
                      include_certificates=False)
    assert cms.ContentInfo.load(der)["content"]["certificates"].native is None


def test_a_key_that_is_not_the_certificates_is_refused_before_signing() -> None:
    signer = _signer("p256")
    with pytest.raises(InvalidInput, match="is not the key of certificate .*; answer not signed"):
        signed_data(CVS_ANSWER, b"x", certificate=_certificate(KEYS["p384"], "other"), signer=signer,
                    attributes=SignedAttributes(signing_time=NOW), what="answer")
    assert signer.sent == []


def test_a_signature_that_does_not_verify_is_withheld() -> None:
    class Faulty(RecordingSigner):
        def sign(self, data: bytes) -> bytes:
            good = super().sign(data)
            return good[:-1] + bytes([good[-1] ^ 1])

    signer = Faulty(KEYS["rsa2048"], "receipt-signer/faulty")
    signer.sent = []
    with pytest.raises(TokenError, match="does not verify; receipt withheld"):
        sign_data(b"x", certificate=_certificate(KEYS["rsa2048"], "signer"), signer=signer, now=NOW, what="receipt")


def test_a_naive_signing_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="naive"):
        SignedAttributes(signing_time=dt.datetime(2026, 11, 1, 9, 0))


def test_signing_time_after_2049_is_generalized_time() -> None:
    """RFC 5652 11.3: UTCTime only for 1950-2049."""
    der = signed_data(CVS_ANSWER, b"x", certificate=_certificate(KEYS["p256"], "signer"), signer=_signer("p256"),
                      attributes=SignedAttributes(signing_time=dt.datetime(2051, 1, 2, 3, 4, 5, 999, tzinfo=dt.UTC)))
    attrs = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    [time] = [a["values"][0] for a in attrs if a["type"].native == "signing_time"]
    assert time.name == "generalized_time"
    assert time.native == dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
