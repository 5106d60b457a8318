"""Who sees what in the directory, seen the way outsiders and verifiers see it: `ldapsearch` and
`ldapcompare` against a real slapd carrying the repository's access rules (repository/acl.py),
after revoca has published the CA entries and the verifier accounts.

A regression test for a finding of a local attack: an anonymous search listed every verifier
account, its certificate and the verifiers group.  The public reads CA certificates and ARLs
(and the root DSE); a verifier reads CRLs and its own account; nobody lists the verifiers.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.crl.issue import IssuedCRLInfo, issue_list
from ca.enums import ListType
from ca.verifiers import registry
from repository import verifier_accounts
from repository.directory import Directory, normal_dn
from repository.publisher import LdapPublisher
from repository.slapd import SLAPD, LocalSlapd

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE, NOW

pytestmark = pytest.mark.skipif(not Path(SLAPD).exists(), reason=f"{SLAPD} not installed (Debian package slapd)")

TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
CRL_ATTR = "certificateRevocationList;binary"
ARL_ATTR = "authorityRevocationList;binary"
CA_CERT_ATTR = "cACertificate;binary"
PASSWORD = "verifier password 1"
VERIFIERS = ("alice", "bob")
VERIFIERS_DN = verifier_accounts.verifiers_dn(LDAP_BASE)
GROUP_DN = verifier_accounts.group_dn(LDAP_BASE)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation with tokyo's CRL and ARL issued and two registered verifiers (the
    database does not matter to the directory's rules: SQLite only)."""
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("acl")) as made:
        for name in VERIFIERS:
            registry.add_verifier(made.engine, name=name, certificate=_certificate(name), password=PASSWORD,
                                  now=NOW, base_dn=LDAP_BASE, actor="test")
        yield made


@pytest.fixture(scope="module")
def tokyo_crl(installation: Installation) -> IssuedCRLInfo:
    assert installation.keys is not None
    issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.ARL, now=NOW,
               time_guard=NO_NTP)
    return issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.CRL, now=NOW,
                      time_guard=NO_NTP)


@pytest.fixture
def published(installation: Installation, tokyo_crl: IssuedCRLInfo, slapd: LocalSlapd) -> IssuedCRLInfo:
    """This test's slapd holding what revoca publishes: every CA entry, and the verifier accounts."""
    publisher = LdapPublisher(installation.engine, slapd.endpoint(timeout=5), LDAP_BASE, installation.data_dir)
    publisher.requeue_newest(NOW)  # the module's earlier tests published into a slapd of their own
    report = publisher.round(NOW)
    assert report.ok, report
    assert any(f"tokyo CRL #{tokyo_crl.number}" in line for line in report.published), report.published
    with Directory(slapd.endpoint()) as root:
        synced = verifier_accounts.sync(installation.engine, root, LDAP_BASE, now=NOW)
    assert synced.added == len(VERIFIERS)
    return tokyo_crl


