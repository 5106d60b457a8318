"""Reading a previous system's CRL entry by entry, and its index.txt / CSV exports (ca.adoption).

The CRLs are made by pyca/cryptography with a key in memory; what the streaming reader finds
is compared with what cryptography parses from the same bytes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.adoption import crl_reader
from ca.adoption.crl_reader import CRLFile, Entry, RefusedEntry
from ca.adoption.exports import ExportedEntry, read_csv, read_index
from ca.enums import ListType
from ca.errors import InvalidInput
from ca.revocation.crl_entry import encode_entry

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Previous CA")])
KEY = ec.generate_private_key(ec.SECP256R1())
WHEN = dt.datetime(2019, 4, 1, 9, 30, tzinfo=dt.UTC)


def _crl(entries: list[x509.RevokedCertificate], *, number: int = 7, delta: bool = False,
         key: ec.EllipticCurvePrivateKey = KEY) -> bytes:
    builder = (x509.CertificateRevocationListBuilder(revoked_certificates=entries).issuer_name(NAME)
               .last_update(WHEN).next_update(WHEN + dt.timedelta(hours=72))
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None), critical=False))
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(number - 1), critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _entry(serial: int, reason: x509.ReasonFlags | None = x509.ReasonFlags.superseded,
           when: dt.datetime = WHEN, invalidity: dt.datetime | None = None) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
    if reason is not None:
        builder = builder.add_extension(x509.CRLReason(reason), critical=False)
    if invalidity is not None:
        builder = builder.add_extension(x509.InvalidityDate(invalidity.replace(tzinfo=None)), critical=False)
    return builder.build()


def _write(tmp_path: Path, der: bytes, name: str = "list.crl") -> Path:
    path = tmp_path / name
    path.write_bytes(der)
    return path


class TestCRLFile:
    def test_reads_every_entry_as_cryptography_does_through_a_small_window(self, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(crl_reader, "WINDOW", 97)  # entries straddle the window again and again
        revoked = [_entry(0x1000 + i, x509.ReasonFlags.key_compromise if i % 2 else x509.ReasonFlags.superseded,
                          WHEN + dt.timedelta(minutes=i)) for i in range(300)]
        revoked.append(_entry((1 << 159) - 1, x509.ReasonFlags.cessation_of_operation,
                              dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=dt.UTC)))  # GeneralizedTime, 20-octet serial
        der = _crl(revoked)
        with CRLFile(_write(tmp_path, der)) as crl:
            got = list(crl.entries())
            assert crl.header.number == 7 and crl.header.authority_key_id == b"\x01" * 20
            assert crl.header.this_update == WHEN and not crl.header.delta
        parsed = x509.load_der_x509_crl(der)
        assert [(e.serial, e.revocation_time) for e in got] == [(r.serial_number, r.revocation_date_utc)
                                                                for r in parsed]
        assert all(isinstance(e, Entry) and e.der in der for e in got)
        assert got[0] == Entry(0x1000, WHEN, 4, encode_entry(0x1000, WHEN, 4))

    def test_pem_reads_as_der(self, tmp_path: Path) -> None:
        der = _crl([_entry(5), _entry(6)])
        pem = x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)
        with CRLFile(_write(tmp_path, der)) as a, CRLFile(_write(tmp_path, pem, "list.pem")) as b:
            assert list(a.entries()) == list(b.entries()) and a.sha256() == b.sha256()

    def test_a_list_without_entries(self, tmp_path: Path) -> None:
        with CRLFile(_write(tmp_path, _crl([]))) as crl:
            assert list(crl.entries()) == []
            crl.verify(KEY.public_key(), who="the key")

    def test_signature_verifies_only_under_the_signing_key(self, tmp_path: Path) -> None:
        with CRLFile(_write(tmp_path, _crl([_entry(5)]))) as crl:
            crl.verify(KEY.public_key(), who="the key")
            with pytest.raises(InvalidInput, match="does not verify under the other key"):
                crl.verify(ec.generate_private_key(ec.SECP256R1()).public_key(), who="the other key")

    def test_a_damaged_list_does_not_verify(self, tmp_path: Path) -> None:
        der = bytearray(_crl([_entry(0x55)]))
        der[der.index(bytes.fromhex("020155")) + 2] = 0x56  # the entry's serial, 0x55 -> 0x56
        with CRLFile(_write(tmp_path, bytes(der))) as crl, pytest.raises(InvalidInput, match="does not verify"):
            crl.verify(KEY.public_key(), who="the key")

    def test_delta_indicator_is_seen(self, tmp_path: Path) -> None:
        with CRLFile(_write(tmp_path, _crl([], delta=True))) as crl:
            assert crl.header.delta

    def test_not_a_crl(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidInput, match="not a DER CRL"):
            CRLFile(_write(tmp_path, b"\x30\x03\x02\x01\x01trailing"))


class TestRefusedEntries:
    @pytest.mark.parametrize(("reason", "expected"), [
        (None, "no reasonCode: RFC 5280 5.3.1 reads that as unspecified"),
        (x509.ReasonFlags.unspecified, "reason unspecified (0) is refused"),
        (x509.ReasonFlags.certificate_hold, "reason certificateHold (6) is refused: no suspension"),
        (x509.ReasonFlags.remove_from_crl, "reason removeFromCRL (8) is refused"),
        (x509.ReasonFlags.privilege_withdrawn, "reason privilegeWithdrawn (9) is refused"),
    ])
    def test_reasons_outside_the_five_are_named(self, tmp_path: Path, reason: x509.ReasonFlags | None,
                                                expected: str) -> None:
        with CRLFile(_write(tmp_path, _crl([_entry(1), _entry(0x2A, reason)]))) as crl:
            first, second = crl.entries()
        assert isinstance(first, Entry) and isinstance(second, RefusedEntry)
        assert second.serial == 0x2A and expected in second.line() and second.line().startswith("serial 0x2a: ")

    def test_an_invalidity_date_is_kept_with_the_entry(self, tmp_path: Path) -> None:
        revoked = _entry(9, x509.ReasonFlags.key_compromise, invalidity=WHEN - dt.timedelta(days=2))
        der = _crl([revoked])
        with CRLFile(_write(tmp_path, der)) as crl:
            (entry,) = crl.entries()
        assert isinstance(entry, Entry) and entry.reason == 1 and entry.der != encode_entry(9, WHEN, 1)
        assert entry.der in der  # the previous system's bytes, invalidityDate and all

    def test_a_time_with_fractions_is_refused(self) -> None:
        bad = bytes.fromhex("3019020101") + b"\x18\x11" + b"20190401093000.5Z" + b""
        entry = crl_reader.parse_entry(bytes([0x30, len(bad) - 2]) + bad[2:])
        assert isinstance(entry, RefusedEntry) and "revocationDate" in entry.why


class TestExports:
    def test_index_revocations_with_their_reasons(self, tmp_path: Path) -> None:
        path = tmp_path / "index.txt"
        path.write_text(
            "V\t300101000000Z\t\t10\tunknown\t/CN=valid\n"
            "R\t300101000000Z\t190401093000Z,keyCompromise\t11\tunknown\t/CN=a\n"
            "R\t300101000000Z\t190401093000Z,CACompromise\t12\tunknown\t/CN=b\n"
            "R\t300101000000Z\t190401093000Z\t13\tunknown\t/CN=c\n"
            "R\t300101000000Z\t190401093000Z,certificateHold\t14\tunknown\t/CN=d\n"
            "R\t300101000000Z\t190401093000Z,keyTime,190301000000Z\t15\tunknown\t/CN=e\n"
            "E\t190101000000Z\t\t16\tunknown\t/CN=expired\n", encoding="utf-8")
        got = list(read_index(path))
        assert got[0] == ExportedEntry(Entry(0x11, WHEN, 1, encode_entry(0x11, WHEN, 1)), ListType.CRL)
        assert isinstance(got[1], ExportedEntry) and got[1].entry.reason == 2
        refused = [g for g in got if isinstance(g, RefusedEntry)]
        assert [(r.serial, r.where) for r in refused] == [(0x13, "line 4"), (0x14, "line 5"), (0x15, "line 6")]
        assert "unspecified" in refused[0].why and "no suspension" in refused[1].why and "keyTime" in refused[2].why
        assert len(got) == 5

    def test_csv_columns_in_any_order(self, tmp_path: Path) -> None:
        path = tmp_path / "export.csv"
        path.write_text("reason,serial,revocation_date,list\n"
                        "superseded,0x1f,2019-04-01T18:30:00+09:00,crl\n"
                        "2,20,2019-04-01T09:30:00Z,arl\n"
                        "6,21,2019-04-01T09:30:00Z,\n"
                        "superseded,22,2019-04-01T09:30:00,crl\n", encoding="utf-8")
        got = list(read_csv(path))
        assert got[0] == ExportedEntry(Entry(0x1F, WHEN, 4, encode_entry(0x1F, WHEN, 4)), ListType.CRL)
        assert isinstance(got[1], ExportedEntry) and got[1].list_type is ListType.ARL and got[1].entry.reason == 2
        assert isinstance(got[2], RefusedEntry) and "certificateHold" in got[2].why and got[2].where == "line 4"
        assert isinstance(got[3], RefusedEntry) and "offset" in got[3].why

    def test_csv_without_the_columns_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "export.csv"
        path.write_text("serial,date\n1,2019\n", encoding="utf-8")
        with pytest.raises(InvalidInput, match="lacks column"):
            list(read_csv(path))
