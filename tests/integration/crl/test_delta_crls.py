"""Delta CRLs (RFC 5280 5.2.4, 5.2.6) with keys in a real SoftHSM2 token, on SQLite and
PostgreSQL: what a base CRL and its delta say, checked by `openssl verify -crl_check
-use_deltas`, `openssl crl -text`, pyhanko-certvalidator, pkilint and cryptography's parser;
numbering from the CRL's sequence; rows that commit late; and when the scheduler issues one.

One demo installation per database serves the module's list tests, each on its own CA
(tokyo: verification; osaka: numbering and contents; hokkaido: late rows); the scheduler
tests get an installation of their own, since the scheduler issues for every CA.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.config import ConfigError, CRLConfig
from ca.crl.freshest import DeltaPolicy, ca_entry_dn
from ca.crl.issue import IssuedCRLInfo, issue_list
from ca.enums import CertKind, ListType, PublicationItem
from ca.errors import InvalidInput
from ca.revocation.crl_entry import encode_entry
from ca.scheduler import Scheduler
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, Publication, Revocation
from ca.storage.store import Store

from support.clock import NO_NTP
from support.crl_tools import crl_pem, openssl_crl_verify, pkilint_crl
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import NOW
from support.tools import assert_pkilint_clean, pem

BASE_DN = "o=JPKI,c=JP"
POLICY = DeltaPolicy(BASE_DN, "ldap.example.jp:389")
T1 = NOW + dt.timedelta(hours=1)
T2 = T1 + dt.timedelta(minutes=30)
AT = T2 + dt.timedelta(minutes=5)  # inside the base (72 h) and the delta (180 min)
REVOKED = 23  # X509_V_ERR_CERT_REVOKED


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


# --- helpers -------------------------------------------------------------------------------


def issue(installation: Installation, ca: str, list_type: ListType, now: dt.datetime) -> IssuedCRLInfo:
    return issue_list(installation.engine, installation.keys, installation.data_dir, ca, list_type, now=now,
                      deltas=POLICY, time_guard=NO_NTP)


def subscribers(installation: Installation, ca: str, n: int) -> list[Certificate]:
    with session_scope(installation.engine) as s:
        store = Store(s)
        rows = [c for c in store.certificates(issuer=store.ca(ca), kinds=[CertKind.SUBSCRIBER])
                if c.revocation is None]
    assert len(rows) >= n, f"the demo has too few unrevoked subscribers of {ca} left"
    return rows[:n]


def revoke(installation: Installation, rows: list[Certificate], *, reason: int = 1, ids: list[int] | None = None,
           recorded_at: dt.datetime = NOW) -> None:
    with session_scope(installation.engine) as s:
        for i, row in enumerate(rows):
            s.add(Revocation(id=ids[i] if ids else None, certificate_id=row.id, issuer_ca_id=row.issuer_ca_id,
                             serial=row.serial, revocation_time=NOW, reason=reason, recorded_at=recorded_at,
                             entry_der=encode_entry(row.serial, NOW, reason), list_type=ListType.CRL))


def root_of(installation: Installation, ca: str) -> x509.Certificate:
    with session_scope(installation.engine) as s:
        store = Store(s)
        return x509.load_der_x509_certificate(
            store.certificates(issuer=store.ca(ca), kinds=[CertKind.SELF_SIGNED])[-1].der)


def serials(info: IssuedCRLInfo) -> set[int]:
    return {r.serial_number for r in x509.load_der_x509_crl(info.path.read_bytes())}


def openssl_verify(leaf: Certificate, root: x509.Certificate, crls: Sequence[bytes], *,
                   deltas: bool, extended: bool = False) -> tuple[bool, int | None, str]:
    """`openssl verify -crl_check [-use_deltas] [-extended_crl]` of a subscriber certificate at AT.

    Without -extended_crl openssl may also take a delta for a complete CRL (the newest of
    equal score); with it, a delta is only ever applied to its base."""
    with tempfile.TemporaryDirectory(prefix="revoca-delta-") as tmp:
        d = Path(tmp)
        (d / "root.pem").write_bytes(pem(root))
        (d / "crls.pem").write_bytes(b"".join(crl_pem(c) for c in crls))
        (d / "leaf.pem").write_bytes(pem(x509.load_der_x509_certificate(leaf.der)))
        args = ["openssl", "verify", "-crl_check", "-no-CApath", "-no-CAstore", "-CAfile", str(d / "root.pem"),
                "-CRLfile", str(d / "crls.pem"), "-attime", str(int(AT.timestamp()))]
        flags = (["-use_deltas"] if deltas else []) + (["-extended_crl"] if extended else [])
        run = subprocess.run([*args, *flags, str(d / "leaf.pem")],
                             capture_output=True, text=True, timeout=60, check=False)
    output = run.stdout + run.stderr
    found = re.search(r"error (\d+) at \d+ depth", output)
    return run.returncode == 0 and output.rstrip().endswith(": OK"), int(found.group(1)) if found else None, output


# --- what a base and its delta say ------------------------------------------------------------


def test_base_points_at_its_delta_and_the_delta_names_its_base(installation: Installation) -> None:
    before = subscribers(installation, "osaka", 2)
    revoke(installation, before)
    base = issue(installation, "osaka", ListType.CRL, T1)
    after = subscribers(installation, "osaka", 3)
    revoke(installation, after, reason=5)
    delta = issue(installation, "osaka", ListType.DELTA, T2)

    base_crl = x509.load_der_x509_crl(base.path.read_bytes())
    freshest = base_crl.extensions.get_extension_for_class(x509.FreshestCRL)
    assert not freshest.critical
    [point] = freshest.value
    with session_scope(installation.engine) as s:
        osaka = Store(s).ca("osaka")
        dn = ca_entry_dn(osaka.name, osaka.subject_dn, BASE_DN)
    assert [n.value for n in point.full_name] == [POLICY.url("osaka", osaka.subject_dn)]
    assert point.full_name[0].value.startswith("ldap://ldap.example.jp:389/")
    assert point.full_name[0].value.endswith("?deltaRevocationList;binary")
    assert dn.split(",")[0].replace(" ", "%20") in point.full_name[0].value

    crl = x509.load_der_x509_crl(delta.path.read_bytes())
    assert crl.is_signature_valid(root_of(installation, "osaka").public_key())
    indicator = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == base.number
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == delta.number == base.number + 1
    assert (crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
            == base_crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value)
    assert (crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
            == base_crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value)
    assert not any(isinstance(e.value, x509.FreshestCRL) for e in crl.extensions)
    assert crl.last_update_utc == T2 and crl.next_update_utc == T2 + POLICY.validity
    assert serials(delta) == {c.serial for c in after}  # only what changed since the base
    assert {c.serial for c in before} <= serials(base)

    text = openssl_crl_verify(delta.path.read_bytes(), root_of(installation, "osaka"))
    assert re.search(rf"X509v3 Delta CRL Indicator: critical\s+{base.number}\b", text), text
    base_text = openssl_crl_verify(base.path.read_bytes(), root_of(installation, "osaka"))
    assert "Freshest CRL" in base_text and "URI:ldap://ldap.example.jp:389/" in base_text


def test_delta_numbers_come_from_the_crl_sequence_and_the_arl_keeps_its_own(installation: Installation) -> None:
    crl = issue(installation, "osaka", ListType.CRL, T1)
    d1 = issue(installation, "osaka", ListType.DELTA, T2)
    d2 = issue(installation, "osaka", ListType.DELTA, T2 + dt.timedelta(minutes=1))
    crl2 = issue(installation, "osaka", ListType.CRL, T2 + dt.timedelta(minutes=2))
    arl = issue(installation, "osaka", ListType.ARL, T2 + dt.timedelta(minutes=2))
    assert [crl.number + i for i in range(4)] == [crl.number, d1.number, d2.number, crl2.number]
    d3 = issue(installation, "osaka", ListType.DELTA, T2 + dt.timedelta(minutes=3))
    assert d3.number == crl2.number + 1
    indicator = x509.load_der_x509_crl(d3.path.read_bytes()).extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.value.crl_number == crl2.number  # always against the newest base
    assert serials(d3) == set()
    assert arl.number < crl.number  # the ARL's own counter, untouched by deltas
    assert d3.path == installation.data_dir / "crls" / "osaka" / "delta" / f"{d3.number}.crl"
    with session_scope(installation.engine) as s:
        queued = s.scalars(sa.select(Publication).where(Publication.item == PublicationItem.DELTA,
                                                        Publication.number == d3.number)).all()
        audited = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == "crl.issued")
                            .order_by(AuditEvent.id.desc()).limit(1)).one()
        store = Store(s)
        row = store.issued_crl(store.ca("osaka"), ListType.DELTA, d3.number)
        assert (row.base_number, row.entries, row.sha256) == (crl2.number, 0, d3.sha256)
    assert len(queued) == 1 and queued[0].sha256 == d3.sha256
    assert '"base"' in audited.detail and '"delta"' in audited.detail


def test_openssl_use_deltas_sees_a_revocation_only_the_delta_has(installation: Installation) -> None:
    early, late, good = subscribers(installation, "tokyo", 3)
    revoke(installation, [early])
    base = issue(installation, "tokyo", ListType.CRL, T1).path.read_bytes()
    revoke(installation, [late], reason=4)
    delta = issue(installation, "tokyo", ListType.DELTA, T2).path.read_bytes()
    root = root_of(installation, "tokyo")

    ok, error, out = openssl_verify(late, root, [base, delta], deltas=True)
    assert not ok and error == REVOKED, out
    ok, error, out = openssl_verify(late, root, [base], deltas=True)
    assert ok, out  # the base alone does not know yet: that is what the delta is for
    for cert in (early, late):
        ok, error, out = openssl_verify(cert, root, [base, delta], deltas=True, extended=True)
        assert not ok and error == REVOKED, out
    for crls in ([base, delta], [base]):
        ok, _, out = openssl_verify(good, root, crls, deltas=True)
        assert ok, out
    ok, _, out = openssl_verify(good, root, [base, delta], deltas=True, extended=True)
    assert ok, out


def test_pyhanko_certvalidator_applies_the_delta(installation: Installation) -> None:
    certvalidator = pytest.importorskip("pyhanko_certvalidator")
    from asn1crypto import crl as asn1_crl
    from asn1crypto import x509 as asn1_x509

    late, good = subscribers(installation, "tokyo", 2)
    base = issue(installation, "tokyo", ListType.CRL, T1).path.read_bytes()
    revoke(installation, [late], reason=3)
    delta = issue(installation, "tokyo", ListType.DELTA, T2).path.read_bytes()
    root = asn1_x509.Certificate.load(root_of(installation, "tokyo").public_bytes(Encoding.DER))

    def validate(leaf: Certificate, crls: list[bytes]) -> Any:
        context = certvalidator.ValidationContext(
            trust_roots=[root], crls=[asn1_crl.CertificateList.load(c) for c in crls],
            revocation_mode="require", moment=AT)  # the demo's certificates name no CRL distribution point
        validator = certvalidator.CertificateValidator(asn1_x509.Certificate.load(leaf.der),
                                                       validation_context=context)
        return asyncio.run(validator.async_validate_usage(set()))

    with pytest.raises(certvalidator.errors.RevokedError):
        validate(late, [base, delta])
    validate(good, [base, delta])


def test_pkilint_finds_nothing_wrong_in_a_base_with_freshest_crl_or_its_delta(installation: Installation) -> None:
    revoke(installation, subscribers(installation, "tokyo", 1), reason=1)
    base = issue(installation, "tokyo", ListType.CRL, T1)
    revoke(installation, subscribers(installation, "tokyo", 1), reason=5)
    for info in (base, issue(installation, "tokyo", ListType.DELTA, T2)):
        assert_pkilint_clean(pkilint_crl(info.path.read_bytes(), "crl"))


def test_a_row_committed_after_the_base_below_its_snapshot_is_on_the_delta(installation: Installation) -> None:
    """PostgreSQL hands out ids before commit: a revocation may become visible after a list whose
    highest id is above its own.  The base's entry count shows it, and the delta lists it.  (SQLite's
    single writer hands out ids in commit order, so the check is not made there.)"""
    if installation.engine.dialect.name == "sqlite":
        pytest.skip("SQLite hands out ids in commit order: no row commits below a list's snapshot")
    first, below, after = subscribers(installation, "hokkaido", 3)
    with session_scope(installation.engine) as s:
        top = s.scalar(sa.select(sa.func.max(Revocation.id))) or 0
    revoke(installation, [first], ids=[top + 1000])
    base = issue(installation, "hokkaido", ListType.CRL, T1)
    revoke(installation, [below], ids=[top + 500], recorded_at=T1 - dt.timedelta(seconds=1))  # committed late
    revoke(installation, [after], ids=[top + 1500], recorded_at=T1 + dt.timedelta(minutes=1))
    delta = issue(installation, "hokkaido", ListType.DELTA, T2)
    assert serials(delta) == {below.serial, after.serial}
    assert below.serial not in serials(base)


def test_a_delta_needs_a_base_and_the_current_key(installation: Installation, tmp_path: Path,
                                                  ceremony_templates: CeremonyTemplates) -> None:
    with pytest.raises(InvalidInput, match="delta CRLs are issued with the CA's current key only"):
        issue_list(installation.engine, installation.keys, installation.data_dir, "bridge", ListType.DELTA, now=T1,
                   key_generation=1, time_guard=NO_NTP)
    with demo_installation(ceremony_templates, "sqlite", tmp_path) as fresh:
        with pytest.raises(InvalidInput, match="no complete CRL a delta can refer to"):
            issue(fresh, "bridge", ListType.DELTA, T1)
        with session_scope(fresh.engine) as s:
            store = Store(s)
            assert store.issued_crls(ca=store.ca("bridge")) == []
            assert store.allocate_crl_number(store.ca("bridge").id, ListType.CRL) == 1  # no number was spent


# --- the settings and the scheduler -------------------------------------------------------


def test_delta_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigError, match="delta_validity_minutes"):
        CRLConfig(delta_period_minutes=60, delta_validity_minutes=60)
    with pytest.raises(ConfigError, match="delta_period_minutes"):
        CRLConfig(delta_period_minutes=24 * 60, delta_validity_minutes=48 * 60)
    with pytest.raises(ConfigError, match="delta_burst"):
        CRLConfig(delta_burst=-1)
    assert not CRLConfig(delta_period_minutes=0).deltas
    assert CRLConfig().delta_period == dt.timedelta(hours=1)  # hourly by default


@pytest.fixture
def own(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path) as made:
        yield made


def test_scheduler_issues_a_delta_after_each_base_hourly_and_at_once_after_a_burst(own: Installation) -> None:
    config = CRLConfig(delta_burst=3)
    s = Scheduler(own.engine, own.keys, own.data_dir, config, deltas=POLICY, time_guard=NO_NTP)
    first = s.tick(NOW)
    deltas = {i.ca_name for i in first.issued if i.list_type is ListType.DELTA}
    assert deltas == {"bridge", "tokyo", "osaka", "hokkaido"} and not first.failed  # each base gets its delta
    assert s.issue_deltas(NOW + dt.timedelta(minutes=59)).issued == ()
    revoke(own, subscribers(own, "tokyo", 2))
    assert s.issue_deltas(NOW + dt.timedelta(minutes=10)).issued == ()  # 2 waiting, burst is 3
    revoke(own, subscribers(own, "tokyo", 1))
    burst = s.issue_deltas(NOW + dt.timedelta(minutes=11))
    assert [(i.ca_name, i.entries) for i in burst.issued] == [("tokyo", 3)]
    hourly = s.issue_deltas(NOW + dt.timedelta(minutes=60))
    assert {i.ca_name for i in hourly.issued} == {"bridge", "osaka", "hokkaido"}  # tokyo's is 49 minutes old
    assert s.issue_deltas(NOW + dt.timedelta(minutes=71)).issued[0].entries == 3  # still against the base
    off = Scheduler(own.engine, own.keys, own.data_dir, CRLConfig(delta_period_minutes=0), time_guard=NO_NTP)
    assert off.issue_deltas(NOW + dt.timedelta(hours=5)).issued == ()
