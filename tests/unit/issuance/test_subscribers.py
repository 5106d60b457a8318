"""Generated subscriber certificates and the basic four encoding, read back by other decoders.

asn1crypto and OpenSSL decode the otherName entries, so a kanji round trip proves more than
cryptography reading its own output.
"""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, date, datetime

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ca.basic_four import BasicFour, BasicFourOID
from ca.config import regional_ca
from ca.enums import CertKind
from ca.errors import InvalidInput
from ca.hsm.signer import SoftwareSigner
from ca.issuance import Issuer, issue
from ca.subscribers import KEY_POOL_SIZE, generate_subscribers, key_pool

from support.clock import NO_NTP
from support.tools import assert_pkilint_clean, der, openssl_verify, pem, pkilint_cert, pkilint_chain

NOW = datetime(2024, 4, 1, tzinfo=UTC)
TOKYO = x509.Name.from_rfc4514_string(regional_ca("Tokyo").subject)
HOLDER = x509.Name.from_rfc4514_string("CN=0123456789ABCDEFGHIJ,L=Chiyoda-ku,ST=Tokyo,C=JP")

# Non-BMP 𠮷 (four UTF-8 octets), the ideographic space, and both substitute notes.
FOUR = BasicFour(
    name="𠮷田\u3000花子",
    name_substitute_note="代替文字使用",
    gender="2",
    date_of_birth=date(1985, 2, 28),
    address="東京都千代田区霞が関二丁目１番２号",
    address_substitute_note="住所に代替文字使用",
)


@pytest.fixture(scope="module")
def tokyo() -> Issuer:
    return Issuer.from_signer(TOKYO, SoftwareSigner(rsa.generate_private_key(65537, 2048), "tokyo"))


@pytest.fixture(scope="module")
def tokyo_ss(tokyo: Issuer) -> x509.Certificate:
    return issue(CertKind.SELF_SIGNED, issuer=tokyo, subject=TOKYO,
                 public_key=tokyo.signer.public_key(), not_before=datetime(2020, 4, 1, tzinfo=UTC),
                 time_guard=NO_NTP)  # fmt: skip


@pytest.fixture(scope="module")
def holder_cert(tokyo: Issuer) -> x509.Certificate:
    return issue(CertKind.SUBSCRIBER, issuer=tokyo, subject=HOLDER, not_before=NOW,
                 public_key=key_pool(1024)[0].public_key(), basic_four=FOUR, time_guard=NO_NTP)  # fmt: skip


def _other_names_by_asn1crypto(cert: x509.Certificate) -> dict[str, str]:
    parsed = asn1_x509.Certificate.load(der(cert))
    out = {}
    for general_name in parsed.subject_alt_name_value:
        assert general_name.name == "other_name"
        out[general_name.chosen["type_id"].dotted] = general_name.chosen["value"].native
    return out


class TestBasicFourEncoding:
    def test_all_six_otherName_oids_are_present_with_utf8_values(self, holder_cert: x509.Certificate) -> None:
        assert _other_names_by_asn1crypto(holder_cert) == {
            "1.2.392.200149.8.5.5.1": "𠮷田\u3000花子",
            "1.2.392.200149.8.5.5.2": "代替文字使用",
            "1.2.392.200149.8.5.5.3": "2",
            "1.2.392.200149.8.5.5.4": "19850228",
            "1.2.392.200149.8.5.5.5": "東京都千代田区霞が関二丁目１番２号",
            "1.2.392.200149.8.5.5.6": "住所に代替文字使用",
        }

    def test_values_are_utf8string_not_another_string_type(self, holder_cert: x509.Certificate) -> None:
        san = holder_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {other.value[0] for other in san.get_values_for_type(x509.OtherName)} == {0x0C}

    def test_kanji_round_trips_through_the_certificate(self, holder_cert: x509.Certificate) -> None:
        assert BasicFour.from_certificate(holder_cert) == FOUR

    def test_openssl_prints_the_kanji_name(self, holder_cert: x509.Certificate) -> None:
        text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-nameopt", "utf8"],
                              input=pem(holder_cert), capture_output=True, check=True).stdout.decode()  # fmt: skip
        assert "1.2.392.200149.8.5.5.1::𠮷田\u3000花子" in text

    def test_substitute_notes_are_omitted_when_absent(self) -> None:
        plain = BasicFour(name="山田\u3000太郎", gender="1", date_of_birth=date(1970, 1, 1), address="東京都新宿区")
        assert [n.type_id for n in plain.general_names()] == [
            BasicFourOID.NAME, BasicFourOID.GENDER, BasicFourOID.DATE_OF_BIRTH, BasicFourOID.ADDRESS]  # fmt: skip

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [("gender", "M", "gender"), ("name", "", "name"), ("address", "東京都\n新宿区", "address"),
         ("date_of_birth", datetime(1970, 1, 1), "date_of_birth"), ("name_substitute_note", " ", "note")],
    )  # fmt: skip
    def test_invalid_values_are_rejected(self, field: str, value: object, message: str) -> None:
        values = {"name": "山田\u3000太郎", "gender": "1", "date_of_birth": date(1970, 1, 1), "address": "東京都"}
        values[field] = value
        with pytest.raises(InvalidInput, match=message):
            BasicFour(**values)  # type: ignore[arg-type]

    def test_certificate_without_basic_four_is_reported(self, tokyo_ss: x509.Certificate) -> None:
        with pytest.raises(InvalidInput, match="no subjectAltName"):
            BasicFour.from_certificate(tokyo_ss)


