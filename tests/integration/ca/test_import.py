"""Bulk import of subscriber certificates (ca.importing.importer), on SQLite and PostgreSQL.

The certificates are issued here by tokyo's real key in the SoftHSM2 token (the same key the
ceremony made), so a signature check that passes proves the importer found the right key.
Every bad input must cost one line naming its file, never the rest of the import.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import ca.importing.importer
from ca import ceremony
from ca.basic_four import BasicFour
from ca.config import Settings
from ca.enums import CertKind
from ca.hsm import shares, token_for
from ca.hsm.signer import SoftwareSigner
from ca.importing.importer import ImportReport, import_certificates
from ca.issuance import Issuer, issue
from ca.storage.engine import session_scope
from ca.storage.store import Store
from ca.subscribers import generate_subscribers, key_pool

from support.clock import NO_NTP
from support.officers import standard_cast
from support.settings import NOW
from support.tools import revoca_run

TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"


@pytest.fixture
def tokyo(settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult) -> Iterator[Issuer]:
    """tokyo's current key, from the token opened with two of the ceremony's shares."""
    secret = shares.combine([s for _, s in initialized.shares[:2]])
    session = token_for(settings).open(shares.user_pin(secret))
    with session_scope(engine) as s:
        store = Store(s)
        ca = store.ca("tokyo")
        key = store.current_key(ca)
        label, ski, dn = key.key_label, key.ski, ca.subject_dn
    assert label is not None
    try:
        yield Issuer(name=x509.Name.from_rfc4514_string(dn), signer=session.signer(label), key_id=ski)
    finally:
        session.close()


def subscribers(issuer: Issuer, count: int, seed: int) -> list[x509.Certificate]:
    return [c for c, _ in generate_subscribers(issuer, count, key_bits=1024, rng=random.Random(seed), now=NOW,
                                               time_guard=NO_NTP)]


def with_serial(issuer: Issuer, serial: int, template: x509.Certificate, cn: str = "REISSUED") -> x509.Certificate:
    """Another subscriber certificate (other subject and key) that carries `serial`."""
    subject = x509.Name([*[a for a in template.subject if a.oid != x509.NameOID.COMMON_NAME],
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])
    return issue(CertKind.SUBSCRIBER, issuer=issuer, subject=subject, public_key=key_pool(1024)[1].public_key(),
                 not_before=NOW, serial=serial, basic_four=BasicFour.from_certificate(template), time_guard=NO_NTP)


def software_issuer(dn: str) -> Issuer:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    return Issuer.from_signer(x509.Name.from_rfc4514_string(dn), signer)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_der(path: Path, cert: x509.Certificate) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return path


def stored(engine: sa.Engine, ca_name: str = "tokyo") -> dict[int, bytes]:
    """serial -> DER of every subscriber certificate stored for the CA."""
    with session_scope(engine) as s:
        store = Store(s)
        return {c.serial: c.der for c in store.certificates(issuer=store.ca(ca_name), kinds=[CertKind.SUBSCRIBER])}


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# --- the good path -------------------------------------------------------------------------------


def test_bulk_import_reads_pem_der_bundles_and_nested_directories(tmp_path: Path, engine: sa.Engine,
                                                                  tokyo: Issuer) -> None:
    before = stored(engine)
    certs = subscribers(tokyo, 300, seed=1)
    root = tmp_path / "cards"
    for i, cert in enumerate(certs[:140]):  # single PEM files, nested three deep, two suffixes
        write_pem(root / "pem" / f"office{i % 4}" / "batch" / f"{i:03}.{'pem' if i % 2 else 'crt'}", cert)
    for i, cert in enumerate(certs[140:250]):  # DER files, two suffixes, upper case too
        write_der(root / "der" / f"{i:03}.{('der', 'cer', 'DER')[i % 3]}", cert)
    write_pem(root / "bundle.pem", *certs[250:300])  # one PEM with 50 certificates
    (root / "README.txt").write_text("not a certificate, and not looked at")
    (root / "pem" / "office0" / "notes").write_bytes(os.urandom(64))

    report = import_certificates(engine, [root], now=NOW)

    assert report == ImportReport(imported=300, already_present=0, rejected=[])
    after = stored(engine)
    assert set(after) - set(before) == {c.serial_number for c in certs}
    assert all(after[c.serial_number] == der(c) for c in certs)
    with session_scope(engine) as s:
        store = Store(s)
        tokyo_ca = store.ca("tokyo")
        row = store.certificate(tokyo_ca, certs[0].serial_number)
        assert (row.kind, row.issuer_key_id, row.subject_ca_id) == (CertKind.SUBSCRIBER,
                                                                     store.current_key(tokyo_ca).id, None)
        assert (row.not_before, row.not_after) == (certs[0].not_valid_before_utc, certs[0].not_valid_after_utc)
        assert row.subject_dn == certs[0].subject.rfc4514_string()
        listed = store.certificates(issuer=tokyo_ca, kinds=[CertKind.SUBSCRIBER], limit=1000)
        assert {c.serial for c in listed} == set(after)


def test_import_run_again_imports_nothing_and_reports_all_already_present(tmp_path: Path, engine: sa.Engine,
                                                                          tokyo: Issuer) -> None:
    certs = subscribers(tokyo, 40, seed=2)
    for i, cert in enumerate(certs[:30]):
        write_pem(tmp_path / "in" / f"{i:02}.pem", cert)
    write_pem(tmp_path / "in" / "bundle.pem", *certs[30:])
    first = import_certificates(engine, [tmp_path / "in"])
    assert first == ImportReport(imported=40, already_present=0, rejected=[])
    count = len(stored(engine))

    again = import_certificates(engine, [tmp_path / "in"])
    assert again == ImportReport(imported=0, already_present=40, rejected=[])
    # The same certificate twice in one run, once as DER: present once, no serial clash.
    write_der(tmp_path / "copy.der", certs[0])
    once_more = import_certificates(engine, [tmp_path / "in" / "00.pem", tmp_path / "copy.der"])
    assert once_more == ImportReport(imported=0, already_present=2, rejected=[])
    assert len(stored(engine)) == count


# --- rejections ----------------------------------------------------------------------------------


def test_certificate_signed_by_an_unknown_key_under_tokyos_name_is_rejected(tmp_path: Path, engine: sa.Engine,
                                                                           tokyo: Issuer) -> None:
    impostor = software_issuer(TOKYO_DN)  # same issuer name, another key
    assert impostor.name == tokyo.name and impostor.key_id != tokyo.key_id
    forged_aki = dataclasses.replace(impostor, key_id=tokyo.key_id)  # even claims tokyo's key identifier
    good = subscribers(tokyo, 20, seed=3)
    for i, cert in enumerate(good):
        write_pem(tmp_path / "in" / f"good{i:02}.pem", cert)
    bad_name = write_pem(tmp_path / "in" / "impostor.pem", *subscribers(impostor, 1, seed=4))
    (forged,) = subscribers(forged_aki, 1, seed=5)
    bad_aki = write_der(tmp_path / "in" / "forged-aki.der", forged)

    report = import_certificates(engine, [tmp_path / "in"])

    assert report.imported == 20 and report.already_present == 0
    assert sorted(report.rejected) == sorted([
        f"{bad_name}: signature does not verify with the key of {TOKYO_DN}",
        f"{bad_aki}: signature does not verify with the key of {TOKYO_DN}",
    ])
    assert forged.serial_number not in stored(engine)


def test_certificate_from_a_foreign_issuer_is_rejected_as_not_a_revoca_ca(tmp_path: Path, engine: sa.Engine,
                                                                         tokyo: Issuer) -> None:
    foreign_dn = "CN=Governor of Atlantis,OU=Atlantis,OU=Prefectural CA,O=JPKI,C=JP"
    foreign = subscribers(software_issuer(foreign_dn), 3, seed=6)
    good = subscribers(tokyo, 5, seed=7)
    bundle = write_pem(tmp_path / "mixed.pem", good[0], foreign[0], good[1])
    single = write_der(tmp_path / "foreign.der", foreign[1])
    rest = [write_pem(tmp_path / f"good{i}.pem", c) for i, c in enumerate(good[2:])]

    report = import_certificates(engine, [bundle, single, *rest])

    assert (report.imported, report.already_present) == (5, 0)
    assert report.rejected == [f"{bundle}[1]: issuer {foreign_dn} is not a revoca CA",
                               f"{single}: issuer {foreign_dn} is not a revoca CA"]
    assert {c.serial_number for c in good} <= set(stored(engine))


def test_malformed_files_are_rejected_as_not_certificate_files_and_the_rest_imports(
        tmp_path: Path, engine: sa.Engine, tokyo: Issuer) -> None:
    good = subscribers(tokyo, 6, seed=8)
    d = tmp_path / "in"
    for i, cert in enumerate(good):
        write_pem(d / f"{i}-good.pem", cert)
    whole = good[0].public_bytes(serialization.Encoding.PEM)
    bad = {
        "random.der": os.urandom(512),
        "truncated.pem": whole[: len(whole) // 2],
        "empty.crt": b"",
        "truncated-der.cer": der(good[1])[:-40],
        "key-only.pem": ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }
    for name, data in bad.items():
        (d / name).write_bytes(data)

    report = import_certificates(engine, [d])

    assert (report.imported, report.already_present) == (6, 0)
    assert len(report.rejected) == len(bad)
    for name in bad:
        (line,) = [r for r in report.rejected if r.startswith(f"{d / name}: ")]
        assert line.startswith(f"{d / name}: not a certificate file ("), line
        assert "\n" not in line


def test_different_certificate_reusing_a_serial_is_rejected_naming_the_serial(tmp_path: Path, engine: sa.Engine,
                                                                             tokyo: Issuer) -> None:
    first, second, third = subscribers(tokyo, 3, seed=9)
    assert import_certificates(engine, [write_pem(tmp_path / "first.pem", first)]).imported == 1
    with session_scope(engine) as s:
        store = Store(s)
        (responder,) = store.certificates(issuer=store.ca("tokyo"), kinds=[CertKind.OCSP_RESPONDER])
        responder_serial = responder.serial

    clash_stored = write_pem(tmp_path / "a-clash.pem", with_serial(tokyo, first.serial_number, first))
    clash_responder = write_pem(tmp_path / "b-clash.pem", with_serial(tokyo, responder_serial, second))
    # Two new certificates with one serial in the same run: the first one wins.
    twin_a = write_pem(tmp_path / "c-twin.pem", second)
    twin_b = write_pem(tmp_path / "d-twin.pem", with_serial(tokyo, second.serial_number, third))
    ok = write_pem(tmp_path / "e-ok.pem", third)

    report = import_certificates(engine, [clash_stored, clash_responder, twin_a, twin_b, ok])

    assert (report.imported, report.already_present) == (2, 0)
    suffix = "is already used by another certificate of the same CA"
    assert report.rejected == [f"{clash_stored}: serial {first.serial_number:x} {suffix}",
                               f"{clash_responder}: serial {responder_serial:x} {suffix}",
                               f"{twin_b}: serial {second.serial_number:x} {suffix}"]
    now = stored(engine)
    assert now[first.serial_number] == der(first) and now[second.serial_number] == der(second)


def test_import_commits_batch_by_batch(tmp_path: Path, engine: sa.Engine, tokyo: Issuer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ca.importing.importer, "BATCH", 7)
    certs = subscribers(tokyo, 30, seed=10)
    d = tmp_path / "in"
    for i, cert in enumerate(certs):
        write_pem(d / f"{i:02}.pem", cert)
    write_pem(d / "50-copy-of-00.pem", certs[0])  # already present by then (an earlier batch)
    write_pem(d / "51-clash.pem", with_serial(tokyo, certs[3].serial_number, certs[4]))
    before = len(stored(engine))

    calls: list[int] = []
    insert = Store.insert_certificates

    def failing_third_batch(self: Store, rows: list[dict[str, object]]) -> None:
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("power cut during the third batch")
        insert(self, rows)

    monkeypatch.setattr(Store, "insert_certificates", failing_third_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        import_certificates(engine, [d])
    assert len(stored(engine)) == before + 14  # two batches committed, the third rolled back

    calls.clear()
    monkeypatch.setattr(Store, "insert_certificates", lambda self, rows: (calls.append(len(rows)), insert(self, rows)))
    report = import_certificates(engine, [d])
    assert report.imported == 16 and report.already_present == 15
    assert report.rejected == [f"{d / '51-clash.pem'}: serial {certs[3].serial_number:x} is already used by "
                               "another certificate of the same CA"]
    assert len(calls) == 5 and max(calls) <= 7  # 32 certificates in batches of 7
    assert set(stored(engine)) >= {c.serial_number for c in certs}


# --- the CLI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cli_cert_import_lists_rejections_and_exits_1_then_0_when_all_imported(
        tmp_path: Path, settings: Settings, tokyo: Issuer) -> None:
    d = tmp_path / "in"
    good = subscribers(tokyo, 30, seed=11)
    for i, cert in enumerate(good[:20]):
        write_der(d / "der" / f"{i:02}.der", cert)
    write_pem(d / "bundle.pem", *good[20:])
    impostor = write_pem(d / "impostor.pem", *subscribers(software_issuer(TOKYO_DN), 1, seed=12))
    garbage = d / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(settings.data_dir), REVOCA_DATABASE_URL=settings.db_url,
               REVOCA_HSM_TOKEN_LABEL=settings.hsm.token_label)

    def revoca(*args: str) -> subprocess.CompletedProcess[str]:
        argv, stdin = standard_cast().for_command(args).into(args)  # an operator logs in (support.officers)
        return revoca_run(env, *argv, stdin=stdin, cwd=tmp_path)

    first = revoca("cert", "import", str(d))
    assert first.returncode == 1, first.stderr
    assert first.stdout.splitlines() == ["imported 30, already present 0, rejected 2"]
    garbage_line, impostor_line = sorted(first.stderr.splitlines())  # one line per rejection, nothing else
    assert garbage_line.startswith(f"rejected: {garbage}: not a certificate file ("), garbage_line
    assert impostor_line == f"rejected: {impostor}: signature does not verify with the key of {TOKYO_DN}"

    garbage.unlink()
    impostor.unlink()
    again = revoca("cert", "import", str(d / "der"), str(d / "bundle.pem"))
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.splitlines() == ["imported 0, already present 30, rejected 0"]

    listed = revoca("cert", "list", "--ca", "tokyo", "--kind", "subscriber", "--limit", "1000", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert {format(c.serial_number, "x") for c in good} <= {r["serial"] for r in rows}
    assert {r["issuer"] for r in rows} == {"tokyo"}


# --- bugs ----------------------------------------------------------------------------------------------


def _resigned(issuer: Issuer, template: x509.Certificate, serial: int) -> x509.Certificate:
    """`template` with another serial, signed again by the issuer's key (cryptography refuses such serials)."""
    parsed = asn1_x509.Certificate.load(der(template))
    tbs = parsed["tbs_certificate"].copy()
    tbs["serial_number"] = serial
    tbs_der = tbs.dump(force=True)
    cert = asn1_x509.Certificate({"tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
                                  "signature_algorithm": parsed["signature_algorithm"],
                                  "signature_value": issuer.signer.sign(tbs_der)})
    loaded = x509.load_der_x509_certificate(cert.dump())
    assert loaded.serial_number == serial
    return loaded


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_negative_serial_is_rejected_and_the_rest_imports(tmp_path: Path, engine: sa.Engine, tokyo: Issuer) -> None:
    good = subscribers(tokyo, 5, seed=13)
    for i, cert in enumerate(good):
        write_pem(tmp_path / f"{i}.pem", cert)
    negative = write_der(tmp_path / "negative.der", _resigned(tokyo, good[0], -12345))
    report = import_certificates(engine, [tmp_path])
    assert report.imported == 5
    (line,) = report.rejected
    assert line.startswith(f"{negative}: ") and "serial" in line


