"""ca.crl.tbs and ca.crl.writer without a database: the streamed CertificateList equals what
cryptography's CRL builder makes from the same values (byte for byte for RSA, whose
signatures are deterministic), whatever the algorithm, list type or size."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca.crl import writer
from ca.crl.tbs import CRLFields
from ca.der import encoding as der
from ca.der.algorithms import signature_algorithm
from ca.enums import CertKind, ListType
from ca.errors import AlreadyExists, InvalidInput, TokenError
from ca.hsm.signer import KeyAlgorithm, SoftwareSigner, as_private_key
from ca.issuance import Issuer, issue, key_identifier
from ca.revocation.crl_entry import encode_entry

from support.clock import NO_NTP

THIS = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
NEXT = THIS + dt.timedelta(hours=72)
NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                 "JPKI"), x509.NameAttribute(NameOID.COMMON_NAME, "Governor of Tokyo")])
SIGNERS = {
    "rsa2048": SoftwareSigner(rsa.generate_private_key(65537, 2048), "rsa"),
    "p256": SoftwareSigner(ec.generate_private_key(ec.SECP256R1()), "p256"),
    "p384": SoftwareSigner(ec.generate_private_key(ec.SECP384R1()), "p384"),
}
FLAGS = [x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise, x509.ReasonFlags.affiliation_changed,
         x509.ReasonFlags.superseded, x509.ReasonFlags.cessation_of_operation]


def revocations(n: int) -> list[tuple[int, dt.datetime, int]]:
    return [(x509.random_serial_number(), THIS - dt.timedelta(days=i, seconds=i), 1 + i % 5) for i in range(n)]


def fields(signer: SoftwareSigner, list_type: ListType = ListType.CRL, number: int = 7) -> CRLFields:
    return CRLFields(issuer=NAME.public_bytes(), this_update=THIS, next_update=NEXT, number=number,
                     authority_key_id=key_identifier(signer.public_key()), list_type=list_type,
                     algorithm=signer.algorithm)


def ours(tmp_path: Path, f: CRLFields, signer: SoftwareSigner, rows: list[tuple[int, dt.datetime, int]],
         parts: int = 1) -> bytes:
    """Spool the entries in `parts` segments, then write and read back the CRL."""
    entries = [encode_entry(*row) for row in rows]
    segments = []
    for k in range(parts):
        segments.append(writer.spool_entries([entries[k::parts]], tmp_path / f"spool{k}"))
    target = tmp_path / "out.crl"
    published = writer.write_certificate_list(f, segments, signer, target)
    data = target.read_bytes()
    assert published.size == len(data) and published.sha256 == hashlib.sha256(data).digest()
    assert published.entries == len(rows)
    return data


def theirs(f: CRLFields, signer: SoftwareSigner, rows: list[tuple[int, dt.datetime, int]],
           parts: int = 1) -> x509.CertificateRevocationList:
    builder = (x509.CertificateRevocationListBuilder().issuer_name(NAME).last_update(THIS).next_update(NEXT)
               .add_extension(x509.AuthorityKeyIdentifier(f.authority_key_id, None, None), critical=False)
               .add_extension(x509.CRLNumber(f.number), critical=False)
               .add_extension(x509.IssuingDistributionPoint(
                   full_name=None, relative_name=None, only_contains_user_certs=f.list_type is ListType.CRL,
                   only_contains_ca_certs=f.list_type is ListType.ARL, only_some_reasons=None,
                   indirect_crl=False, only_contains_attribute_certs=False), critical=True))
    ordered = [row for k in range(parts) for row in rows[k::parts]]
    for serial, when, reason in ordered:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            .add_extension(x509.CRLReason(FLAGS[reason - 1]), critical=False).build())
    return builder.sign(as_private_key(signer), signer.algorithm.hash_algorithm)


@pytest.mark.parametrize("algorithm", SIGNERS)
@pytest.mark.parametrize("list_type", [ListType.CRL, ListType.ARL])
def test_tbs_equals_cryptography_builders(tmp_path: Path, algorithm: str, list_type: ListType) -> None:
    signer = SIGNERS[algorithm]
    rows = revocations(3)
    f = fields(signer, list_type)
    data = ours(tmp_path, f, signer, rows)
    crl = x509.load_der_x509_crl(data)
    assert crl.tbs_certlist_bytes == theirs(f, signer, rows).tbs_certlist_bytes
    assert crl.is_signature_valid(signer.public_key())


def test_rsa_crl_equals_cryptography_builders_byte_for_byte(tmp_path: Path) -> None:
    signer = SIGNERS["rsa2048"]
    rows = revocations(5)
    f = fields(signer)
    assert ours(tmp_path, f, signer, rows) == theirs(f, signer, rows).public_bytes(Encoding.DER)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 1300])  # lengths below 128, to 255, and past 65535 bytes
def test_lengths_across_der_length_boundaries(tmp_path: Path, count: int) -> None:
    signer = SIGNERS["rsa2048"]
    rows = revocations(count)
    f = fields(signer, number=1 << 70)
    assert ours(tmp_path, f, signer, rows) == theirs(f, signer, rows).public_bytes(Encoding.DER)


def test_empty_list_leaves_out_revoked_certificates(tmp_path: Path) -> None:
    signer = SIGNERS["p256"]
    f = fields(signer)
    crl = x509.load_der_x509_crl(ours(tmp_path, f, signer, []))
    assert len(crl) == 0
    # version, signature, issuer, thisUpdate, nextUpdate, then straight to [0] crlExtensions
    prefix = f.tbs_prefix(0, 0)
    assert crl.tbs_certlist_bytes.startswith(prefix)
    assert crl.tbs_certlist_bytes[len(prefix)] == der.CONTEXT_0_CONSTRUCTED


def test_entries_over_several_segments_and_buffers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "BLOCK", 7)  # blocks that cut entries, headers and segments anywhere
    signer = SIGNERS["rsa2048"]
    rows = revocations(40)
    f = fields(signer)
    assert ours(tmp_path, f, signer, rows, parts=3) == theirs(f, signer, rows, parts=3).public_bytes(Encoding.DER)


def test_signature_algorithm_identifiers() -> None:
    assert signature_algorithm(KeyAlgorithm.RSA2048) == bytes.fromhex("300d06092a864886f70d01010b0500")
    assert signature_algorithm(KeyAlgorithm.RSA4096) == bytes.fromhex("300d06092a864886f70d01010b0500")
    assert signature_algorithm(KeyAlgorithm.P256) == bytes.fromhex("300a06082a8648ce3d040302")
    assert signature_algorithm(KeyAlgorithm.P384) == bytes.fromhex("300a06082a8648ce3d040303")


def test_kept_segment_that_does_not_match_its_hash_is_refused_before_signing(tmp_path: Path) -> None:
    signer = SIGNERS["p256"]
    spool = writer.spool_entries([[encode_entry(*row) for row in revocations(4)]], tmp_path / "spool")
    wrong = writer.Segment(spool.path, spool.length, spool.count, sha256_through=hashlib.sha256(b"x").digest())
    with pytest.raises(writer.SegmentMismatch):
        writer.write_certificate_list(fields(signer), [wrong], signer, tmp_path / "out.crl")
    assert not list(tmp_path.glob("*.crl")) and not list(tmp_path.glob(".*tmp"))


def test_segment_shorter_than_recorded_is_refused(tmp_path: Path) -> None:
    signer = SIGNERS["p256"]
    spool = writer.spool_entries([[encode_entry(*row) for row in revocations(2)]], tmp_path / "spool")
    longer = writer.Segment(spool.path, spool.length + 10, spool.count)
    with pytest.raises(writer.SegmentMismatch, match="shorter"):
        writer.write_certificate_list(fields(signer), [longer], signer, tmp_path / "out.crl")


class WrongSigner(SoftwareSigner):
    def sign_digest(self, digest: bytes) -> bytes:
        return super().sign_digest(hashlib.sha256(b"something else").digest())


def test_signature_that_does_not_verify_is_withheld(tmp_path: Path) -> None:
    signer = WrongSigner(ec.generate_private_key(ec.SECP256R1()), "wrong")
    spool = writer.spool_entries([], tmp_path / "spool")
    with pytest.raises(TokenError, match="does not verify"):
        writer.write_certificate_list(fields(signer), [spool], signer, tmp_path / "out.crl")
    assert not (tmp_path / "out.crl").exists()


def test_published_file_is_never_replaced(tmp_path: Path) -> None:
    signer = SIGNERS["p256"]
    (tmp_path / "out.crl").write_bytes(b"earlier")
    spool = writer.spool_entries([], tmp_path / "spool")
    with pytest.raises(AlreadyExists, match="never reused"):
        writer.write_certificate_list(fields(signer), [spool], signer, tmp_path / "out.crl")
    assert (tmp_path / "out.crl").read_bytes() == b"earlier"
    assert not list(tmp_path.glob(".*tmp"))


def test_null_entry_is_reported_not_skipped(tmp_path: Path) -> None:
    with pytest.raises(writer.MissingEntryDER):
        writer.spool_entries([[encode_entry(*revocations(1)[0]), None]], tmp_path / "spool")


@pytest.mark.parametrize(("change", "message"), [
    ({"this_update": dt.datetime(2026, 11, 1)}, "naive"),
    ({"next_update": THIS}, "later than thisUpdate"),
    ({"number": -1}, "CRL number"),
    ({"number": 1 << 159}, "CRL number"),
    ({"issuer": b"\x31\x00"}, "Name"),
    ({"authority_key_id": b""}, "key identifier"),
    ({"list_type": "crl"}, "ListType"),
])
def test_fields_are_checked_when_made(change: dict[str, object], message: str) -> None:
    values = {"issuer": NAME.public_bytes(), "this_update": THIS, "next_update": NEXT, "number": 1,
              "authority_key_id": b"k", "list_type": ListType.CRL, "algorithm": KeyAlgorithm.P256}
    with pytest.raises(InvalidInput, match=message):
        CRLFields(**{**values, **change})  # type: ignore[arg-type]


def test_prefix_refuses_a_byte_count_without_entries() -> None:
    with pytest.raises(InvalidInput):
        fields(SIGNERS["p256"]).tbs_prefix(10, 0)


@pytest.mark.parametrize(("n", "encoded"), [(0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"),
                                            (65535, "82ffff"), (65536, "83010000"), (1 << 32, "850100000000")])
def test_der_lengths(n: int, encoded: str) -> None:
    assert der.length(n) == bytes.fromhex(encoded)


def test_oids_encode_as_x690_says() -> None:
    assert der.oid("2.5.29.21") == bytes.fromhex("0603551d15")
    assert der.oid("1.2.840.113549.1.1.11") == bytes.fromhex("06092a864886f70d01010b")


def test_certificate_subject_is_cut_out_unchanged() -> None:
    signer = SIGNERS["p256"]
    cert = issue(CertKind.SELF_SIGNED, issuer=Issuer.from_signer(NAME, signer), subject=NAME,
                 public_key=signer.public_key(), not_before=THIS, time_guard=NO_NTP)
    data = cert.public_bytes(Encoding.DER)
    subject = der.certificate_subject(data)
    assert subject == asn1_x509.Certificate.load(data)["tbs_certificate"]["subject"].dump()
    assert subject == cert.subject.public_bytes()
