"""The revocation history import in process (ca.adoption.history): exports beside the CRL, an entry
whose reason only the export knows, contradictions, and an import stopped half-way and run again.

A CA key made in the installation's SoftHSM2 token stands for the previous system's (test_adopt.py
makes one without revoca); its lists are made with pyca/cryptography signing through it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ca.adoption import history
from ca.adoption.adopt import AdoptionRequest, adopt
from ca.adoption.history import HistorySources, import_history
from ca.enums import CAKind, CAStatus, ListType
from ca.errors import InvalidInput
from ca.hsm.signer import KeyAlgorithm, as_private_key
from ca.issuance import key_identifier
from ca.storage.adoption import AdoptionStore
from ca.storage.engine import session_scope
from ca.storage.models import CertificateAuthority, IssuedCRL, Revocation

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation

NAME = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"), x509.NameAttribute(NameOID.COMMON_NAME, "Prev CA")])
T = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, ceremony_templates: CeremonyTemplates,
                 tmp_path: Path) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, request.param, tmp_path / "install") as made:
        yield made


class Previous:
    """The previous CA's key in the token, its certificate, and lists signed with it; adopted on demand."""

    def __init__(self, installation: Installation, out: Path) -> None:
        assert installation.keys is not None
        self.installation, self.out = installation, out
        self.keys = installation.keys
        public = self.keys.generate("PREV-CA", KeyAlgorithm.P256)
        self.key = as_private_key(self.keys.signer("PREV-CA"))
        now = dt.datetime.now(dt.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(NAME).issuer_name(NAME).public_key(public)
            .serial_number(1).not_valid_before(now - dt.timedelta(days=900))
            .not_valid_after(now + dt.timedelta(days=900))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier(key_identifier(public)), critical=False)
            .sign(self.key, hashes.SHA256()))

    def crl(self, name: str, number: int, entries: list[tuple[int, dt.datetime, x509.ReasonFlags | None]]) -> Path:
        revoked = []
        for serial, when, reason in entries:
            builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
            if reason is not None:
                builder = builder.add_extension(x509.CRLReason(reason), critical=False)
            revoked.append(builder.build())
        der = (x509.CertificateRevocationListBuilder(revoked_certificates=revoked).issuer_name(NAME)
               .last_update(T).next_update(T + dt.timedelta(hours=72))
               .add_extension(x509.CRLNumber(number), critical=False)
               .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        path = self.out / name
        path.write_bytes(der)
        return path

    def adopt(self) -> None:
        with session_scope(self.installation.engine) as session:
            adopt(AdoptionStore(session), self.keys, AdoptionRequest(
                name="prev", kind=CAKind.REGIONAL, certificate=self.certificate, key_label="PREV-CA"),
                now=dt.datetime.now(dt.UTC), actor="test", time_guard=NO_NTP)

    def run(self, sources: HistorySources, **kwargs: object) -> history.HistoryReport:
        return import_history(self.installation.engine, self.installation.data_dir, "prev", sources, actor="test",
                              **kwargs)  # type: ignore[arg-type]

    def stored(self) -> dict[int, tuple[dt.datetime, int, ListType]]:
        with session_scope(self.installation.engine) as s:
            ca_id = s.scalar(sa.select(CertificateAuthority.id).where(CertificateAuthority.name == "prev"))
            rows = s.execute(sa.select(Revocation.serial, Revocation.revocation_time, Revocation.reason,
                                       Revocation.list_type).where(Revocation.issuer_ca_id == ca_id))
            return {serial: (when, reason, kind) for serial, when, reason, kind in rows}

    def status(self) -> CAStatus:
        with session_scope(self.installation.engine) as s:
            status = s.scalar(sa.select(CertificateAuthority.status).where(CertificateAuthority.name == "prev"))
            assert status is not None
            return status


@pytest.fixture
def previous(installation: Installation, tmp_path: Path) -> Previous:
    return Previous(installation, tmp_path)


class Stop(Exception):
    pass


def _stopping_after_one_batch() -> Callable[[str, int], contextlib.AbstractContextManager[Callable[[int], object]]]:
    @contextlib.contextmanager
    def progress(label: str, _length: int) -> Iterator[Callable[[int], object]]:
        def advance(_n: int) -> None:
            if label == "importing":
                raise Stop("the operator's terminal went away")

        yield advance
    return progress


def test_an_interrupted_import_continues_where_it_stopped(previous: Previous) -> None:
    entries = [(0x100 + i, T - dt.timedelta(days=i), x509.ReasonFlags.superseded) for i in range(25)]
    sources = HistorySources(crl=previous.crl("last.crl", 50, entries), no_previous_arl=True)
    previous.adopt()
    with pytest.raises(Stop):
        previous.run(sources, batch=10, progress=_stopping_after_one_batch())
    assert len(previous.stored()) == 10  # the first batch was committed, and is answered by OCSP already
    assert previous.status() is CAStatus.ADOPTING  # no list archived, no number taken yet
    report = previous.run(sources, batch=10)
    assert (report.entries, report.added, report.activated) == (25, 15, True)
    assert previous.stored() == {s: (w, 4, ListType.CRL) for s, w, _ in entries}
    again = previous.run(sources, batch=10)
    assert (again.added, again.activated) == (0, False) and len(previous.stored()) == 25


def test_exports_add_what_left_the_crl_and_give_a_reason_the_crl_lacks(previous: Previous, tmp_path: Path) -> None:
    crl = previous.crl("last.crl", 7, [(0xA, T, x509.ReasonFlags.key_compromise), (0xB, T, None)])
    index = tmp_path / "index.txt"
    index.write_text(f"R\t300101000000Z\t{T:%y%m%d%H%M%S}Z,keyCompromise\t0B\tunknown\t/CN=b\n"
                     f"R\t300101000000Z\t{T:%y%m%d%H%M%S}Z,superseded\t0C\tunknown\t/CN=c\n"
                     "V\t300101000000Z\t\t0D\tunknown\t/CN=valid\n", encoding="utf-8")
    csv = tmp_path / "ca-certificates.csv"
    csv.write_text("serial,revocation_date,reason,list\n0E,2020-01-02T03:04:05Z,cACompromise,arl\n", encoding="utf-8")
    previous.adopt()
    report = previous.run(HistorySources(crl=crl, index=index, csv=csv, no_previous_arl=True))
    assert (report.entries, report.added) == (4, 4)
    assert previous.stored() == {0xA: (T, 1, ListType.CRL), 0xB: (T, 1, ListType.CRL), 0xC: (T, 4, ListType.CRL),
                                 0xE: (dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC), 2, ListType.ARL)}
    with session_scope(previous.installation.engine) as s:
        archived = s.execute(sa.select(IssuedCRL.list_type, IssuedCRL.number, IssuedCRL.entries)).all()
    assert (ListType.CRL, 7, 2) in archived