def _certificate(cn: str) -> x509.Certificate:
    """A certificate the verifier brings itself (self-signed; its key is not needed here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=365)).sign(key, hashes.SHA256()))


def _bind(name: str | None) -> list[str]:
    """ldap-utils arguments: anonymous for None, else bound as that verifier."""
    return [] if name is None else ["-D", verifier_accounts.account_dn(name, LDAP_BASE), "-w", PASSWORD]


def _search(slapd: LocalSlapd, base: str, *args: str, as_: str | None = None,
            scope: str = "sub") -> tuple[int, list[str], str]:
    """`ldapsearch` (exit code, the DNs found in lower case, the whole LDIF); values base64 as LDIF has them."""
    res = subprocess.run(["ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-H", slapd.uri, *_bind(as_),
                          "-b", base, "-s", scope, *args], capture_output=True, text=True, timeout=30)
    dns = [normal_dn(line[4:]) if line.startswith("dn: ") else normal_dn(base64.b64decode(line[5:]).decode())
           for line in res.stdout.splitlines() if line.startswith(("dn: ", "dn:: "))]
    return res.returncode, dns, res.stdout


def _values(ldif: str, attr: str) -> list[bytes]:
    prefix = attr.lower() + ":: "
    return [base64.b64decode(line[len(prefix):]) for line in ldif.splitlines() if line.lower().startswith(prefix)]


def _under_verifiers(dns: list[str]) -> list[str]:
    container = normal_dn(VERIFIERS_DN)
    return [dn for dn in dns if dn == container or dn.endswith("," + container)]


def test_anonymous_lists_ca_entries_but_no_verifier_account_certificate_or_group(
        published: IssuedCRLInfo, slapd: LocalSlapd) -> None:
    # everything an anonymous subtree search of the whole directory returns
    rc, dns, ldif = _search(slapd, LDAP_BASE, "(objectClass=*)", "*")
    assert rc == 0
    assert normal_dn(TOKYO_DN) in dns and normal_dn(LDAP_BASE) in dns
    assert _under_verifiers(dns) == [], "anonymous lists verifier accounts or their group"
    lowered = ldif.lower()
    assert "usercertificate" not in lowered and "member:" not in lowered and "userpassword" not in lowered
    # the public still reads what it needs: CA certificates and ARLs, not the CRL
    rc, dns, ldif = _search(slapd, TOKYO_DN, "*", scope="base")
    assert rc == 0 and dns == [normal_dn(TOKYO_DN)]
    assert _values(ldif, CA_CERT_ATTR) and _values(ldif, ARL_ATTR)
    assert _values(ldif, CRL_ATTR) == []

    # asked for by name, the container, the group and an account do not exist for anonymous
    for dn in (VERIFIERS_DN, GROUP_DN, verifier_accounts.account_dn("alice", LDAP_BASE)):
        rc, dns, _ = _search(slapd, dn, "*", scope="base")
        assert (rc, dns) == (32, []), f"{dn}: {rc}"  # noSuchObject, as for a DN that is not there
    # and filters on what accounts and groups carry find nothing
    for probe in ("(cn=alice)", "(objectClass=groupOfNames)", "(member=*)", "(objectClass=pkiUser)",
                  "(userCertificate;binary=*)", "(objectClass=simpleSecurityObject)"):
        rc, dns, _ = _search(slapd, LDAP_BASE, probe, "1.1")
        assert (rc, dns) == (0, []), probe
    # nor can a compare tell whether someone is a verifier
    compare = subprocess.run(["ldapcompare", "-x", "-H", slapd.uri, GROUP_DN,
                              f"member:{verifier_accounts.account_dn('alice', LDAP_BASE)}"],
                             capture_output=True, text=True, timeout=30)
    assert compare.returncode == 32, compare.stdout + compare.stderr

    # the root DSE stays public (it is how clients and `revoca repository status` find the directory)
    rc, dns, ldif = _search(slapd, "", "namingContexts", scope="base")
    assert rc == 0 and f"namingContexts: {LDAP_BASE}" in ldif


def test_a_verifier_reads_the_crl_and_its_own_account_but_no_other_verifier(
        published: IssuedCRLInfo, slapd: LocalSlapd) -> None:
    rc, _dns, ldif = _search(slapd, TOKYO_DN, CRL_ATTR, ARL_ATTR, as_="alice", scope="base")
    assert rc == 0
    assert [hashlib.sha256(v).digest() for v in _values(ldif, CRL_ATTR)] == [published.sha256]
    assert _values(ldif, ARL_ATTR)

    rc, dns, ldif = _search(slapd, LDAP_BASE, "(objectClass=*)", "*", as_="alice")
    assert rc == 0 and normal_dn(TOKYO_DN) in dns
    alice, bob = (normal_dn(verifier_accounts.account_dn(n, LDAP_BASE)) for n in VERIFIERS)
    assert _under_verifiers(dns) == [alice]
    assert "member:" not in ldif.lower() and "userpassword" not in ldif.lower()
    assert _values(ldif, verifier_accounts.CERT_ATTRIBUTE)  # its own certificate
    for dn in (bob, normal_dn(GROUP_DN), normal_dn(VERIFIERS_DN)):
        rc, dns, _ = _search(slapd, dn, "*", as_="alice", scope="base")
        assert (rc, dns) == (32, []), f"{dn}: {rc}"


DELTA_ATTR = "deltaRevocationList;binary"


def test_the_delta_crl_is_published_for_verifiers_only(installation: Installation, tokyo_crl: IssuedCRLInfo,
                                                       slapd: LocalSlapd) -> None:
    """deltaRevocationList lives under the CRL's rule (repository/acl.py): a verifier reads it,
    anonymous neither reads it, asks for it by name, nor finds the entry by filtering on it."""
    assert installation.keys is not None
    delta = issue_list(installation.engine, installation.keys, installation.data_dir, "tokyo", ListType.DELTA,
                       now=NOW + dt.timedelta(minutes=5), time_guard=NO_NTP)
    publisher = LdapPublisher(installation.engine, slapd.endpoint(timeout=5), LDAP_BASE, installation.data_dir)
    publisher.requeue_newest(NOW)
    report = publisher.round(NOW + dt.timedelta(minutes=5))
    assert report.ok, report
    assert any(f"tokyo DELTA #{delta.number}" in line for line in report.published), report.published
    with Directory(slapd.endpoint()) as root:
        verifier_accounts.sync(installation.engine, root, LDAP_BASE, now=NOW)

    rc, _dns, ldif = _search(slapd, TOKYO_DN, DELTA_ATTR, CRL_ATTR, as_="alice", scope="base")
    assert rc == 0
    assert [hashlib.sha256(v).digest() for v in _values(ldif, DELTA_ATTR)] == [delta.sha256]
    assert [hashlib.sha256(v).digest() for v in _values(ldif, CRL_ATTR)] == [tokyo_crl.sha256]
    parsed = x509.load_der_x509_crl(_values(ldif, DELTA_ATTR)[0])
    assert parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == tokyo_crl.number

    for asked in (("*",), (DELTA_ATTR,), ("deltaRevocationList",), ("2.5.4.53",)):
        rc, dns, ldif = _search(slapd, TOKYO_DN, *asked, scope="base")
        assert rc == 0 and dns == [normal_dn(TOKYO_DN)], asked
        assert "deltarevocationlist" not in ldif.lower(), f"anonymous read the delta CRL asking for {asked}"
    rc, dns, _ = _search(slapd, LDAP_BASE, "(deltaRevocationList;binary=*)", "1.1")
    assert (rc, dns) == (0, []), "anonymous can tell which entries have a delta CRL"
    rc, dns, _ = _search(slapd, LDAP_BASE, "(deltaRevocationList;binary=*)", "1.1", as_="alice")
    assert rc == 0 and dns == [normal_dn(TOKYO_DN)]
