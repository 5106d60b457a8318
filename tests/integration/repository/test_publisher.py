"""The publisher against a real slapd: what it writes, and what it does when the directory misbehaves."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from asn1crypto import crl as asn1_crl
from cryptography import x509

from ca.crl.issue import issue_all, issue_list
from ca.enums import ListType, PublicationItem, PublicationState
from ca.storage.engine import session_scope
from ca.storage.models import IssuedCRL, Publication
from ca.storage.store import Store
from repository.directory import Directory
from repository.entries import CertificatePair
from repository.publisher import LdapPublisher, backoff
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE, NOW
from support.tools import free_port

TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
VERIFIER_DN = f"cn=v1,ou=verifiers,{LDAP_BASE}"
VERIFIER_PW = "verifier-secret"


@pytest.fixture(params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation of each test's own, on each database kind: the tests issue lists at
    fixed times, and a CA's lists never go back in time (ca.crl.issue), so none may share one."""
    with demo_installation(ceremony_templates, request.param, tmp_path_factory.mktemp(request.param)) as made:
        yield made


@pytest.fixture
def fresh(installation: Installation) -> Iterator[Installation]:
    """The module's world with an empty publication queue (each test starts from its own slapd)."""
    with session_scope(installation.engine) as s:
        s.execute(sa.delete(Publication))
    yield installation


def _after_the_last_issue(installation: Installation) -> dt.datetime:
    """An hour after the newest list this (module-shared) installation issued, or NOW."""
    with session_scope(installation.engine) as s:
        last = s.scalar(sa.select(sa.func.max(IssuedCRL.this_update)))
    return NOW if last is None else max(NOW, last.replace(tzinfo=dt.UTC) + dt.timedelta(hours=1))


def _publisher(installation: Installation, slapd: LocalSlapd) -> LdapPublisher:
    return LdapPublisher(installation.engine, slapd.endpoint(timeout=3), LDAP_BASE, installation.data_dir)


def _add_verifier(slapd: LocalSlapd) -> None:
    slapd.tool("ldapadd", input=(
        f"dn: {VERIFIER_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: v1\n"
        f"userPassword: {slapd._hash_password(VERIFIER_PW)}\n").encode())
    slapd.tool("ldapmodify", input=(f"dn: {slapd.verifiers_group_dn}\nchangetype: modify\nadd: member\n"
                                    f"member: {VERIFIER_DN}\n").encode())


def _fetch(slapd: LocalSlapd, dn: str, attr: str, *, verifier: bool = False) -> list[bytes]:
    """ldapsearch (anonymous, or as the verifier) for one attribute; the values, as bytes."""
    cmd = ["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, "-b", dn, "-s", "base", "-t",
           "-T", str(slapd.directory)]
    if verifier:
        cmd += ["-D", VERIFIER_DN, "-w", VERIFIER_PW]
    res = subprocess.run([*cmd, attr], capture_output=True, text=True, timeout=60, check=True)
    values = []
    for line in res.stdout.splitlines():
        if line.lower().startswith(attr.lower() + ":< file://"):
            path = Path(line.split("file://", 1)[1])
            values.append(path.read_bytes())
            path.unlink()
    return values


def _archived(installation: Installation, ca: str, list_type: ListType) -> tuple[int, bytes]:
    from ca.storage.store import ReadStore

    with session_scope(installation.engine) as s:
        store = ReadStore(s)
        row = store.issued_crl(store.ca(ca), list_type)
        return row.number, (installation.data_dir / row.path).read_bytes()


def _rows(installation: Installation, item: PublicationItem | None = None, ca: str | None = None) -> list[Publication]:
    from ca.storage.models import CertificateAuthority

    with session_scope(installation.engine) as s:
        q = sa.select(Publication).order_by(Publication.id)
        if item is not None:
            q = q.where(Publication.item == item)
        if ca is not None:
            q = q.join(CertificateAuthority, CertificateAuthority.id == Publication.ca_id).where(
                CertificateAuthority.name == ca)
        rows = list(s.scalars(q))
        s.expunge_all()
        return rows


