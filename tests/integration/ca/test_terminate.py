"""`revoca ca terminate` (seed 004 5.8): refused while a subscriber certificate is valid, done once
every one is revoked or expired; the final lists checked with openssl, the archive exported and
checked with its own verify.sh, and the scheduler issues nothing more for the CA."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509

from ca import health
from ca.crl.issue import issue_list
from ca.enums import CAStatus, CertKind, ListType
from ca.errors import AlreadyExists, InvalidInput
from ca.lifecycle.termination import terminate
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import revoke_certificate
from ca.scheduler import Scheduler
from ca.storage.engine import session_scope
from ca.storage.revocations import RevocationStore
from ca.storage.store import Store
from ca.tsa.certificate import ensure_certificate
from ca.tsa.known import tsa_certificates
from ca.tsa.stamper import CurrentAuthority

from support.clock import NO_NTP
from support.crl_tools import crl_pem, openssl_crl_verify
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.ra_fixtures import audit_events
from support.settings import NOW
from support.tools import pem, revoca

REAL_NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def installation(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path / "site") as made:
        yield made


def _revoke(engine: sa.Engine, ca: str, rows: list[int], now: dt.datetime) -> None:
    with session_scope(engine) as s:
        store = RevocationStore(s)
        for cert in store.certificates(issuer=store.ca(ca), kinds=[CertKind.SUBSCRIBER]):
            if cert.id in rows:
                revoke_certificate(store, cert, RevocationReason.CESSATION_OF_OPERATION, now)


def _subscriber_ids(engine: sa.Engine, ca: str) -> list[int]:
    with session_scope(engine) as s:
        store = Store(s)
        return [c.id for c in store.certificates(issuer=store.ca(ca), kinds=[CertKind.SUBSCRIBER])]


def _final(engine: sa.Engine, data_dir: Path, ca: str, list_type: ListType) -> tuple[bytes, dt.datetime]:
    with session_scope(engine) as s:
        store = Store(s)
        row = store.issued_crl(store.ca(ca), list_type)
        return (data_dir / row.path).read_bytes(), row.next_update


def test_terminate_refuses_while_a_certificate_is_valid_and_ends_the_ca_after(installation: Installation,
                                                                              tmp_path: Path) -> None:
    engine, keys, data_dir = installation.engine, installation.keys, installation.data_dir
    ensure_certificate(installation.settings, engine, keys, now=REAL_NOW - dt.timedelta(minutes=5), actor="test")
    scheduler = Scheduler(engine, keys, data_dir, time_guard=NO_NTP)
    scheduler.tick(REAL_NOW)
    out = tmp_path / "export"
    subscribers = _subscriber_ids(engine, "hokkaido")
    assert len(subscribers) == 25

    with pytest.raises(InvalidInput, match=r"CA hokkaido cannot be terminated: 25 subscriber certificate\(s\) are "
                                           r"still valid .* nothing was changed"):
        terminate(engine, keys, data_dir, "hokkaido", now=REAL_NOW, revoke_cross=True, actor="test", export_to=out,
                  time_guard=NO_NTP)
    _revoke(engine, "hokkaido", subscribers[:-1], REAL_NOW)
    with pytest.raises(InvalidInput, match=r"1 subscriber certificate\(s\) are still valid"):
        terminate(engine, keys, data_dir, "hokkaido", now=REAL_NOW, revoke_cross=True, actor="test", export_to=out,
                  time_guard=NO_NTP)
    refused = audit_events(engine, "ca.terminated")
    assert [(e.result, json.loads(e.detail)["valid_certificates"]) for e in refused] == [("failure", 25),
                                                                                         ("failure", 1)]
    with session_scope(engine) as s:
        assert Store(s).ca("hokkaido").status is CAStatus.ACTIVE
    assert not out.exists()

    _revoke(engine, "hokkaido", subscribers[-1:], REAL_NOW)
    with session_scope(engine) as s:
        tsa = tsa_certificates(s)
    done = terminate(engine, keys, data_dir, "hokkaido", now=REAL_NOW + dt.timedelta(minutes=1), revoke_cross=True,
                     actor="alice+bob+carol", export_to=out, stamper=CurrentAuthority(keys, NO_NTP),
                     tsa_certificates=tsa,
                     time_guard=NO_NTP)
    assert done.cross_revoked == 2 and done.notice
    with session_scope(engine) as s:
        store = Store(s)
        hokkaido = store.ca("hokkaido")
        assert hokkaido.status is CAStatus.TERMINATED
        assert hokkaido.terminated_at == REAL_NOW + dt.timedelta(minutes=1)
        root = x509.load_der_x509_certificate(store.certificates(issuer=hokkaido, kinds=[CertKind.SELF_SIGNED])[0].der)
        revoked_leaf = x509.load_der_x509_certificate(store.certificates(issuer=hokkaido,
                                                                         kinds=[CertKind.SUBSCRIBER])[0].der)
        bridge_root = x509.load_der_x509_certificate(store.certificates(issuer=store.bridge(),
                                                                        kinds=[CertKind.SELF_SIGNED])[0].der)
        crosses = {(c.issuer_ca_id == hokkaido.id): c.serial for c in store.certificates(kinds=[CertKind.CROSS])
                   if hokkaido.id in (c.issuer_ca_id, c.subject_ca_id)}

    # the final CRL: every subscriber certificate, nextUpdate at the end of the CA's own certificate
    crl, next_update = _final(engine, data_dir, "hokkaido", ListType.CRL)
    assert next_update == root.not_valid_after_utc
    text = openssl_crl_verify(crl, root)
    assert text.count("Serial Number:") == 25
    assert f"Next Update: {root.not_valid_after_utc:%b %e %H:%M:%S %Y} GMT" in text
    arl, arl_next = _final(engine, data_dir, "hokkaido", ListType.ARL)
    assert arl_next == next_update
    assert format(crosses[True], "X") in openssl_crl_verify(arl, root).replace(":", "")
    bridge_arl, _ = _final(engine, data_dir, "bridge", ListType.ARL)  # lists the bridge's cross certificate to it
    assert format(crosses[False], "X") in openssl_crl_verify(bridge_arl, bridge_root).replace(":", "")
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "final.pem").write_bytes(crl_pem(crl))
    (tmp_path / "leaf.pem").write_bytes(pem(revoked_leaf))
    verify = subprocess.run(["openssl", "verify", "-crl_check", "-no-CApath", "-no-CAstore", "-CAfile",
                             str(tmp_path / "root.pem"), "-CRLfile", str(tmp_path / "final.pem"),
                             str(tmp_path / "leaf.pem")], capture_output=True, text=True, check=False)
    assert "certificate revoked" in verify.stdout + verify.stderr

    # the sealed archive, exported and checked offline with its own script
    assert (out / "verify.sh").exists()
    checked = subprocess.run(["sh", str(out / "verify.sh")], capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and checked.stdout.startswith("verified:"), checked.stdout + checked.stderr
    assert [e.result for e in audit_events(engine, "ca.terminated")][-1] == "success"

    # shown as terminated: `revoca ca list`, and the line `revoca status` prints
    code, out, err = revoca(installation.env(), "ca", "list", "--json")
    assert code == 0, err
    listed = {row["name"]: row for row in json.loads(out)}
    assert listed["hokkaido"]["status"] == "terminated" and listed["hokkaido"]["terminated_at"]
    assert listed["tokyo"]["status"] == "active" and listed["tokyo"]["terminated_at"] is None
    assert health.terminated_cas(engine) == [("hokkaido", REAL_NOW + dt.timedelta(minutes=1))]

    # nothing more for it: the scheduler passes it by, and a second termination is refused
    later = scheduler.tick(REAL_NOW + dt.timedelta(days=2))
    assert {i.ca_name for i in later.issued} >= {"bridge", "tokyo", "osaka"}
    assert "hokkaido" not in {i.ca_name for i in later.issued}
    assert not [w for w in later.warnings if "hokkaido" in w]
    with pytest.raises(AlreadyExists, match=r"CA hokkaido was terminated already"):
        terminate(engine, keys, data_dir, "hokkaido", now=REAL_NOW, revoke_cross=True, actor="test",
                  export_to=tmp_path / "again", time_guard=NO_NTP)


def test_terminate_once_every_certificate_expired_keeps_cross_certificates(installation: Installation,
                                                                           tmp_path: Path) -> None:
    engine, keys, data_dir = installation.engine, installation.keys, installation.data_dir
    issue_list(engine, keys, data_dir, "osaka", ListType.CRL, now=NOW, time_guard=NO_NTP)
    with session_scope(engine) as s:
        store = Store(s)
        last = max(c.not_after for c in store.certificates(issuer=store.ca("osaka"), kinds=[CertKind.SUBSCRIBER]))
    before_expiry = last - dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match=r"25 subscriber certificate\(s\) are still valid"):
        terminate(engine, keys, data_dir, "osaka", now=before_expiry, revoke_cross=False, actor="test",
                  export_to=tmp_path / "x", time_guard=NO_NTP)
    after = last + dt.timedelta(days=1)  # the injected clock: every subscriber certificate has expired
    done = terminate(engine, keys, data_dir, "osaka", now=after, revoke_cross=False, actor="test",
                     export_to=tmp_path / "export", time_guard=NO_NTP)
    assert (done.cross_revoked, done.cross_kept) == (0, 2)
    with session_scope(engine) as s:
        store = Store(s)
        assert store.ca("osaka").status is CAStatus.TERMINATED
        assert not [c for c in store.certificates(kinds=[CertKind.CROSS]) if c.revocation is not None]
