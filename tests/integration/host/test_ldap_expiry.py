"""Expiry warnings from what the LDAP repository holds, not only from the archive (issue 15).

Found: with a clock 50 h ahead the archive's newest lists looked fine while the lists slapd
served were about to expire, and `revoca status` said nothing.  Here a real slapd holds a stale
list (published, then a newer one archived but never published) and an expired one; `revoca
status` reads them back, and openssl reads the same attribute values to check the figures.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca import health
from ca.crl.issue import issue_all
from ca.enums import ListType
from ca.scheduler import expiry_warnings, list_statuses
from ca.status_page.metrics import RevocaCollector
from ca.storage.reporting import ListStatus
from repository.publisher import LdapPublisher
from repository.readback import held_lists
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE
from support.tools import revoca

TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates, slapd: LocalSlapd) -> Iterator[Installation]:
    """A demo installation whose data directory holds `slapd` (tmp_path/var/ldap)."""
    with demo_installation(ceremony_templates, "sqlite", tmp_path) as made:
        yield made


def status_lines(installation: Installation, slapd: LocalSlapd) -> list[str]:
    _, _, err = revoca(installation.env(REVOCA_REPOSITORY_PORT=str(slapd.port), REVOCA_REPOSITORY_BASE_DN=LDAP_BASE),
                       "status")
    return [line for line in err.splitlines() if "in LDAP (" in line or "read back" in line]


def metric_samples(installation: Installation, slapd: LocalSlapd,
                   now: dt.datetime) -> dict[tuple[str, tuple[str, ...]], float]:
    """What /metrics' collector reports at `now`, by series name and label values."""
    collector = RevocaCollector(installation.engine, clock=lambda: now,
                                held_lists=lambda engine: held_lists(engine, slapd.endpoint(timeout=5), LDAP_BASE))
    return {(sample.name, tuple(sample.labels.values())): sample.value
            for metric in collector.collect() for sample in metric.samples}


def openssl_view(slapd: LocalSlapd, dn: str, attr: str) -> tuple[int, dt.datetime]:
    """The CRL number and nextUpdate of the value slapd serves, by ldapsearch and openssl."""
    out = slapd.tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", dn, "-s", "base", attr).stdout.decode()
    (value,) = re.findall(rf"^{re.escape(attr)}:: (\S+)$", out, re.M)
    shown = subprocess.run(["openssl", "crl", "-inform", "DER", "-noout", "-crlnumber", "-nextupdate"],
                           input=base64.b64decode(value), capture_output=True, check=True).stdout.decode()
    number = int(re.search(r"crlNumber=(?:0x)?([0-9A-Fa-f]+)", shown)[1], 16)  # type: ignore[index]
    next_update = dt.datetime.strptime(re.search(r"nextUpdate=(.+)", shown)[1].strip(),  # type: ignore[index]
                                       "%b %d %H:%M:%S %Y GMT").replace(tzinfo=dt.UTC)
    return number, next_update


def test_status_reads_back_a_stale_and_expired_list_from_slapd(installation: Installation, slapd: LocalSlapd) -> None:
    assert installation.keys is not None
    real = dt.datetime.now(dt.UTC).replace(microsecond=0)
    engine, keys, data_dir = installation.engine, installation.keys, installation.data_dir
    publisher = LdapPublisher(engine, slapd.endpoint(timeout=5), LDAP_BASE, data_dir)
    # #1 valid for 2 hours from 3 hours ago, published; #2 archived an hour ago, never published
    issue_all(engine, keys, data_dir, now=real - dt.timedelta(hours=3), validity=dt.timedelta(hours=2),
              time_guard=NO_NTP)
    assert publisher.round(real - dt.timedelta(hours=3)).ok
    issue_all(engine, keys, data_dir, now=real - dt.timedelta(hours=1), time_guard=NO_NTP)
    newest = {(s.ca_name, s.list_type): s for s in list_statuses(engine)}
    assert newest["tokyo", ListType.CRL].number == 2
    # the archive alone sees nothing wrong with tokyo's lists
    assert not [w for w in expiry_warnings(engine, real) if w.startswith("tokyo")]

    held = {(h.ca_name, h.list_type): h for h in held_lists(engine, slapd.endpoint(timeout=5), LDAP_BASE)}
    tokyo = held["tokyo", ListType.CRL]
    assert (tokyo.number, tokyo.next_update) == openssl_view(slapd, TOKYO_DN, "certificateRevocationList;binary")
    assert (tokyo.number, tokyo.next_update) == (1, real - dt.timedelta(hours=1))

    samples = metric_samples(installation, slapd, real)
    assert samples["revoca_ldap_read_back_up", ()] == 1
    assert samples["revoca_ldap_list_number", ("tokyo", "crl")] == 1
    assert samples["revoca_crl_number", ("tokyo", "crl")] == 2  # what the archive says, beside it
    assert samples["revoca_ldap_list_next_update_seconds", ("tokyo", "crl")] == -3600

    lines = status_lines(installation, slapd)
    assert f"ERROR: tokyo CRL #1 in LDAP ({tokyo.dn}) expired at {real - dt.timedelta(hours=1):%Y-%m-%d %H:%M:%SZ}: " \
           "relying parties cannot check revocation; issue and publish one now (`revoca crl issue`)" in lines
    assert any(line.startswith(f"ERROR: tokyo CRL in LDAP ({tokyo.dn}): the directory holds #1, older than the "
                               "archive's #2") for line in lines), lines
    assert len([line for line in lines if "tokyo ARL" in line]) == 2  # the ARL likewise

    assert publisher.round(real).ok  # published: nothing left to say about the directory
    assert status_lines(installation, slapd) == []


def test_a_list_in_ldap_close_to_expiry_is_a_warning_and_a_fresh_one_in_publication_is_not() -> None:
    now = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
    archived = [ListStatus("tokyo", ListType.CRL, 5, now - dt.timedelta(hours=2), now + dt.timedelta(hours=70))]
    held = [health.HeldList("tokyo", ListType.CRL, "cn=tokyo", 5, now + dt.timedelta(hours=10))]
    found = health.published_list_findings(archived, held, now, warn_before=dt.timedelta(hours=24))
    assert found.errors == ()
    assert found.warnings == ("tokyo CRL #5 in LDAP (cn=tokyo) expires in 10.0 h (nextUpdate 2026-12-03 19:00:00Z)",)
    # a newer number archived 5 minutes ago is a publication in progress, not an error
    archived = [ListStatus("tokyo", ListType.CRL, 6, now - dt.timedelta(minutes=5), now + dt.timedelta(hours=72))]
    found = health.published_list_findings(archived, held, now, warn_before=dt.timedelta(hours=1))
    assert found == health.ResponderFindings()