def test_everything_is_published_and_only_verifiers_read_the_crl(fresh: Installation, slapd: LocalSlapd) -> None:
    installation = fresh
    issue_all(installation.engine, installation.keys, installation.data_dir, now=NOW, time_guard=NO_NTP)
    report = _publisher(installation, slapd).round(NOW)
    assert report.ok, report
    # bridge + 3 regional CAs: certificates, CRL and ARL each
    assert len(report.published) == 12, report.published
    assert {r.state for r in _rows(installation)} == {PublicationState.PUBLISHED}

    _add_verifier(slapd)
    number, crl = _archived(installation, "tokyo", ListType.CRL)
    _, arl = _archived(installation, "tokyo", ListType.ARL)
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary") == []  # anonymous: nothing
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary", verifier=True) == [crl]
    assert _fetch(slapd, TOKYO_DN, "authorityRevocationList;binary") == [arl]  # anyone
    assert asn1_crl.CertificateList.load(crl).crl_number_value.native == number

    ca_certs = [x509.load_der_x509_certificate(d) for d in _fetch(slapd, TOKYO_DN, "cACertificate;binary")]
    assert [c.subject.rfc4514_string() for c in ca_certs] == [TOKYO_DN]
    assert ca_certs[0].issuer == ca_certs[0].subject
    # Tokyo's pair with the bridge: the bridge certified Tokyo (forward) and Tokyo the bridge (reverse)
    pairs = [CertificatePair.load(d) for d in _fetch(slapd, TOKYO_DN, "crossCertificatePair;binary")]
    assert len(pairs) == 1
    forward = x509.load_der_x509_certificate(pairs[0]["issued_to_this_ca"].untag().dump())
    reverse = x509.load_der_x509_certificate(pairs[0]["issued_by_this_ca"].untag().dump())
    assert forward.subject.rfc4514_string() == TOKYO_DN and "Bridge" in forward.issuer.rfc4514_string()
    assert reverse.issuer.rfc4514_string() == TOKYO_DN and "Bridge" in reverse.subject.rfc4514_string()
    bridge_pairs = _fetch(slapd, "CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP", "crossCertificatePair;binary")
    assert len(bridge_pairs) == 3  # one per regional CA
    classes = _fetch(slapd, TOKYO_DN, "objectClass")
    assert classes == []  # objectClass is text, not a file: checked below with Directory instead
    with Directory(slapd.endpoint()) as d:
        entry = d.read(TOKYO_DN, ("objectClass",))
        assert entry is not None
        assert {v.decode() for v in entry.values("objectClass")} >= {"certificationAuthority", "pkiCA"}

    # a second round has nothing to do
    again = _publisher(installation, slapd).round(NOW + dt.timedelta(minutes=1), side_work=True)
    assert again.ok and again.published == []


def test_directory_down_keeps_the_queue_and_drains_after_restart(fresh: Installation, slapd: LocalSlapd) -> None:
    installation = fresh
    publisher = _publisher(installation, slapd)
    assert publisher.round(NOW).ok
    slapd.stop()
    later = NOW + dt.timedelta(days=1)
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL,
                        now=later, time_guard=NO_NTP)  # signing is not blocked
    report = publisher.round(later)
    assert report.unavailable is not None and "unreachable" in report.unavailable
    pending = [r for r in _rows(installation, PublicationItem.CRL, "tokyo") if r.state is PublicationState.PENDING]
    assert [r.number for r in pending] == [issued.number]
    assert pending[0].attempts == 1 and "unreachable" in pending[0].last_error
    assert pending[0].next_attempt_at == later + backoff(1)
    # before the back-off nothing is tried; after it, it is (and fails again, backing off more)
    assert publisher.round(later + dt.timedelta(seconds=1)).unavailable is not None
    assert [r.attempts for r in _rows(installation, PublicationItem.CRL,
                                      "tokyo") if r.state is PublicationState.PENDING] == [1]

    slapd.start()
    _add_verifier(slapd)
    report = publisher.round(later + backoff(1))
    assert report.ok and any(f"#{issued.number}" in line for line in report.published), report
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary", verifier=True) == [issued.path.read_bytes()]


