"""After a rollover the CA's directory entry holds, beside the current key's CRL, the list its old
key signs (ca.crl.old_keys): what a relying party fetches from LDAP lets `openssl verify
-crl_check` with default flags check an old-key certificate under the old self-signed
certificate, and the newest number is still the current key's."""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography import x509

from ca import hierarchy
from ca.enums import CertKind
from ca.hsm.signer import KeyAlgorithm
from ca.scheduler import Scheduler
from ca.storage.engine import session_scope
from ca.storage.store import Store
from repository.publisher import LdapPublisher
from repository.readback import held_lists
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.crl_tools import crl_pem
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.settings import LDAP_BASE, NOW
from support.tools import pem

TOKYO_DN = "CN=Governor of Tokyo,OU=Tokyo,OU=Prefectural CA,O=JPKI,C=JP"
ROLLOVER = NOW + dt.timedelta(days=3)


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path / "site") as made:
        yield made


def _values(slapd: LocalSlapd, dn: str, attr: str, tmp: Path) -> list[bytes]:
    """ldapsearch (as the directory's root, past the verifiers' ACL) for every value of `attr`."""
    res = slapd.tool("ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-b", dn, "-s", "base", "-t", "-T", str(tmp), attr)
    values = []
    for line in res.stdout.decode().splitlines():
        if line.lower().startswith(attr.lower() + ":< file://"):
            path = Path(line.split("file://", 1)[1])
            values.append(path.read_bytes())
            path.unlink()
    return values


def test_the_entry_holds_the_old_keys_crl_beside_the_current_one(installation: Installation, slapd: LocalSlapd,
                                                                 tmp_path: Path) -> None:
    engine, keys = installation.engine, installation.keys
    assert keys is not None
    publisher = LdapPublisher(engine, slapd.endpoint(timeout=3), LDAP_BASE, installation.data_dir)
    scheduler = Scheduler(engine, keys, installation.data_dir, time_guard=NO_NTP)
    with session_scope(engine) as s:
        store = Store(s)
        tokyo = store.ca("tokyo")
        old_root = x509.load_der_x509_certificate(store.certificates(issuer=tokyo, kinds=[CertKind.SELF_SIGNED])[0].der)
        leaf = x509.load_der_x509_certificate(store.certificates(issuer=tokyo, kinds=[CertKind.SUBSCRIBER])[0].der)
        hierarchy.rollover(hierarchy.Context(store=store, keys=keys, now=ROLLOVER, actor="test",
                                             algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "tokyo")
    scheduler.tick(ROLLOVER + dt.timedelta(hours=1))
    publisher.round(ROLLOVER + dt.timedelta(hours=1), side_work=False)

    values = _values(slapd, TOKYO_DN, "certificateRevocationList;binary", tmp_path)
    numbers = sorted(asn1_crl.CertificateList.load(v).crl_number_value.native for v in values)
    assert len(values) == 2 and numbers[0] + 1 == numbers[1]
    arls = _values(slapd, TOKYO_DN, "authorityRevocationList;binary", tmp_path)
    assert len(arls) == 2
    # what `revoca status` compares with the archive: the current key's list, the higher number
    held = {(h.ca_name, h.list_type.value): h.number for h in held_lists(engine, slapd.endpoint(timeout=3), LDAP_BASE)}
    assert held[("tokyo", "crl")] == numbers[1]

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "old-root.pem").write_bytes(pem(old_root))
        (d / "crl.pem").write_bytes(b"".join(crl_pem(v) for v in values))  # both values, as fetched
        (d / "leaf.pem").write_bytes(pem(leaf))
        run = subprocess.run(["openssl", "verify", "-crl_check", "-no-CApath", "-no-CAstore", "-CAfile",
                              str(d / "old-root.pem"), "-CRLfile", str(d / "crl.pem"), "-attime",
                              str(int((ROLLOVER + dt.timedelta(hours=2)).timestamp())), str(d / "leaf.pem")],
                             capture_output=True, text=True, check=False)
    assert run.returncode == 0 and run.stdout.rstrip().endswith(": OK"), run.stdout + run.stderr

    # the next round replaces both values with the next pair
    scheduler.tick(ROLLOVER + dt.timedelta(days=1, hours=1))
    publisher.round(ROLLOVER + dt.timedelta(days=1, hours=1), side_work=False)
    again = sorted(asn1_crl.CertificateList.load(v).crl_number_value.native
                   for v in _values(slapd, TOKYO_DN, "certificateRevocationList;binary", tmp_path))
    assert len(again) == 2 and again[0] > numbers[1]


def test_a_list_due_just_after_a_rollover_is_published_once(installation: Installation, slapd: LocalSlapd,
                                                             tmp_path: Path) -> None:
    """The list waiting in the queue when the key rolls over is itself the retired key's newest:
    published once, not twice (the directory refused the doubled value: attributeOrValueExists)."""
    engine, keys = installation.engine, installation.keys
    assert keys is not None
    publisher = LdapPublisher(engine, slapd.endpoint(timeout=3), LDAP_BASE, installation.data_dir)
    Scheduler(engine, keys, installation.data_dir,
              time_guard=NO_NTP).tick(ROLLOVER - dt.timedelta(hours=1))  # queued, not yet published
    with session_scope(engine) as s:
        hierarchy.rollover(hierarchy.Context(store=Store(s), keys=keys, now=ROLLOVER, actor="test",
                                             algorithm=KeyAlgorithm.P256, time_guard=NO_NTP), "tokyo")
    publisher.round(ROLLOVER + dt.timedelta(minutes=1), side_work=False)
    values = _values(slapd, TOKYO_DN, "certificateRevocationList;binary", tmp_path)
    assert len(values) == 1
