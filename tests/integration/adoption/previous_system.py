"""A prefectural CA as the system before revoca left it (issue 14's check), made without revoca.

Run as a program, in a process of its own; it imports nothing of revoca.  With python-pkcs11
it generates the CA's RSA-2048 key pair in a SoftHSM2 token (label KANAGAWA-CA-2016, CKA_ID
4211; the user PIN read from a file) and a second, unrelated key pair (KANAGAWA-SPARE); with
pyca/cryptography's builders, signing through the token key, it makes

  old-root.pem       the self-signed CA certificate (its own, not RFC 5280 method 1, key identifier)
  good.pem           a subscriber certificate nobody revoked
  revoked.pem        a subscriber certificate revoked on the CRL
  later.pem          a subscriber certificate nobody revoked yet (revoca will)
  last.crl           CRL number 4211 with `--revoked` entries (one is revoked.pem's), DER
  last.arl           ARL number 977 with 2 entries (cross certificates of the old bridge), DER
  hold.crl           CRL number 4210 with 3 entries, one of them certificateHold, DER
  foreign.crl        a CRL that names the CA but is signed by a key in a file
  entries.json       what the CRL holds: [serial hex, revocation date ISO, reason number], in order

Usage: SOFTHSM2_CONF=... python previous_system.py MODULE TOKEN PIN_FILE OUT_DIR [REVOKED]
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.util.rsa import encode_rsa_public_key

SUBJECT = x509.Name([
    x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "JPKI"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Prefectural CA"),
    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Kanagawa"),
    x509.NameAttribute(NameOID.COMMON_NAME, "Governor of Kanagawa"),
])
CA_LABEL, CA_ID = "KANAGAWA-CA-2016", bytes.fromhex("4211")
SPARE_LABEL, SPARE_ID = "KANAGAWA-SPARE", bytes.fromhex("4212")
OWN_SKI = bytes.fromhex("0a0b0c0d0e0f1011")  # the old system's own key identifier scheme
REASONS = (x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise, x509.ReasonFlags.affiliation_changed,
           x509.ReasonFlags.superseded, x509.ReasonFlags.cessation_of_operation)
REASON_NUMBER = {r: n for n, r in enumerate(REASONS, start=1)}


class TokenKey(rsa.RSAPrivateKey):
    """The token's private key as cryptography's builders want it: sign() is C_Sign."""

    def __init__(self, private: pkcs11.PrivateKey, public: rsa.RSAPublicKey) -> None:
        self._private, self._public = private, public

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: object) -> bytes:
        assert isinstance(padding_, padding.PKCS1v15) and isinstance(algorithm, hashes.SHA256)
        return bytes(self._private.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        raise NotImplementedError

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise NotImplementedError

    def private_bytes(self, *args: object, **kwargs: object) -> bytes:
        raise NotImplementedError

    def __copy__(self) -> TokenKey:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> TokenKey:
        return self


def generate(session: pkcs11.Session, label: str, key_id: bytes) -> TokenKey:
    public, private = session.generate_keypair(
        KeyType.RSA, 2048, id=key_id, label=label, store=True,
        public_template={Attribute.VERIFY: True, Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
        private_template={Attribute.SIGN: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                          Attribute.PRIVATE: True})
    loaded = serialization.load_der_public_key(encode_rsa_public_key(public))
    assert isinstance(loaded, rsa.RSAPublicKey)
    return TokenKey(private, loaded)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def self_signed(key: TokenKey, now: dt.datetime) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(SUBJECT).issuer_name(SUBJECT).public_key(key.public_key())
            .serial_number(0x01).not_valid_before(now - dt.timedelta(days=3650))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(OWN_SKI), critical=False)
            .sign(key, hashes.SHA256()))


def subscriber(key: TokenKey, serial: int, name: str, now: dt.datetime) -> x509.Certificate:
    own = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(SUBJECT).public_key(own.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now + dt.timedelta(days=700))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier(OWN_SKI, None, None), critical=False)
            .sign(key, hashes.SHA256()))


def certificate_list(key: rsa.RSAPrivateKey, number: int, this_update: dt.datetime,
                     entries: list[tuple[int, dt.datetime, x509.ReasonFlags]]) -> bytes:
    revoked = [x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
               .add_extension(x509.CRLReason(reason), critical=False).build() for serial, when, reason in entries]
    # the entries through the constructor: one list, not 10,000 copies of a growing one
    builder = (x509.CertificateRevocationListBuilder(revoked_certificates=revoked).issuer_name(SUBJECT)
               .last_update(this_update).next_update(this_update + dt.timedelta(hours=72))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(OWN_SKI, None, None), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def main(module: str, token_label: str, pin_file: str, out_dir: str, count: int = 10_000) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    pin = Path(pin_file).read_text(encoding="utf-8").strip()
    session = pkcs11.lib(module).get_token(token_label=token_label).open(rw=True, user_pin=pin)
    try:
        key = generate(session, CA_LABEL, CA_ID)
        generate(session, SPARE_LABEL, SPARE_ID)
        root = self_signed(key, now)
        good = subscriber(key, 0x5EED_0001, "Good Subscriber", now)
        revoked_cert = subscriber(key, 0x5EED_0002, "Revoked Subscriber", now)
        later = subscriber(key, 0x5EED_0003, "Later Subscriber", now)
        rng = random.Random(4211)
        serials = sorted({rng.getrandbits(63) | (1 << 62) for _ in range(count + 64)})
        serials = serials[:count - 1]
        rng.shuffle(serials)
        start = now - dt.timedelta(days=3000)
        entries = [(s, start + dt.timedelta(seconds=rng.randrange(3000 * 86400)), REASONS[i % 5])
                   for i, s in enumerate(serials)]
        entries.insert(count // 2, (revoked_cert.serial_number, now - dt.timedelta(days=30, hours=5),
                                    x509.ReasonFlags.key_compromise))
        this_update = now - dt.timedelta(hours=20)
        (out / "last.crl").write_bytes(certificate_list(key, 4211, this_update, entries))
        (out / "last.arl").write_bytes(certificate_list(
            key, 977, this_update, [(0x0B0001, start, x509.ReasonFlags.superseded),
                                    (0x0B0002, start + dt.timedelta(days=900), x509.ReasonFlags.ca_compromise)]))
        held = [(0x0C0001, start, x509.ReasonFlags.superseded),
                (0x0C0002, start, x509.ReasonFlags.certificate_hold),
                (0x0C0003, start, x509.ReasonFlags.cessation_of_operation)]
        (out / "hold.crl").write_bytes(certificate_list(key, 4210, this_update - dt.timedelta(days=1), held))
        stranger = rsa.generate_private_key(65537, 2048)
        (out / "foreign.crl").write_bytes(certificate_list(stranger, 4212, this_update, entries[:5]))
        (out / "old-root.pem").write_bytes(pem(root))
        (out / "good.pem").write_bytes(pem(good))
        (out / "later.pem").write_bytes(pem(later))
        (out / "revoked.pem").write_bytes(pem(revoked_cert))
        (out / "entries.json").write_text(json.dumps(
            [[format(s, "x"), w.isoformat(), REASON_NUMBER[r]] for s, w, r in entries]), encoding="utf-8")
    finally:
        session.close()


if __name__ == "__main__":
    main(*sys.argv[1:5], *(int(a) for a in sys.argv[5:6]))