def test_an_older_crl_never_replaces_a_newer_one(fresh: Installation, slapd: LocalSlapd) -> None:
    installation = fresh
    now = _after_the_last_issue(installation)  # lists of one CA never go back in time (issue 15)
    old = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL, now=now,
                     time_guard=NO_NTP)
    new = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL,
                     now=now + dt.timedelta(hours=1), time_guard=NO_NTP)
    publisher = _publisher(installation, slapd)
    report = publisher.round(now + dt.timedelta(hours=1))
    assert report.ok
    rows = {r.number: r.state for r in _rows(installation, PublicationItem.CRL, "tokyo")}
    assert rows == {old.number: PublicationState.SUPERSEDED, new.number: PublicationState.PUBLISHED}
    _add_verifier(slapd)

    def queue_again(issued) -> None:  # type: ignore[no-untyped-def]  # as a stale retry would
        with session_scope(installation.engine) as s:
            Store(s).enqueue_publication(ca_id=s.scalar(sa.select(IssuedCRL.ca_id).where(
                IssuedCRL.sha256 == issued.sha256)), item=PublicationItem.CRL, sha256=issued.sha256,
                issued_crl_id=s.scalar(sa.select(IssuedCRL.id).where(IssuedCRL.sha256 == issued.sha256)),
                number=issued.number, now=now + dt.timedelta(hours=2))

    # the entry is as revoca left it: the database knows #new is there, the older one is refused
    queue_again(old)
    publisher.round(now + dt.timedelta(hours=2))
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary", verifier=True) == [new.path.read_bytes()]
    stale = [r for r in _rows(installation, PublicationItem.CRL, "tokyo") if r.number == old.number]
    assert [r.state for r in stale] == [PublicationState.SUPERSEDED] * 2
    assert f"#{new.number}" in stale[-1].last_error

    # someone else wrote a still newer CRL there: revoca reads the value, sees the number, keeps it
    newest = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL,
                        now=now + dt.timedelta(hours=3), time_guard=NO_NTP)
    with session_scope(installation.engine) as s:  # (its own queue row is not the point here)
        s.execute(sa.delete(Publication).where(Publication.number == newest.number,
                                               Publication.item == PublicationItem.CRL))
    import ldap3

    with Directory(slapd.endpoint()) as d:
        d.modify(TOKYO_DN, {"certificateRevocationList;binary": [(ldap3.MODIFY_REPLACE, [newest.path.read_bytes()])]})
    queue_again(new)
    publisher.round(now + dt.timedelta(hours=3))
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary", verifier=True) == [newest.path.read_bytes()]
    again = [r for r in _rows(installation, PublicationItem.CRL, "tokyo") if r.number == new.number][-1]
    assert again.state is PublicationState.SUPERSEDED and f"#{newest.number}" in again.last_error


def test_a_deleted_entry_is_created_again(fresh: Installation, slapd: LocalSlapd) -> None:
    installation = fresh
    publisher = _publisher(installation, slapd)
    issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.ARL, now=NOW,
               time_guard=NO_NTP)
    assert publisher.round(NOW).ok
    with Directory(slapd.endpoint()) as d:
        assert d.delete(TOKYO_DN)
    later = NOW + dt.timedelta(days=1)
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.ARL, now=later,
                        time_guard=NO_NTP)
    report = publisher.round(later, side_work=True)
    assert report.ok, report
    assert _fetch(slapd, TOKYO_DN, "authorityRevocationList;binary") == [issued.path.read_bytes()]
    assert len(_fetch(slapd, TOKYO_DN, "cACertificate;binary")) == 1  # certificates put back too


def test_a_write_that_landed_before_a_crash_is_recorded_not_repeated(fresh: Installation, slapd: LocalSlapd) -> None:
    """slapd applied the modify, then the publisher died before recording it."""
    installation = fresh
    publisher = _publisher(installation, slapd)
    assert publisher.round(NOW).ok
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL,
                        now=NOW + dt.timedelta(hours=1), time_guard=NO_NTP)
    import ldap3

    with Directory(slapd.endpoint()) as d:
        d.modify(TOKYO_DN, {"certificateRevocationList;binary": [(ldap3.MODIFY_REPLACE, [issued.path.read_bytes()])]})
        csn = d.read(TOKYO_DN, ("1.1",)).csn  # type: ignore[union-attr]
    report = publisher.round(NOW + dt.timedelta(hours=1))
    assert any("already there" in line for line in report.published), report
    with Directory(slapd.endpoint()) as d:
        assert d.read(TOKYO_DN, ("1.1",)).csn == csn  # type: ignore[union-attr]  # not written again


