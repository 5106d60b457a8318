"""`revoca cert import` at national scale, at small size: bundles streamed certificate by
certificate, a journal that lets an interrupted import resume where its last batch committed, and
a per-file error report that says each rejection once, whatever the interruptions."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import ca.importing.importer
from ca.hsm.signer import SoftwareSigner
from ca.importing.importer import ErrorReport, import_certificates
from ca.issuance import Issuer
from ca.storage.engine import session_scope
from ca.storage.models import Certificate
from ca.storage.store import Store
from ca.subscribers import generate_subscribers

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import standard_cast
from support.settings import NOW
from support.tools import revoca

PEM = serialization.Encoding.PEM
DER = serialization.Encoding.DER


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path / "site") as made:
        yield made


def _issuer(made: Installation, name: str) -> Issuer:
    assert made.keys is not None
    with session_scope(made.engine) as s:
        store = Store(s)
        ca = store.ca(name)
        key = store.current_key(ca)
        return Issuer(name=x509.Name.from_rfc4514_string(ca.subject_dn), signer=made.keys.signer(key.key_label),
                      key_id=key.ski)


def _certs(issuer: Issuer, n: int, seed: int) -> list[x509.Certificate]:
    return [c for c, _ in generate_subscribers(issuer, n, rng=random.Random(seed), now=NOW, time_guard=NO_NTP)]


def _subscribers(engine: sa.Engine) -> int:
    with session_scope(engine) as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Certificate)
                        .where(Certificate.kind == "subscriber")) or 0


def _bundles(made: Installation, d: Path) -> tuple[list[x509.Certificate], x509.Certificate]:
    """a.pem: 40 good; b.pem: 40 good with an impostor at [10] and a broken block at [21]; c.der: 20
    good, concatenated DER.  Returns the good certificates and the impostor."""
    tokyo = _issuer(made, "tokyo")
    good = _certs(tokyo, 100, seed=1)
    impostor_key = ec.generate_private_key(ec.SECP256R1())
    impostor = _certs(Issuer(name=tokyo.name, signer=SoftwareSigner(impostor_key), key_id=b"\x01" * 20), 1, 2)[0]
    d.mkdir()
    (d / "a.pem").write_bytes(b"".join(c.public_bytes(PEM) for c in good[:40]))
    b = [c.public_bytes(PEM) for c in good[40:80]]
    b.insert(10, impostor.public_bytes(PEM))
    b.insert(21, b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    (d / "b.pem").write_bytes(b"".join(b))
    (d / "c.der").write_bytes(b"".join(c.public_bytes(DER) for c in good[80:]))
    return good, impostor


def _report_lines(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]
            if line and not line.startswith("#")]


def test_interrupted_import_resumes_after_its_last_batch_and_reports_each_rejection_once(
        installation: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = installation.engine
    d = tmp_path / "issued"
    good, impostor = _bundles(installation, d)
    before = _subscribers(engine)
    monkeypatch.setattr(ca.importing.importer, "BATCH", 16)
    calls: list[int] = []
    insert = Store.insert_certificates

    def power_cut_in_fourth_batch(self: Store, rows: list[dict[str, object]]) -> None:
        calls.append(len(rows))
        if len(calls) == 4:
            raise RuntimeError("power cut during the fourth batch")
        insert(self, rows)

    monkeypatch.setattr(Store, "insert_certificates", power_cut_in_fourth_batch)
    report_file = tmp_path / "errors.tsv"
    with report_file.open("w", encoding="utf-8") as out, pytest.raises(RuntimeError, match="power cut"):
        import_certificates(engine, [d], errors=ErrorReport(out))
    assert _subscribers(engine) == before + 48  # three batches of 16 committed: a.pem whole, b.pem's first 8
    assert _report_lines(report_file) == []  # the impostor's batch never committed: not reported yet

    monkeypatch.setattr(Store, "insert_certificates", insert)
    read: list[int] = []
    with report_file.open("a", encoding="utf-8") as out:
        sink = ErrorReport(out)
        report = import_certificates(engine, [d], errors=sink, resume=True, progress=read.append)
        sink.close()
    assert (report.imported, report.already_present, report.rejected_count) == (52, 0, 2)
    assert (report.files_skipped, report.certificates_skipped) == (1, 40 + 8)
    assert sum(read) == sum(p.stat().st_size for p in d.iterdir())  # progress in bytes, to the end
    assert _subscribers(engine) == before + 100
    b = d / "b.pem"
    impostor_line, broken_line = _report_lines(report_file)
    assert impostor_line == [str(b), "10", format(impostor.serial_number, "x"),
                             f"signature does not verify with the key of {impostor.issuer.rfc4514_string()}"]
    assert broken_line[:3] == [str(b), "21", ""] and broken_line[3].startswith("not a certificate (")
    assert report_file.read_text(encoding="utf-8").count("file\tcertificate\tserial\treason") == 1
    assert f"# {b}\t2" in report_file.read_text(encoding="utf-8")

    # everything done: a third run reads nothing
    again = import_certificates(engine, [d], resume=True)
    assert (again.imported, again.rejected_count, again.files_skipped, again.certificates_skipped) == (0, 0, 3, 102)
    # without --resume, a run reads and checks everything again, and stores nothing twice
    full = import_certificates(engine, [d])
    assert (full.imported, full.already_present, full.rejected_count) == (0, 100, 2)


def test_a_changed_file_is_read_again_from_its_start(installation: Installation, tmp_path: Path) -> None:
    d = tmp_path / "issued"
    good, _ = _bundles(installation, d)
    import_certificates(installation.engine, [d / "a.pem"])
    more = _certs(_issuer(installation, "osaka"), 5, seed=3)
    with (d / "a.pem").open("ab") as f:
        f.write(b"".join(c.public_bytes(PEM) for c in more))
    report = import_certificates(installation.engine, [d / "a.pem"], resume=True)
    assert (report.imported, report.already_present, report.files_skipped) == (5, 40, 0)


def test_cli_writes_the_error_report_and_resumes(installation: Installation, tmp_path: Path) -> None:
    d = tmp_path / "issued"
    _bundles(installation, d)
    env = installation.env()
    cast = standard_cast()
    report_file = tmp_path / "errors.tsv"
    code, out, err = revoca(env, "cert", "import", str(d), "--errors", str(report_file), login=cast)
    assert code == 1, err
    assert out.splitlines()[-1] == "imported 100, already present 0, rejected 2"
    assert [line.split("]: ", 1)[0] + "]" for line in err.splitlines() if line.startswith("rejected:")] == [
        f"rejected: {d / 'b.pem'}[10]", f"rejected: {d / 'b.pem'}[21]"]
    assert len(_report_lines(report_file)) == 2
    code, out, err = revoca(env, "cert", "import", str(d), "--resume", login=cast)
    assert code == 0, err
    assert out.splitlines()[-1] == "imported 0, already present 0, rejected 0, done earlier 102 (3 files finished)"
    code, out, _ = revoca(env, "cert", "import", "--help")
    assert "--resume" in out and "--errors" in out


def test_concatenated_der_and_pem_bundles_stream_one_certificate_at_a_time(installation: Installation,
                                                                          tmp_path: Path) -> None:
    from ca.importing.certificate_files import blocks

    d = tmp_path / "issued"
    good, _ = _bundles(installation, d)
    der_blocks = list(blocks(d / "c.der"))
    assert [b.der for b in der_blocks] == [c.public_bytes(DER) for c in good[80:]]
    assert der_blocks[-1].end == (d / "c.der").stat().st_size and not der_blocks[0].only
    assert [b.index for b in blocks(d / "c.der", skip=15)] == [15, 16, 17, 18, 19]
    one = tmp_path / "one.pem"
    one.write_bytes(good[0].public_bytes(PEM))
    (only,) = blocks(one)
    assert only.only and only.der == good[0].public_bytes(DER)