def test_serial_longer_than_the_column_is_rejected_and_the_rest_imports(tmp_path: Path, engine: sa.Engine,
                                                                        tokyo: Issuer) -> None:
    good = subscribers(tokyo, 5, seed=14)
    for i, cert in enumerate(good):
        write_pem(tmp_path / f"{i}.pem", cert)
    huge = write_der(tmp_path / "huge.der", _resigned(tokyo, good[0], 1 << 200))
    report = import_certificates(engine, [tmp_path])
    assert report.imported == 5
    (line,) = report.rejected
    assert line.startswith(f"{huge}: ") and "serial" in line


def test_ca_certificate_is_not_imported_as_a_subscriber(tmp_path: Path, engine: sa.Engine, tokyo: Issuer) -> None:
    other = software_issuer("CN=Some Other CA,O=Elsewhere,C=JP")
    cross = issue(CertKind.CROSS, issuer=tokyo, subject=other.name,
                  public_key=other.signer.public_key(), not_before=NOW, time_guard=NO_NTP)  # type: ignore[arg-type]
    report = import_certificates(engine, [write_pem(tmp_path / "cross.pem", cross)])
    assert cross.serial_number not in stored(engine)
    assert report.imported == 0 and len(report.rejected) == 1


def test_certificate_with_another_issuer_name_but_tokyos_key_is_rejected(tmp_path: Path, engine: sa.Engine,
                                                                          tokyo: Issuer) -> None:
    renamed = dataclasses.replace(tokyo, name=x509.Name.from_rfc4514_string("CN=Not Tokyo,O=JPKI,C=JP"))
    (cert,) = subscribers(renamed, 1, seed=15)
    report = import_certificates(engine, [write_pem(tmp_path / "renamed.pem", cert)])
    assert cert.serial_number not in stored(engine)
    assert report.imported == 0 and len(report.rejected) == 1
