"""CRL and ARL issuance from the database with keys in a real SoftHSM2 token, on SQLite and
PostgreSQL, checked by openssl (signature, and path validation with -crl_check_all), pkilint
and cryptography's parser.

One demo installation per database serves the whole module; each test works on its own CA
and list (tokyo CRL: the verify tests; bridge: ARL and numbering; osaka: the entry cache;
hokkaido: never revoked in, so its lists stay empty), so the order of tests does not matter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from ca.crl import cache
from ca.crl.issue import BOTH, IssuedCRLInfo, issue_list
from ca.enums import CertKind, ListType
from ca.errors import InvalidInput, NotActivated, NotFound, TokenError
from ca.hsm.signer import KeyAlgorithm, SoftwareSigner
from ca.revocation.crl_entry import encode_entry
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Certificate, IssuedCRL, Revocation
from ca.storage.store import ReadStore, Store

from support.clock import NO_NTP
from support.crl_tools import openssl_crl_verify, openssl_verify_crls, pkilint_crl
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import NOW
from support.tools import assert_pkilint_clean

T1 = NOW + dt.timedelta(hours=1)
AT = NOW + dt.timedelta(hours=2)  # validation time: inside every CRL issued at T1
REVOKED = 23  # X509_V_ERR_CERT_REVOKED


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation shared by this module's tests, on each database kind."""
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


# --- helpers -------------------------------------------------------------------------------


def issue(installation: Installation, ca: str, list_type: ListType, *, now: dt.datetime = T1,
          **kwargs: object) -> IssuedCRLInfo:
    return issue_list(installation.engine, installation.keys, installation.data_dir, ca, list_type, now=now, **kwargs,
                      time_guard=NO_NTP)  # type: ignore[arg-type]