def test_slapd_killed_mid_publish_then_published_after_restart(fresh: Installation, slapd: LocalSlapd,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection dies between the read and the write: the row stays queued, nothing half-done counts."""
    installation = fresh
    publisher = _publisher(installation, slapd)
    assert publisher.round(NOW).ok
    later = NOW + dt.timedelta(hours=1)
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL, now=later,
                        time_guard=NO_NTP)
    original = Directory.modify

    def modify_after_a_crash(self: Directory, *args: object, **kwargs: object) -> None:
        slapd.stop()
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Directory, "modify", modify_after_a_crash)
    report = publisher.round(later)
    assert report.unavailable is not None
    monkeypatch.undo()
    row = next(r for r in _rows(installation, PublicationItem.CRL, "tokyo") if r.number == issued.number)
    assert row.state is PublicationState.PENDING and row.last_error
    slapd.start()
    assert publisher.round(later + backoff(1)).ok
    _add_verifier(slapd)
    assert _fetch(slapd, TOKYO_DN, "certificateRevocationList;binary", verifier=True) == [issued.path.read_bytes()]


def test_a_concurrent_write_between_read_and_write_is_noticed_and_retried(fresh: Installation, slapd: LocalSlapd,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    installation = fresh
    publisher = _publisher(installation, slapd)
    assert publisher.round(NOW).ok
    later = NOW + dt.timedelta(hours=1)
    issued = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.ARL, now=later,
                        time_guard=NO_NTP)
    original = Directory.modify
    interfered = []

    def modify_after_someone_else(self: Directory, dn: str, changes: dict, **kwargs: object) -> None:
        if not interfered:
            interfered.append(dn)
            import ldap3

            with Directory(slapd.endpoint()) as other:
                other.modify(dn, {"cn": [(ldap3.MODIFY_ADD, ["someone else"])]})
        original(self, dn, changes, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Directory, "modify", modify_after_someone_else)
    report = publisher.round(later)
    assert report.ok and interfered, report
    assert _fetch(slapd, TOKYO_DN, "authorityRevocationList;binary") == [issued.path.read_bytes()]


def test_directory_full_is_a_clear_error_and_nothing_is_lost(fresh: Installation, tmp_path: Path) -> None:
    """slapd's database cannot grow (its disk, or here its map, is full): the row waits for room."""
    installation = fresh
    small = LocalSlapd(tmp_path / "small", LDAP_BASE, free_port(), "pw", max_size=192 << 10)
    small.start()
    try:
        publisher = _publisher(installation, small)
        publisher.round(NOW)
        big = _grow_crl(installation, "osaka")
        assert big.path.stat().st_size > small.max_size  # more than the whole map could ever hold
        report = publisher.round(NOW + dt.timedelta(hours=1))
        assert report.failed, report
        assert any("osaka crl" in line.lower() for line in report.failed), report.failed
        row = next(r for r in _rows(installation, PublicationItem.CRL, "osaka") if r.number == big.number)
        assert row.state is PublicationState.PENDING and "refused" in row.last_error
    finally:
        small.stop()
    # room again (a bigger map on the same data): the queue drains
    roomy = LocalSlapd(tmp_path / "small", LDAP_BASE, small.port, "pw")
    roomy.start()
    try:
        report = _publisher(installation, roomy).round(NOW + dt.timedelta(hours=2))
        assert report.ok, report
        with Directory(roomy.endpoint()) as d:
            entry = d.read("CN=Governor of Osaka,OU=Osaka,OU=Prefectural CA,O=JPKI,C=JP",
                           ("certificateRevocationList;binary",))
            assert entry is not None
            value = entry.values("certificateRevocationList;binary")
            assert [hashlib.sha256(v).digest() for v in value] == [hashlib.sha256(big.path.read_bytes()).digest()]
    finally:
        roomy.stop()


def _grow_crl(installation: Installation, ca: str):  # type: ignore[no-untyped-def]
    """Issue a CRL of `ca` with 5,000 more entries (revocations inserted directly), about 230 KB:
    more than the 192 KiB map of the small slapd holds, whatever else is in it (~100 KB).  10,000
    entries and a 256 KiB map made the same case with twice the rows to insert (~0.5 s a kind)."""
    from ca.enums import CertKind
    from ca.revocation.crl_entry import encode_entry
    from ca.storage.models import Certificate, Revocation
    from ca.storage.store import ReadStore

    with session_scope(installation.engine) as s:
        store = ReadStore(s)
        the_ca = store.ca(ca)
        template = s.scalars(sa.select(Certificate).where(Certificate.issuer_ca_id == the_ca.id,
                                                          Certificate.kind == CertKind.SUBSCRIBER)).first()
        assert template is not None
        key_id = template.issuer_key_id
        base = 1 << 100
        when = NOW - dt.timedelta(days=1)
        certs = [dict(issuer_ca_id=the_ca.id, issuer_key_id=key_id, kind=CertKind.SUBSCRIBER, serial=base + i,
                      subject_dn="CN=x", not_before=template.not_before, not_after=template.not_after,
                      fingerprint_sha256=hashlib.sha256(f"{ca}{i}".encode()).digest(), der=b"\x30\x00",
                      created_at=when) for i in range(5_000)]
        s.execute(sa.insert(Certificate), certs)
        ids = dict(s.execute(sa.select(Certificate.serial, Certificate.id).where(
            Certificate.issuer_ca_id == the_ca.id, Certificate.serial >= base)).all())
        s.execute(sa.insert(Revocation), [dict(
            certificate_id=ids[base + i], issuer_ca_id=the_ca.id, serial=base + i, revocation_time=when,
            reason=4, recorded_at=when, list_type=ListType.CRL,
            entry_der=encode_entry(base + i, when, 4)) for i in range(5_000)])
    return issue_list(installation.engine, installation.keys, installation.data_dir, ca, ListType.CRL,
                      now=NOW + dt.timedelta(hours=1), time_guard=NO_NTP)


def test_a_rebuilt_directory_gets_its_lists_back_not_a_record_that_they_are_there(
        fresh: Installation, slapd: LocalSlapd) -> None:
    """The entry revoca creates again holds its own certificate write's entryCSN, which the
    database recorded; the lists published into the old directory are gone all the same."""
    import shutil

    installation = fresh
    issue_all(installation.engine, installation.keys, installation.data_dir, now=NOW, time_guard=NO_NTP)
    publisher = _publisher(installation, slapd)
    assert publisher.round(NOW).ok
    slapd.stop()
    shutil.rmtree(slapd.db_dir)
    slapd.start()

    later = NOW + dt.timedelta(minutes=5)
    assert publisher.requeue_newest(later) == 12  # what `revoca repository publish --all` does first
    report = publisher.round(later, retry_now=True)
    assert report.ok, report
    assert not [line for line in report.published if "already there" in line], report.published
    _add_verifier(slapd)
    for ca, dn in (("tokyo", TOKYO_DN), ("bridge", "CN=Bridge CA,OU=Bridge CA,O=JPKI,C=JP")):
        assert _fetch(slapd, dn, "certificateRevocationList;binary", verifier=True) == [
            _archived(installation, ca, ListType.CRL)[1]]
        assert _fetch(slapd, dn, "authorityRevocationList;binary") == [_archived(installation, ca, ListType.ARL)[1]]


def test_two_publishers_at_once_one_publishes_the_other_stands_by_and_takes_over(
        fresh: Installation, slapd: LocalSlapd) -> None:
    """Issue 15: any number of publisher copies; one holds the lease and works, the others wait."""
    import threading
    import time

    from ca.storage.leases import Lease

    issue_list(fresh.engine, fresh.keys, fresh.data_dir, "tokyo", ListType.CRL, now=_after_the_last_issue(fresh),
               time_guard=NO_NTP)
    publishers = [LdapPublisher(fresh.engine, slapd.endpoint(timeout=3), LDAP_BASE, fresh.data_dir,
                                lease=Lease(fresh.engine, "publisher")) for _ in range(2)]
    stops = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=p.run, args=(stop, 0.1), daemon=True)
               for p, stop in zip(publishers, stops, strict=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not [r for r in _rows(fresh, PublicationItem.CRL, "tokyo") if r.state == PublicationState.PUBLISHED]:
        assert time.monotonic() < deadline, "nothing published"
        time.sleep(0.1)
    holders = [i for i, p in enumerate(publishers) if p.lease.held()]
    assert len(holders) == 1
    stops[holders[0]].set()
    threads[holders[0]].join(timeout=10)
    other = publishers[1 - holders[0]]
    while not other.lease.held():
        assert time.monotonic() < deadline + 30, "the standby did not take over"
        time.sleep(0.1)
    stops[1 - holders[0]].set()
    threads[1 - holders[0]].join(timeout=10)
    assert not any(p.lease.held() for p in publishers)