class TestGeneratedSubscribers:
    @pytest.mark.parametrize("bits", [1024, 2048])
    def test_keys_have_the_requested_size(self, tokyo: Issuer, bits: int) -> None:
        pairs = list(generate_subscribers(tokyo, 3, key_bits=bits, rng=random.Random(1), now=NOW, time_guard=NO_NTP))
        assert [key.key_size for _, key in pairs] == [bits] * 3
        assert all(cert.public_key() == key.public_key() for cert, key in pairs)

    def test_other_key_sizes_are_rejected(self, tokyo: Issuer) -> None:
        with pytest.raises(InvalidInput, match="1024 or 2048"):
            next(generate_subscribers(tokyo, 1, key_bits=4096, time_guard=NO_NTP))

    def test_keys_come_from_a_small_shared_pool(self, tokyo: Issuer) -> None:
        keys = {id(key) for _, key in generate_subscribers(tokyo, 3 * KEY_POOL_SIZE, now=NOW, time_guard=NO_NTP)}
        assert keys == {id(key) for key in key_pool(2048)}

    def test_same_seed_gives_same_serials_subjects_and_holders(self, tokyo: Issuer) -> None:
        def run() -> list[tuple[int, x509.Name, BasicFour]]:
            return [(c.serial_number, c.subject, BasicFour.from_certificate(c))
                    for c, _ in generate_subscribers(tokyo, 20, rng=random.Random(7), now=NOW,
                                                     time_guard=NO_NTP)]  # fmt: skip

        assert run() == run()

    def test_serials_and_subjects_are_unique(self, tokyo: Issuer) -> None:
        certs = [c for c, _ in generate_subscribers(tokyo, 500, rng=random.Random(3), now=NOW, time_guard=NO_NTP)]
        assert len({c.serial_number for c in certs}) == len({c.subject for c in certs}) == 500

    def test_subject_is_a_20_character_id_in_a_japanese_locality(self, tokyo: Issuer) -> None:
        cert, _ = next(generate_subscribers(tokyo, 1, rng=random.Random(5), now=NOW, time_guard=NO_NTP))
        attrs = {a.oid: a.value for a in cert.subject}
        assert attrs[NameOID.COUNTRY_NAME] == "JP"
        assert attrs[NameOID.STATE_OR_PROVINCE_NAME] and attrs[NameOID.LOCALITY_NAME]
        assert len(attrs[NameOID.COMMON_NAME]) == 20 and attrs[NameOID.COMMON_NAME].isalnum()

    def test_holder_address_is_in_the_subject_prefecture(self, tokyo: Issuer) -> None:
        kanji = {"Hokkaido": "北海道", "Tokyo": "東京都", "Osaka": "大阪府", "Kyoto": "京都府"}
        for cert, _ in generate_subscribers(tokyo, 40, rng=random.Random(9), now=NOW, time_guard=NO_NTP):
            prefecture = cert.subject.get_attributes_for_oid(NameOID.STATE_OR_PROVINCE_NAME)[0].value
            if prefecture in kanji:
                assert BasicFour.from_certificate(cert).address.startswith(kanji[prefecture])

    def test_card_text_uses_only_jis_x_0208_and_0212_with_a_note_for_substitutes(self, tokyo: Issuer) -> None:
        """Seed 004 3.1.7-3.1.8; Python's euc_jp codec is exactly JIS X 0201/0208/0212."""
        notes = set()
        for cert, _ in generate_subscribers(tokyo, 200, rng=random.Random(11), now=NOW, time_guard=NO_NTP):
            four = BasicFour.from_certificate(cert)
            (four.name + four.address).encode("euc_jp")
            notes.add(four.name_substitute_note)
        assert notes == {None, "代替文字使用"}

    def test_validity_is_three_years_from_now(self, tokyo: Issuer) -> None:
        cert, _ = next(generate_subscribers(tokyo, 1, now=NOW, time_guard=NO_NTP))
        assert cert.not_valid_before_utc == NOW
        assert cert.not_valid_after_utc == datetime(2027, 4, 1, tzinfo=UTC)

    def test_negative_count_is_rejected(self, tokyo: Issuer) -> None:
        with pytest.raises(InvalidInput, match="count"):
            next(generate_subscribers(tokyo, -1, time_guard=NO_NTP))


class TestIndependentChecks:
    @pytest.mark.parametrize("bits", [1024, 2048])
    def test_openssl_verifies_generated_subscribers(self, tokyo: Issuer, tokyo_ss: x509.Certificate, bits: int) -> None:
        for cert, _ in generate_subscribers(tokyo, 2, key_bits=bits, rng=random.Random(bits), now=NOW,
                                            time_guard=NO_NTP):
            openssl_verify(cert, trusted=[tokyo_ss], at=NOW)

    def test_pkilint_finds_holder_certificate_clean(
        self, tokyo_ss: x509.Certificate, holder_cert: x509.Certificate
    ) -> None:
        assert_pkilint_clean(pkilint_cert(holder_cert))
        assert_pkilint_clean(pkilint_chain(tokyo_ss, holder_cert))

    def test_pkilint_finds_generated_subscribers_clean(self, tokyo: Issuer, tokyo_ss: x509.Certificate) -> None:
        for cert, _ in generate_subscribers(tokyo, 2, key_bits=1024, rng=random.Random(2), now=NOW, time_guard=NO_NTP):
            assert_pkilint_clean(pkilint_cert(cert))
            assert_pkilint_clean(pkilint_chain(tokyo_ss, cert))