def test_an_entry_without_reason_and_no_export_for_it_is_refused(previous: Previous) -> None:
    crl = previous.crl("last.crl", 7, [(0xA, T, x509.ReasonFlags.key_compromise), (0xB, T, None)])
    previous.adopt()
    with pytest.raises(InvalidInput, match=r"1 entry refused, nothing imported: last.crl: serial 0xb: no reasonCode"):
        previous.run(HistorySources(crl=crl, no_previous_arl=True))
    assert previous.stored() == {} and previous.status() is CAStatus.ADOPTING


def test_an_export_that_contradicts_the_crl_is_refused(previous: Previous, tmp_path: Path) -> None:
    crl = previous.crl("last.crl", 7, [(0xA, T, x509.ReasonFlags.key_compromise)])
    index = tmp_path / "index.txt"
    index.write_text(f"R\t300101000000Z\t{T:%y%m%d%H%M%S}Z,superseded\t0A\tunknown\t/CN=a\n", encoding="utf-8")
    previous.adopt()
    with pytest.raises(InvalidInput, match=r"index.txt: serial 0xa: last.crl gives another date, reason or list"):
        previous.run(HistorySources(crl=crl, index=index, no_previous_arl=True))
    assert previous.stored() == {}


def test_a_list_given_as_the_other_kind_or_before_adoption_is_refused(previous: Previous) -> None:
    crl = previous.crl("last.crl", 7, [(0xA, T, x509.ReasonFlags.key_compromise)])
    with pytest.raises(Exception, match="no CA named 'prev'"):
        previous.run(HistorySources(crl=crl, no_previous_arl=True))
    previous.adopt()
    with pytest.raises(InvalidInput, match="not both"):
        HistorySources(crl=crl, arl=crl, no_previous_arl=True)
