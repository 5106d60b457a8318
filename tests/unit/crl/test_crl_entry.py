"""ca.crl.entry: one revokedCertificates element, checked against cryptography's own encoder
(byte for byte) and parser (round trip), with the boundaries RFC 5280 5.1.2.6 cares about."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ca.errors import InvalidInput
from ca.revocation.crl_entry import MAX_SERIAL, encode_entry

KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "entry test")])
FLAGS = {1: x509.ReasonFlags.key_compromise, 2: x509.ReasonFlags.ca_compromise,
         3: x509.ReasonFlags.affiliation_changed, 4: x509.ReasonFlags.superseded,
         5: x509.ReasonFlags.cessation_of_operation}
CODES = {flag: code for code, flag in FLAGS.items()}
JST = dt.timezone(dt.timedelta(hours=9))

reasons = st.integers(min_value=1, max_value=5)
times = st.datetimes(min_value=dt.datetime(1950, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59),
                     timezones=st.just(dt.UTC))


def cryptography_entry(serial: int, when: dt.datetime, reason: int) -> bytes:
    """The entry as cryptography's CRL builder encodes it, cut out of a signed CRL."""
    revoked = (x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
               .add_extension(x509.CRLReason(FLAGS[reason]), critical=False).build())
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ISSUER)
           .last_update(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).next_update(dt.datetime(2026, 1, 4, tzinfo=dt.UTC))
           .add_revoked_certificate(revoked).sign(KEY, hashes.SHA256()))
    parsed = asn1_crl.CertificateList.load(crl.public_bytes(encoding=Encoding.DER))
    return parsed["tbs_cert_list"]["revoked_certificates"][0].dump()


def parse_entry(entry: bytes) -> x509.RevokedCertificate:
    """Parse an entry with cryptography by wrapping it in an (unsigned) CRL."""
    parsed = asn1_crl.CertificateList.load(
        (x509.CertificateRevocationListBuilder().issuer_name(ISSUER)
         .last_update(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).next_update(dt.datetime(2026, 1, 4, tzinfo=dt.UTC))
         .sign(KEY, hashes.SHA256())).public_bytes(encoding=Encoding.DER))
    tbs = parsed["tbs_cert_list"]
    tbs["revoked_certificates"] = asn1_crl.RevokedCertificates.load(b"\x30" + _length(len(entry)) + entry)
    crl = x509.load_der_x509_crl(parsed.dump(force=True))
    assert len(crl) == 1
    return crl[0]


def _length(n: int) -> bytes:
    return bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")


def test_entry_equals_cryptography_builders_bytes_for_each_reason() -> None:
    when = dt.datetime(2026, 11, 1, 9, 30, 15, tzinfo=dt.UTC)
    for reason in range(1, 6):
        serial = x509.random_serial_number()
        assert encode_entry(serial, when, reason) == cryptography_entry(serial, when, reason)


@settings(max_examples=60, deadline=None)
@given(serial=st.integers(min_value=1, max_value=(1 << 159) - 1), when=times, reason=reasons)
def test_entry_equals_cryptography_builders_bytes(serial: int, when: dt.datetime, reason: int) -> None:
    assert encode_entry(serial, when, reason) == cryptography_entry(serial, when, reason)


@settings(max_examples=300, deadline=None)
@given(serial=st.integers(min_value=1, max_value=1 << 159), when=times, reason=reasons)
def test_entry_round_trips_through_cryptographys_parser(serial: int, when: dt.datetime, reason: int) -> None:
    revoked = parse_entry(encode_entry(serial, when, reason))
    assert revoked.serial_number == serial
    assert revoked.revocation_date_utc == when.replace(microsecond=0)
    ext = revoked.extensions.get_extension_for_class(x509.CRLReason)
    assert not ext.critical
    assert CODES[ext.value.reason] == reason


def test_utctime_through_2049_and_generalizedtime_from_2050() -> None:
    last_utc = encode_entry(1, dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC), 1)
    first_generalized = encode_entry(1, dt.datetime(2050, 1, 1, tzinfo=dt.UTC), 1)
    assert b"\x17\x0d491231235959Z" in last_utc
    assert b"\x18\x0f20500101000000Z" in first_generalized


def test_time_is_converted_to_utc_and_fractions_dropped() -> None:
    jst = dt.datetime(2026, 11, 1, 18, 0, 0, 999_999, tzinfo=JST)
    assert encode_entry(5, jst, 4) == encode_entry(5, dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC), 4)


def test_serial_with_top_bit_set_gets_a_sign_octet() -> None:
    assert encode_entry(0x80, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 1)[2:6] == b"\x02\x02\x00\x80"


def test_imported_160_bit_serials_are_accepted_up_to_21_octets() -> None:
    entry = encode_entry(MAX_SERIAL, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 1)
    assert entry[2:5] == b"\x02\x15\x00"
    assert parse_entry(entry).serial_number == MAX_SERIAL


@pytest.mark.parametrize("reason", [0, 6, 7, 8, 9, 10, -1, True, "1", 1.0, None])
def test_reasons_other_than_1_to_5_are_refused(reason: object) -> None:
    with pytest.raises(InvalidInput, match="certificateHold"):
        encode_entry(1, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), reason)  # type: ignore[arg-type]


@pytest.mark.parametrize("serial", [0, -1, MAX_SERIAL + 1, True, 1.0, "1"])
def test_serials_that_are_not_positive_ints_of_160_bits_are_refused(serial: object) -> None:
    with pytest.raises(InvalidInput, match="serial"):
        encode_entry(serial, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 1)  # type: ignore[arg-type]


def test_naive_revocation_time_is_refused() -> None:
    with pytest.raises(InvalidInput, match="naive"):
        encode_entry(1, dt.datetime(2026, 1, 1), 1)


def test_revocation_time_must_be_a_datetime() -> None:
    with pytest.raises(InvalidInput, match="datetime"):
        encode_entry(1, dt.date(2026, 1, 1), 1)  # type: ignore[arg-type]
