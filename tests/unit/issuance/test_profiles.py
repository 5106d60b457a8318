"""Profiles and issuance, checked by OpenSSL path validation and pkilint, not only by cryptography.

The hierarchy: a bridge CA, the Tokyo regional CA (whose key is rolled over), and an external
CA with a P-384 key, cross-certified both ways.  Times are fixed; OpenSSL validates at VERIFY_AT.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from ca.config import regional_ca
from ca.enums import CertKind
from ca.errors import InvalidInput, TokenError
from ca.hsm.signer import SoftwareSigner
from ca.issuance import Issuer, issue, key_identifier
from ca.profiles import ID_KP_SCVP_SERVER, PROFILES, PolicyOID, Profile, add_years
from ca.subscribers import random_basic_four

from support.clock import NO_NTP
from support.tools import assert_pkilint_clean, openssl_verify, pkilint_cert, pkilint_chain

T0 = datetime(2020, 4, 1, tzinfo=UTC)  # first CA keys generated, self-signed certificates issued
CROSS_AT = datetime(2022, 4, 1, tzinfo=UTC)
NOW = datetime(2024, 4, 1, tzinfo=UTC)  # end-entity certificates issued
ROLLOVER = datetime(2024, 10, 1, tzinfo=UTC)  # Tokyo's new key generated
VERIFY_AT = ROLLOVER + timedelta(days=2)

BRIDGE = x509.Name.from_rfc4514_string("CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP")
TOKYO = x509.Name.from_rfc4514_string(regional_ca("Tokyo").subject)
EXTERNAL = x509.Name.from_rfc4514_string("CN=Government Bridge CA,O=Government of Japan,C=JP")
SERVER = x509.Name.from_rfc4514_string("CN=ocsp.tokyo.example.jp,OU=Tokyo,O=JPKI,C=JP")
HOLDER = x509.Name.from_rfc4514_string("CN=0123456789ABCDEFGHIJ,L=Chiyoda-ku,ST=Tokyo,C=JP")

# Accepted pkilint warnings, by code; empty means any WARNING fails a test.
ALLOWED_WARNINGS: frozenset[str] = frozenset()


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class PKI:
    bridge: Issuer
    tokyo: Issuer
    tokyo_new: Issuer
    external: Issuer
    certs: dict[str, x509.Certificate]

    def __getitem__(self, name: str) -> x509.Certificate:
        return self.certs[name]


@pytest.fixture(scope="module")
def pki() -> PKI:
    signers = {
        "bridge": SoftwareSigner(_rsa(), "bridge"),
        "tokyo": SoftwareSigner(_rsa(), "tokyo-1"),
        "tokyo_new": SoftwareSigner(_rsa(), "tokyo-2"),
        "external": SoftwareSigner(ec.generate_private_key(ec.SECP384R1()), "external"),
    }
    bridge = Issuer.from_signer(BRIDGE, signers["bridge"])
    tokyo = Issuer.from_signer(TOKYO, signers["tokyo"])
    tokyo_new = Issuer.from_signer(TOKYO, signers["tokyo_new"])
    external = Issuer.from_signer(EXTERNAL, signers["external"])
    server_key = _rsa().public_key()
    holder_key = _rsa().public_key()
    rng = random.Random(4)
    four = random_basic_four(rng, prefecture="東京都", municipality="千代田区", born_before=NOW.date())

    def self_signed(ca: Issuer, at: datetime) -> x509.Certificate:
        return issue(CertKind.SELF_SIGNED, issuer=ca, subject=ca.name,
                     public_key=ca.signer.public_key(), not_before=at, time_guard=NO_NTP)  # fmt: skip

    def cross(by: Issuer, to: Issuer) -> x509.Certificate:
        return issue(CertKind.CROSS, issuer=by, subject=to.name,
                     public_key=to.signer.public_key(), not_before=CROSS_AT, time_guard=NO_NTP)  # fmt: skip

    def subscriber(by: Issuer, at: datetime) -> x509.Certificate:
        return issue(CertKind.SUBSCRIBER, issuer=by, subject=HOLDER, public_key=holder_key,
                     not_before=at, basic_four=four, time_guard=NO_NTP)  # fmt: skip

    def server(kind: CertKind) -> x509.Certificate:
        needs_dns = kind in (CertKind.TLS, CertKind.CVS_SERVER)
        names = ("ocsp.tokyo.example.jp",) if needs_dns else ()
        return issue(kind, issuer=tokyo, subject=SERVER, public_key=server_key, not_before=NOW,
                     dns_names=names, time_guard=NO_NTP)  # fmt: skip

    tokyo_ss = self_signed(tokyo, T0)
    certs = {
        "bridge_ss": self_signed(bridge, T0),
        "tokyo_ss": tokyo_ss,
        "tokyo_new_ss": self_signed(tokyo_new, ROLLOVER),
        "external_ss": self_signed(external, T0),
        "cross_bridge_tokyo": cross(bridge, tokyo),
        "cross_tokyo_bridge": cross(tokyo, bridge),
        "cross_bridge_external": cross(bridge, external),
        "cross_external_bridge": cross(external, bridge),
        # seed 004 7.1(4): from the certified key's generation to the old self-signed's end
        "old_with_new": issue(CertKind.LINK_OLD_WITH_NEW, issuer=tokyo_new, subject=TOKYO,
                              public_key=tokyo.signer.public_key(), not_before=T0,
                              not_after=tokyo_ss.not_valid_after_utc, time_guard=NO_NTP),
        "new_with_old": issue(CertKind.LINK_NEW_WITH_OLD, issuer=tokyo, subject=TOKYO,
                              public_key=tokyo_new.signer.public_key(), not_before=ROLLOVER,
                              not_after=tokyo_ss.not_valid_after_utc, time_guard=NO_NTP),
        "subscriber": subscriber(tokyo, NOW),
        "subscriber_new_key": subscriber(tokyo_new, ROLLOVER + timedelta(days=1)),
        "ocsp": server(CertKind.OCSP_RESPONDER),
        "cvs": server(CertKind.CVS_SERVER),
        "tls": server(CertKind.TLS),
        "receipt": server(CertKind.RECEIPT_SIGNER),
        "ra_terminal": server(CertKind.RA_TERMINAL),
        "verifier": server(CertKind.VERIFIER),
        "tsa": server(CertKind.TSA),
    }  # fmt: skip
    return PKI(bridge, tokyo, tokyo_new, external, certs)


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


# --- the profiles as data -----------------------------------------------------------------


class TestProfileTable:
    def test_every_kind_has_exactly_one_profile(self) -> None:
        assert set(PROFILES) == set(CertKind)
        assert all(p.kind is k for k, p in PROFILES.items())

    @pytest.mark.parametrize(
        ("kind", "years"),
        [(CertKind.SELF_SIGNED, 10), (CertKind.CROSS, 5), (CertKind.OCSP_RESPONDER, 1),
         (CertKind.CVS_SERVER, 1), (CertKind.TLS, 1), (CertKind.SUBSCRIBER, 3),
         (CertKind.LINK_OLD_WITH_NEW, None), (CertKind.LINK_NEW_WITH_OLD, None)],
    )  # fmt: skip
    def test_validity_follows_seed_6_3_2(self, kind: CertKind, years: int | None) -> None:
        assert PROFILES[kind].validity_years == years

    def test_ca_kinds_are_exactly_those_on_the_arl(self) -> None:
        assert {k for k, p in PROFILES.items() if p.ca} == {k for k in CertKind if k.is_ca_certificate}

    def test_profiles_are_immutable(self) -> None:
        with pytest.raises(AttributeError):
            PROFILES[CertKind.TLS].validity_years = 2  # type: ignore[misc]
        with pytest.raises(TypeError):
            PROFILES[CertKind.TLS] = PROFILES[CertKind.CVS_SERVER]  # type: ignore[index]

    def test_profile_rejects_key_cert_sign_without_ca(self) -> None:
        with pytest.raises(InvalidInput, match="keyCertSign"):
            Profile(kind=CertKind.TLS, validity_years=1, ca=False, key_usage=frozenset({"keyCertSign"}))

    def test_profile_rejects_unknown_key_usage_bit(self) -> None:
        with pytest.raises(InvalidInput, match="unknown keyUsage"):
            Profile(kind=CertKind.TLS, validity_years=1, ca=False, key_usage=frozenset({"signing"}))

    def test_default_not_after_on_29_february_falls_back_to_28th(self) -> None:
        leap = datetime(2024, 2, 29, 12, tzinfo=UTC)
        assert PROFILES[CertKind.TLS].default_not_after(leap) == datetime(2025, 2, 28, 12, tzinfo=UTC)
        assert add_years(leap, 4) == datetime(2028, 2, 29, 12, tzinfo=UTC)


# --- extensions as issued -------------------------------------------------------------------


class TestIssuedExtensions:
    def test_self_signed_is_critical_ca_with_aki_equal_to_ski(self, pki: PKI) -> None:
        cert = pki["tokyo_ss"]
        bc = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
        ku = _ext(cert, ExtensionOID.KEY_USAGE)
        assert bc.critical and bc.value.ca
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        ski = _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest
        assert ski == key_identifier(pki.tokyo.signer.public_key())
        assert _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == ski
        assert cert.not_valid_after_utc == datetime(2030, 4, 1, tzinfo=UTC)

    def test_cross_certifies_subject_key_under_issuer_key_with_every_policy_below_it(self, pki: PKI) -> None:
        cert = pki["cross_bridge_tokyo"]
        assert cert.issuer == BRIDGE and cert.subject == TOKYO
        assert _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest == pki.tokyo.key_id
        assert _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == pki.bridge.key_id
        policies = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
        assert [p.policy_identifier for p in policies] == [
            PolicyOID.SUBSCRIBER, PolicyOID.TLS, PolicyOID.CVS_SERVER, PolicyOID.OCSP_RESPONDER]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365 * 5 + 1)

    def test_cross_by_p384_external_ca_is_signed_with_sha384(self, pki: PKI) -> None:
        assert pki["cross_external_bridge"].signature_hash_algorithm.name == "sha384"

    def test_links_keep_the_name_and_swap_the_keys(self, pki: PKI) -> None:
        owm, nwo = pki["old_with_new"], pki["new_with_old"]
        assert owm.subject == owm.issuer == nwo.subject == nwo.issuer == TOKYO
        assert _ext(owm, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest == pki.tokyo.key_id
        assert _ext(owm, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == pki.tokyo_new.key_id
        assert _ext(nwo, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest == pki.tokyo_new.key_id
        assert _ext(nwo, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == pki.tokyo.key_id
        assert owm.not_valid_after_utc == nwo.not_valid_after_utc == pki["tokyo_ss"].not_valid_after_utc

    def test_ocsp_responder_has_ocsp_signing_and_nocheck(self, pki: PKI) -> None:
        cert = pki["ocsp"]
        assert not _ext(cert, ExtensionOID.BASIC_CONSTRAINTS).value.ca
        assert list(_ext(cert, ExtensionOID.EXTENDED_KEY_USAGE).value) == [ExtendedKeyUsageOID.OCSP_SIGNING]
        nocheck = _ext(cert, ExtensionOID.OCSP_NO_CHECK)
        assert not nocheck.critical and nocheck.value.public_bytes() == b"\x05\x00"
        policies = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES).value
        assert [p.policy_identifier for p in policies] == [PolicyOID.OCSP_RESPONDER]

    def test_cvs_server_has_scvp_server_eku_and_dns_name(self, pki: PKI) -> None:
        cert = pki["cvs"]
        assert list(_ext(cert, ExtensionOID.EXTENDED_KEY_USAGE).value) == [ID_KP_SCVP_SERVER]
        san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        assert san.get_values_for_type(x509.DNSName) == ["ocsp.tokyo.example.jp"]

    def test_tls_has_server_and_client_auth(self, pki: PKI) -> None:
        ku = _ext(pki["tls"], ExtensionOID.KEY_USAGE).value
        assert ku.digital_signature and ku.key_encipherment and not ku.content_commitment
        assert list(_ext(pki["tls"], ExtensionOID.EXTENDED_KEY_USAGE).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]  # fmt: skip

    def test_tsa_has_only_time_stamping_in_a_critical_eku(self, pki: PKI) -> None:
        eku = _ext(pki["tsa"], ExtensionOID.EXTENDED_KEY_USAGE)
        assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]  # RFC 3161 2.3
        ku = _ext(pki["tsa"], ExtensionOID.KEY_USAGE).value
        assert ku.digital_signature and ku.content_commitment and not ku.key_encipherment
        assert pki["tsa"].not_valid_after_utc == datetime(2025, 4, 1, tzinfo=UTC)

    def test_subscriber_has_non_repudiation_and_no_basic_constraints(self, pki: PKI) -> None:
        cert = pki["subscriber"]
        ku = _ext(cert, ExtensionOID.KEY_USAGE)
        assert ku.critical and ku.value.digital_signature and ku.value.content_commitment
        assert not ku.value.key_encipherment
        with pytest.raises(x509.ExtensionNotFound):
            _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
        assert cert.not_valid_after_utc == datetime(2027, 4, 1, tzinfo=UTC)


# --- issue() refuses what the profile forbids ---------------------------------------------------


class TestIssueValidation:
    def _tls(self, pki: PKI, **overrides: object) -> x509.Certificate:
        values: dict[str, object] = dict(
            issuer=pki.tokyo, subject=SERVER, public_key=pki.bridge.signer.public_key(),
            not_before=NOW, dns_names=("ocsp.tokyo.example.jp",),
        )  # fmt: skip
        values.update(overrides)
        return issue(CertKind.TLS, **values, time_guard=NO_NTP)  # type: ignore[arg-type]

    def test_naive_not_before_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="naive"):
            self._tls(pki, not_before=datetime(2024, 4, 1))

    def test_other_time_zones_are_converted_to_utc_and_fractions_dropped(self, pki: PKI) -> None:
        jst = datetime(2024, 4, 1, 9, 0, 0, 999_999, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
        cert = self._tls(pki, not_before=jst)
        assert cert.not_valid_before_utc == datetime(2024, 4, 1, 9, tzinfo=UTC)

    def test_link_without_not_after_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="give not_after"):
            issue(CertKind.LINK_NEW_WITH_OLD, issuer=pki.tokyo, subject=TOKYO,
                  public_key=pki.tokyo_new.signer.public_key(), not_before=ROLLOVER, time_guard=NO_NTP)  # fmt: skip

    def test_not_after_beyond_profile_validity_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="at most 1 years"):
            self._tls(pki, not_after=NOW + timedelta(days=400))

    def test_not_after_before_not_before_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="must be after not_before"):
            self._tls(pki, not_after=NOW - timedelta(seconds=1))

    def test_tls_without_dns_names_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="need at least one DNS name"):
            self._tls(pki, dns_names=())

    def test_malformed_dns_name_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="not a DNS host name"):
            self._tls(pki, dns_names=("-bad.example.jp",))

    def test_dns_names_on_ocsp_responder_are_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="carry no dNSName"):
            issue(CertKind.OCSP_RESPONDER, issuer=pki.tokyo, subject=SERVER, not_before=NOW,
                  public_key=pki.bridge.signer.public_key(), dns_names=("a.example.jp",),
                  time_guard=NO_NTP)  # fmt: skip

    def test_subscriber_without_basic_four_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="basic_four"):
            issue(CertKind.SUBSCRIBER, issuer=pki.tokyo, subject=HOLDER, not_before=NOW,
                  public_key=pki.bridge.signer.public_key(), time_guard=NO_NTP)  # fmt: skip

    def test_self_signed_with_a_foreign_key_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="issuer signer's key"):
            issue(CertKind.SELF_SIGNED, issuer=pki.tokyo, subject=TOKYO, not_before=T0,
                  public_key=pki.tokyo_new.signer.public_key(), time_guard=NO_NTP)  # fmt: skip

    def test_cross_to_own_name_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="must differ from the issuer name"):
            issue(CertKind.CROSS, issuer=pki.tokyo, subject=TOKYO, not_before=T0,
                  public_key=pki.tokyo_new.signer.public_key(), time_guard=NO_NTP)  # fmt: skip

    def test_link_signed_with_the_certified_key_is_rejected(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="must differ from the issuer signer's key"):
            issue(CertKind.LINK_OLD_WITH_NEW, issuer=pki.tokyo, subject=TOKYO, not_before=T0,
                  not_after=NOW, public_key=pki.tokyo.signer.public_key(), time_guard=NO_NTP)  # fmt: skip

    @pytest.mark.parametrize("serial", [0, -1, 1 << 159])
    def test_serial_outside_rfc_5280_range_is_rejected(self, pki: PKI, serial: int) -> None:
        with pytest.raises(InvalidInput, match="serial number"):
            self._tls(pki, serial=serial)

    def test_given_serial_is_used(self, pki: PKI) -> None:
        assert self._tls(pki, serial=0x1234).serial_number == 0x1234

    def test_subject_key_id_override_is_only_for_cross(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="subject_key_id"):
            self._tls(pki, subject_key_id=b"\x01" * 20)
        cert = issue(CertKind.CROSS, issuer=pki.bridge, subject=EXTERNAL, not_before=CROSS_AT,
                     public_key=pki.external.signer.public_key(), subject_key_id=b"\x01" * 8,
                     time_guard=NO_NTP)  # fmt: skip
        assert _ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value.digest == b"\x01" * 8

    def test_signature_that_does_not_verify_is_withheld(self, pki: PKI) -> None:
        class FaultySigner(SoftwareSigner):
            def sign(self, data: bytes) -> bytes:
                good = super().sign(data)
                return good[:-1] + bytes([good[-1] ^ 1])

        faulty = Issuer.from_signer(TOKYO, FaultySigner(_rsa(), "faulty"))
        with pytest.raises(TokenError, match="does not verify"):
            self._tls(pki, issuer=faulty)

    def test_issuer_needs_a_name_and_key_id(self, pki: PKI) -> None:
        with pytest.raises(InvalidInput, match="issuer name"):
            Issuer(name=x509.Name([]), signer=pki.tokyo.signer, key_id=b"\x01")
        with pytest.raises(InvalidInput, match="key_id"):
            Issuer(name=TOKYO, signer=pki.tokyo.signer, key_id=b"")


# --- OpenSSL path validation ----------------------------------------------------------------


class TestOpenSSLPaths:
    def test_subscriber_verifies_under_its_regional_ca(self, pki: PKI) -> None:
        openssl_verify(pki["subscriber"], trusted=[pki["tokyo_ss"]], at=VERIFY_AT)

    def test_regional_subscriber_verifies_from_bridge_through_cross(self, pki: PKI) -> None:
        openssl_verify(pki["subscriber"], trusted=[pki["bridge_ss"]],
                       untrusted=[pki["cross_bridge_tokyo"]], at=VERIFY_AT)  # fmt: skip

    def test_subscriber_does_not_verify_from_bridge_without_cross(self, pki: PKI) -> None:
        with pytest.raises(AssertionError, match="unable to get local issuer certificate"):
            openssl_verify(pki["subscriber"], trusted=[pki["bridge_ss"]], at=VERIFY_AT)

    def test_bridge_verifies_from_regional_through_reverse_cross(self, pki: PKI) -> None:
        openssl_verify(pki["cross_bridge_external"], trusted=[pki["tokyo_ss"]],
                       untrusted=[pki["cross_tokyo_bridge"]], at=VERIFY_AT)  # fmt: skip

    def test_regional_subscriber_verifies_from_external_ca_through_two_crosses(self, pki: PKI) -> None:
        openssl_verify(pki["subscriber"], trusted=[pki["external_ss"]],
                       untrusted=[pki["cross_external_bridge"], pki["cross_bridge_tokyo"]],
                       at=VERIFY_AT)  # fmt: skip

    def test_new_key_certificate_verifies_from_old_anchor_through_new_with_old(self, pki: PKI) -> None:
        openssl_verify(pki["subscriber_new_key"], trusted=[pki["tokyo_ss"]],
                       untrusted=[pki["new_with_old"]], at=VERIFY_AT)  # fmt: skip

    def test_old_key_certificate_verifies_from_new_anchor_through_old_with_new(self, pki: PKI) -> None:
        openssl_verify(pki["subscriber"], trusted=[pki["tokyo_new_ss"]],
                       untrusted=[pki["old_with_new"]], at=VERIFY_AT)  # fmt: skip

    def test_new_key_certificate_does_not_verify_from_old_anchor_alone(self, pki: PKI) -> None:
        with pytest.raises(AssertionError, match="openssl verify failed"):
            openssl_verify(pki["subscriber_new_key"], trusted=[pki["tokyo_ss"]], at=VERIFY_AT)

    def test_link_is_not_usable_after_old_self_signed_expires(self, pki: PKI) -> None:
        after = pki["tokyo_ss"].not_valid_after_utc + timedelta(days=1)
        with pytest.raises(AssertionError, match="expired"):
            openssl_verify(pki["new_with_old"], trusted=[pki["tokyo_ss"]], at=after)

    @pytest.mark.parametrize(("name", "purpose"), [("tls", "sslserver"), ("tls", "sslclient"),
                                                   ("ocsp", "ocsphelper"), ("cvs", None),
                                                   ("tsa", "timestampsign")])  # fmt: skip
    def test_server_certificates_verify_for_their_purpose(self, pki: PKI, name: str, purpose: str | None) -> None:
        openssl_verify(pki[name], trusted=[pki["tokyo_ss"]], at=VERIFY_AT, purpose=purpose)


# --- pkilint ------------------------------------------------------------------------------------

# Every certificate of the fixture, with its kind, so the lint list provably covers each kind.
ALL_CERTS = {
    "bridge_ss": CertKind.SELF_SIGNED, "tokyo_ss": CertKind.SELF_SIGNED,
    "tokyo_new_ss": CertKind.SELF_SIGNED, "external_ss": CertKind.SELF_SIGNED,
    "cross_bridge_tokyo": CertKind.CROSS, "cross_tokyo_bridge": CertKind.CROSS,
    "cross_bridge_external": CertKind.CROSS, "cross_external_bridge": CertKind.CROSS,
    "old_with_new": CertKind.LINK_OLD_WITH_NEW, "new_with_old": CertKind.LINK_NEW_WITH_OLD,
    "subscriber": CertKind.SUBSCRIBER, "subscriber_new_key": CertKind.SUBSCRIBER,
    "ocsp": CertKind.OCSP_RESPONDER, "cvs": CertKind.CVS_SERVER, "tls": CertKind.TLS,
    "receipt": CertKind.RECEIPT_SIGNER, "ra_terminal": CertKind.RA_TERMINAL,
    "verifier": CertKind.VERIFIER, "tsa": CertKind.TSA,
}  # fmt: skip

ISSUER_SUBJECT_PAIRS = (
    ("bridge_ss", "bridge_ss"), ("tokyo_ss", "tokyo_ss"), ("external_ss", "external_ss"),
    ("bridge_ss", "cross_bridge_tokyo"), ("cross_bridge_tokyo", "subscriber"),
    ("tokyo_ss", "cross_tokyo_bridge"), ("cross_tokyo_bridge", "cross_bridge_external"),
    ("external_ss", "cross_external_bridge"), ("cross_external_bridge", "cross_bridge_tokyo"),
    ("tokyo_ss", "new_with_old"), ("new_with_old", "subscriber_new_key"),
    ("tokyo_new_ss", "old_with_new"), ("old_with_new", "subscriber"),
    ("tokyo_ss", "subscriber"), ("tokyo_ss", "ocsp"), ("tokyo_ss", "cvs"), ("tokyo_ss", "tls"),
    ("tokyo_ss", "receipt"), ("tokyo_ss", "ra_terminal"), ("tokyo_ss", "verifier"), ("tokyo_ss", "tsa"),
)  # fmt: skip


class TestPkilint:
    @pytest.mark.parametrize("name", list(ALL_CERTS))
    def test_certificate_is_rfc_5280_clean(self, pki: PKI, name: str) -> None:
        assert_pkilint_clean(pkilint_cert(pki[name]), allowed_warnings=ALLOWED_WARNINGS)

    @pytest.mark.parametrize(("issuer", "subject"), ISSUER_SUBJECT_PAIRS)
    def test_issuer_subject_pair_is_clean(self, pki: PKI, issuer: str, subject: str) -> None:
        assert_pkilint_clean(pkilint_chain(pki[issuer], pki[subject]), allowed_warnings=ALLOWED_WARNINGS)

    def test_every_kind_is_linted(self, pki: PKI) -> None:
        assert set(ALL_CERTS.values()) == set(CertKind)
        assert set(ALL_CERTS) == set(pki.certs)

    def test_helper_reports_a_ca_certificate_without_key_usage(self, pki: PKI) -> None:
        from ca.hsm.signer import as_private_key

        signer = pki.tokyo.signer
        broken = (
            x509.CertificateBuilder().issuer_name(TOKYO).subject_name(TOKYO)
            .public_key(signer.public_key()).serial_number(1)
            .not_valid_before(T0).not_valid_after(T0 + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(as_private_key(signer), signer.algorithm.hash_algorithm)
        )  # fmt: skip
        findings = pkilint_cert(broken)
        assert "pkix.ca_certificate_no_ku_extension" in {f.code for f in findings}
        with pytest.raises(AssertionError, match="ca_certificate_no_ku_extension"):
            assert_pkilint_clean(findings)

    def test_helper_reports_a_subject_under_the_wrong_issuer(self, pki: PKI) -> None:
        findings = pkilint_chain(pki["bridge_ss"], pki["subscriber"])
        assert {f.severity for f in findings} & {"ERROR", "FATAL"}
        with pytest.raises(AssertionError, match="pkilint findings"):
            assert_pkilint_clean(findings)