def cert_of(row: Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(row.der)


def self_signed(installation: Installation, ca: str) -> x509.Certificate:
    with session_scope(installation.engine) as s:
        store = Store(s)
        return cert_of(store.certificates(issuer=store.ca(ca), kinds=[CertKind.SELF_SIGNED])[-1])


def cross(installation: Installation, issuer: str, subject: str) -> Certificate:
    with session_scope(installation.engine) as s:
        store = Store(s)
        return next(c for c in store.certificates(issuer=store.ca(issuer), kinds=[CertKind.CROSS],
                                                  subject_ca=store.ca(subject)))


def unrevoked_subscribers(installation: Installation, ca: str, n: int) -> list[Certificate]:
    with session_scope(installation.engine) as s:
        store = Store(s)
        rows = [c for c in store.certificates(issuer=store.ca(ca), kinds=[CertKind.SUBSCRIBER])
                if c.revocation is None]
    assert len(rows) >= n, f"the demo has too few unrevoked subscribers of {ca} left"
    return rows[:n]


def revoke(installation: Installation, rows: list[Certificate], list_type: ListType = ListType.CRL, *, reason: int = 1,
           entry: bool = True, ids: list[int] | None = None) -> None:
    """Revocation rows as the RA writes them (entry DER encoded at once), straight into the database."""
    with session_scope(installation.engine) as s:
        for i, row in enumerate(rows):
            s.add(Revocation(id=ids[i] if ids else None, certificate_id=row.id, issuer_ca_id=row.issuer_ca_id,
                             serial=row.serial, revocation_time=NOW, reason=reason, recorded_at=NOW,
                             entry_der=encode_entry(row.serial, NOW, reason) if entry else None,
                             list_type=list_type))


def entries(path: Path) -> dict[int, tuple[dt.datetime, x509.ReasonFlags]]:
    crl = x509.load_der_x509_crl(path.read_bytes())
    return {r.serial_number: (r.revocation_date_utc, r.extensions.get_extension_for_class(x509.CRLReason).value.reason)
            for r in crl}


def archive(installation: Installation, ca: str, list_type: ListType) -> list[IssuedCRL]:
    with session_scope(installation.engine) as s:
        store = ReadStore(s)
        return list(store.issued_crls(ca=store.ca(ca), list_types=[list_type]))


class RecordingChunks:
    """Spy on ReadStore.crl_entry_chunks: which rows each issue streamed from the database."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, int]] = []
        original = ReadStore.crl_entry_chunks

        def spy(store: ReadStore, ca_id: int, list_type: ListType, **kw: int) -> Iterator[list[bytes]]:
            self.calls.append((kw["after_id"], kw["up_to_id"]))
            return original(store, ca_id, list_type, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(ReadStore, "crl_entry_chunks", spy)


# --- what the lists say, by other tools ------------------------------------------------------


def test_crl_and_arl_verify_with_openssl_and_parse_with_cryptography(installation: Installation) -> None:
    revoked = unrevoked_subscribers(installation, "tokyo", 2)
    revoke(installation, revoked, reason=3)
    root = self_signed(installation, "tokyo")
    with session_scope(installation.engine) as s:
        ski = Store(s).crl_signing_key(Store(s).ca("tokyo")).ski
    for list_type in BOTH:
        info = issue(installation, "tokyo", list_type)
        data = info.path.read_bytes()
        text = openssl_crl_verify(data, root)
        crl = x509.load_der_x509_crl(data)
        assert crl.is_signature_valid(root.public_key())
        assert crl.issuer.public_bytes() == root.subject.public_bytes()
        assert crl.last_update_utc == T1 and crl.next_update_utc == T1 + dt.timedelta(hours=72)
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == info.number
        aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        assert aki.value.key_identifier == ski and not aki.critical
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical
        assert idp.value.full_name is None and idp.value.relative_name is None
        assert idp.value.only_contains_user_certs is (list_type is ListType.CRL)
        assert idp.value.only_contains_ca_certs is (list_type is ListType.ARL)
        assert ("Only User Certificates" if list_type is ListType.CRL else "Only CA Certificates") in text
    number = archive(installation, "tokyo", ListType.CRL)[0].number
    listed = entries(installation.data_dir / "crls" / "tokyo" / "crl" / f"{number}.crl")
    for row in revoked:
        assert listed[row.serial] == (NOW, x509.ReasonFlags.affiliation_changed)


def test_revoked_subscriber_fails_openssl_verify_with_error_23_and_a_good_one_passes(
        installation: Installation) -> None:
    bad, good = unrevoked_subscribers(installation, "tokyo", 2)
    revoke(installation, [bad])
    crls = [issue(installation, "tokyo", t).path.read_bytes() for t in BOTH]
    root = self_signed(installation, "tokyo")
    revoked = openssl_verify_crls(cert_of(bad), trusted=[root], crls=crls, at=AT)
    assert not revoked.ok and revoked.error == REVOKED, revoked.output
    assert "certificate revoked" in revoked.output
    passed = openssl_verify_crls(cert_of(good), trusted=[root], crls=crls, at=AT)
    assert passed.ok, passed.output


def test_revoked_cross_certificate_on_the_bridge_arl_breaks_the_path_through_it(installation: Installation) -> None:
    leaf = cert_of(unrevoked_subscribers(installation, "tokyo", 1)[0])
    bridge_root, cross_row = self_signed(installation, "bridge"), cross(installation, "bridge", "tokyo")
    tokyo_lists = [issue(installation, "tokyo", t).path.read_bytes() for t in BOTH]

    def verify() -> object:
        arl = issue(installation, "bridge", ListType.ARL).path.read_bytes()
        return openssl_verify_crls(leaf, trusted=[bridge_root], untrusted=[cert_of(cross_row)],
                                   crls=[arl, *tokyo_lists], at=AT)

    before = verify()
    assert before.ok, before.output  # type: ignore[attr-defined]
    revoke(installation, [cross_row], ListType.ARL, reason=5)
    after = verify()
    assert not after.ok and after.error == REVOKED, after.output  # type: ignore[attr-defined]
    assert "error 23 at 1 depth" in after.output  # type: ignore[attr-defined]


def test_pkilint_finds_nothing_wrong_in_crls_and_arls_full_or_empty(installation: Installation) -> None:
    revoke(installation, unrevoked_subscribers(installation, "tokyo", 1), reason=4)
    for ca in ("tokyo", "hokkaido"):
        for list_type in BOTH:
            findings = pkilint_crl(issue(installation, ca, list_type).path.read_bytes(), list_type.value)
            assert_pkilint_clean(findings)


def test_lists_without_revocations_have_no_entries_and_still_verify(installation: Installation) -> None:
    root = self_signed(installation, "hokkaido")
    for list_type in BOTH:
        info = issue(installation, "hokkaido", list_type)
        assert info.entries == 0
        crl = x509.load_der_x509_crl(info.path.read_bytes())
        assert len(crl) == 0 and crl.is_signature_valid(root.public_key())
        assert "No Revoked Certificates" in openssl_crl_verify(info.path.read_bytes(), root)


# --- numbers, archive, audit -------------------------------------------------------------------


def test_numbers_strictly_increase_per_ca_and_list(installation: Installation) -> None:
    first = issue(installation, "bridge", ListType.CRL).number
    assert [issue(installation, "bridge", ListType.CRL).number for _ in range(3)] == [first + 1, first + 2, first + 3]
    arl = issue(installation, "bridge", ListType.ARL).number
    assert issue(installation, "bridge", ListType.ARL).number == arl + 1
    assert issue(installation, "bridge", ListType.CRL).number == first + 4  # the ARL has a counter of its own


class CrashingStore:
    """A KeyStore whose signers die in sign_digest: after the number is allocated, before the archive."""

    def __init__(self, keys: object) -> None:
        self.keys = keys

    def signer(self, label: str) -> object:
        real = self.keys.signer(label)  # type: ignore[attr-defined]

        class Dying:
            key_label, algorithm = real.key_label, real.algorithm
            public_key = real.public_key

            def sign_digest(self, digest: bytes) -> bytes:
                raise RuntimeError("simulated crash while signing")

        return Dying()


def test_crash_after_allocation_skips_the_number_and_never_reuses_it(installation: Installation) -> None:
    before = issue(installation, "bridge", ListType.CRL).number
    with pytest.raises(RuntimeError, match="simulated crash"):
        issue_list(installation.engine, CrashingStore(installation.keys), installation.data_dir, "bridge",
                   ListType.CRL, now=T1, time_guard=NO_NTP)  # type: ignore[arg-type]
    after = issue(installation, "bridge", ListType.CRL).number
    assert after == before + 2
    numbers = [r.number for r in archive(installation, "bridge", ListType.CRL)]
    assert before + 1 not in numbers and {before, after} <= set(numbers)
    directory = installation.data_dir / "crls" / "bridge" / "crl"
    assert not (directory / f"{before + 1}.crl").exists()
    assert not list(directory.glob(".*.tmp"))
    with session_scope(installation.engine) as s:
        failure = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == "crl.issued",
                                                        AuditEvent.result == "failure")).all()[-1]
    assert json.loads(failure.detail)["number"] == before + 1


def test_a_signed_list_left_without_its_archive_row_is_set_aside_at_the_next_issue(installation: Installation) -> None:
    """Issue 15: kill -9 of `crl issue` between the file and its archive row left a signed CRL file
    that no archive row names.  The next issue of that CA and list sets it aside and audits it."""
    before = issue(installation, "osaka", ListType.ARL)
    directory = installation.data_dir / "crls" / "osaka" / "arl"
    orphan = directory / f"{before.number + 1000}.crl"  # as the killed issuer left it: signed, never archived
    orphan.write_bytes(before.path.read_bytes())
    after = issue(installation, "osaka", ListType.ARL)
    assert not orphan.exists() and (directory / f"{before.number + 1000}.crl.unarchived").exists()
    assert before.path.exists() and after.path.exists()  # archived ones stay where they are
    with session_scope(installation.engine) as s:
        failure = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == "crl.issued",
                                                        AuditEvent.result == "failure")).all()[-1]
    assert json.loads(failure.detail)["number"] == before.number + 1000
    assert "never archived" in failure.detail


class Inactive:
    def signer(self, label: str) -> object:
        raise NotActivated("the HSM service needs 2 more key manager shares")


def test_inactive_hsm_fails_before_a_number_is_spent(installation: Installation) -> None:
    before = issue(installation, "bridge", ListType.ARL).number
    with pytest.raises(NotActivated):
        issue_list(installation.engine, Inactive(), installation.data_dir, "bridge", ListType.ARL, now=T1,
                   time_guard=NO_NTP)  # type: ignore[arg-type]
    assert issue(installation, "bridge", ListType.ARL).number == before + 1


class OtherKey:
    def signer(self, label: str) -> SoftwareSigner:
        from cryptography.hazmat.primitives.asymmetric import ec

        return SoftwareSigner(ec.generate_private_key(ec.SECP256R1()), label)


def test_token_key_other_than_the_recorded_one_is_refused(installation: Installation) -> None:
    with pytest.raises(TokenError, match="not the key recorded"):
        issue_list(installation.engine, OtherKey(), installation.data_dir, "bridge", ListType.ARL, now=T1,
                   time_guard=NO_NTP)  # type: ignore[arg-type]


def test_concurrent_allocations_get_distinct_numbers(installation: Installation) -> None:
    with session_scope(installation.engine) as s:
        ca_id = Store(s).ca("bridge").id
    got: list[int] = []
    lock = threading.Lock()

    def allocate() -> None:
        for _ in range(5):
            with session_scope(installation.engine) as s:
                n = Store(s).allocate_crl_number(ca_id, ListType.CRL)
            with lock:
                got.append(n)

    threads = [threading.Thread(target=allocate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 20 and max(got) - min(got) == 19


def test_archive_row_and_audit_event_describe_the_file(installation: Installation) -> None:
    info = issue(installation, "tokyo", ListType.CRL, now=T1 + dt.timedelta(microseconds=123_456))
    data = info.path.read_bytes()
    row = next(r for r in archive(installation, "tokyo", ListType.CRL) if r.number == info.number)
    assert row.sha256 == hashlib.sha256(data).digest() == info.sha256
    assert row.size == len(data) == info.size
    assert row.entries == info.entries == len(x509.load_der_x509_crl(data))
    assert row.this_update == T1 and row.next_update == T1 + dt.timedelta(hours=72)  # whole seconds
    assert row.path == f"crls/tokyo/crl/{info.number}.crl" and installation.data_dir / row.path == info.path
    with session_scope(installation.engine) as s:
        event = s.scalars(sa.select(AuditEvent).where(AuditEvent.event_type == "crl.issued",
                                                      AuditEvent.result == "success")
                          .order_by(AuditEvent.id.desc())).first()
    assert event is not None
    detail = json.loads(event.detail)
    assert (detail["ca"], detail["list"], detail["number"]) == ("tokyo", "crl", info.number)
    assert detail["sha256"] == info.sha256.hex()


def test_validity_is_configurable(installation: Installation) -> None:
    info = issue(installation, "hokkaido", ListType.ARL, validity=dt.timedelta(hours=48))
    assert info.next_update - info.this_update == dt.timedelta(hours=48)


def test_unknown_or_unusable_ca_names_are_refused(installation: Installation) -> None:
    with pytest.raises(NotFound, match="no CA named 'nagoya'"):
        issue(installation, "nagoya", ListType.CRL)
    with pytest.raises(InvalidInput, match="cannot name a CRL directory"):
        issue(installation, "../tokyo", ListType.CRL)
    with pytest.raises(InvalidInput, match="naive"):
        issue(installation, "tokyo", ListType.CRL, now=dt.datetime(2026, 11, 1))


# --- the entry cache (ca.crl.cache) ---------------------------------------------------------------


def test_next_issue_streams_only_new_rows_and_equals_a_full_stream(installation: Installation,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    revoke(installation, unrevoked_subscribers(installation, "osaka", 3))
    issue(installation, "osaka", ListType.CRL)
    spy = RecordingChunks(monkeypatch)
    revoke(installation, unrevoked_subscribers(installation, "osaka", 2), reason=5)
    incremental = issue(installation, "osaka", ListType.CRL)
    full = issue(installation, "osaka", ListType.CRL, incremental=False)
    (after, _top), (from_start, _) = spy.calls
    assert after > 0 and from_start == 0
    first = x509.load_der_x509_crl(incremental.path.read_bytes())
    second = x509.load_der_x509_crl(full.path.read_bytes())
    assert [(r.serial_number, r.revocation_date_utc) for r in first] == \
        [(r.serial_number, r.revocation_date_utc) for r in second]
    assert incremental.entries == full.entries == len(entries(incremental.path))


def test_row_committed_late_below_the_kept_ids_makes_a_full_stream(installation: Installation,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # PostgreSQL hands ids out before commit: a row can appear below ids already issued.
    # Simulated with explicit ids far above the sequence, with a gap, then a row in the gap.
    early, late = unrevoked_subscribers(installation, "osaka", 2)
    revoke(installation, [early], ListType.ARL, ids=[50_000_000])
    issue(installation, "osaka", ListType.ARL)
    revoke(installation, [late], ListType.ARL, ids=[40_000_000])
    spy = RecordingChunks(monkeypatch)
    with caplog.at_level(logging.INFO, logger="revoca.crl"):
        info = issue(installation, "osaka", ListType.ARL)
    assert spy.calls[0][0] == 0
    assert "disagree with the database" in caplog.text
    assert {early.serial, late.serial} <= set(entries(info.path))


def test_damaged_cache_is_caught_before_signing_and_rebuilt(installation: Installation,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    revoke(installation, unrevoked_subscribers(installation, "osaka", 1), ListType.ARL)
    good = issue(installation, "osaka", ListType.ARL)
    directory = good.path.parent
    kept = cache.load(directory)
    assert kept is not None and kept.count == good.entries
    with open(directory / cache.ENTRIES, "r+b") as f:  # one bit flips on disk
        f.seek(kept.length // 2)
        byte = f.read(1)
        f.seek(kept.length // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    with caplog.at_level(logging.WARNING, logger="revoca.crl"):
        again = issue(installation, "osaka", ListType.ARL)
    assert "does not match its recorded SHA-256" in caplog.text
    assert entries(again.path) == entries(good.path)
    rebuilt = cache.load(directory)
    assert rebuilt is not None and rebuilt.sha256 == kept.sha256


def test_bytes_left_after_a_crash_past_the_recorded_length_are_ignored(installation: Installation) -> None:
    revoke(installation, unrevoked_subscribers(installation, "osaka", 1))
    issue(installation, "osaka", ListType.CRL)
    directory = installation.data_dir / "crls" / "osaka" / "crl"
    with open(directory / cache.ENTRIES, "ab") as f:
        f.write(b"\x30\x03garbage from an interrupted append")
    revoke(installation, unrevoked_subscribers(installation, "osaka", 1))
    info = issue(installation, "osaka", ListType.CRL)
    full = issue(installation, "osaka", ListType.CRL, incremental=False)
    assert entries(info.path) == entries(full.path)


def test_rows_stored_without_entry_der_are_encoded_and_listed(installation: Installation,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    row = unrevoked_subscribers(installation, "osaka", 1)[0]
    revoke(installation, [row], reason=2, entry=False)
    with caplog.at_level(logging.WARNING, logger="revoca.crl"):
        info = issue(installation, "osaka", ListType.CRL)
    assert "encoded 1 CRL entries" in caplog.text
    assert entries(info.path)[row.serial] == (NOW, x509.ReasonFlags.ca_compromise)
    with session_scope(installation.engine) as s:
        stored = s.scalar(sa.select(Revocation.entry_der).where(Revocation.certificate_id == row.id))
    assert stored == encode_entry(row.serial, NOW, 2)


def test_stale_partial_files_of_a_crashed_issuer_are_removed(installation: Installation) -> None:
    directory = installation.data_dir / "crls" / "hokkaido" / "crl"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".99999.entries.tmp").write_bytes(b"left behind")
    (directory / ".99999.crl.tmp").write_bytes(b"left behind")
    issue(installation, "hokkaido", ListType.CRL)
    assert not list(directory.glob(".*.tmp"))


def test_signing_key_algorithm_comes_from_the_token(installation: Installation) -> None:
    info = issue(installation, "hokkaido", ListType.CRL)
    crl = x509.load_der_x509_crl(info.path.read_bytes())
    assert crl.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert installation.settings.hsm.key_algorithm == KeyAlgorithm.P256.value


def test_entry_chunks_joined_by_the_database_equal_the_rows_in_id_order(installation: Installation) -> None:
    """crl_entry_chunks has the database concatenate each chunk (group_concat, string_agg): the
    bytes and counts must be those of the rows one by one, in id order, across chunk borders."""
    revoke(installation, unrevoked_subscribers(installation, "tokyo", 7), reason=5)
    with session_scope(installation.engine) as s:
        store = ReadStore(s)
        ca_id = store.ca("tokyo").id
        rows = s.execute(sa.select(Revocation.id, Revocation.entry_der).where(
            Revocation.issuer_ca_id == ca_id, Revocation.list_type == ListType.CRL).order_by(Revocation.id)).all()
        assert len(rows) >= 7
        for after in (0, rows[2].id):
            want = [der for rid, der in rows if rid > after]
            chunks = list(store.crl_entry_chunks(ca_id, ListType.CRL, after_id=after, up_to_id=rows[-1].id, rows=3))
            assert [len(c) for c in chunks][:-1] == [3] * (len(chunks) - 1)
            assert sum(len(c) for c in chunks) == len(want)
            assert b"".join(b"".join(c) for c in chunks) == b"".join(want)  # type: ignore[arg-type]
