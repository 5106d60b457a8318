"""Audit checkpoints, pruning and the archive, time-stamped by revoca's own TSA (key in SoftHSM2).

Tokens are checked both by revoca and by `openssl ts -verify`; tampering goes straight at
the database or the files, behind revoca's back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca import audit, ceremony
from ca.archive.stamping import stamp_round
from ca.archive.verify import verify_item
from ca.audit import checkpoints, history_seal
from ca.audit.chain import link
from ca.audit.keeper import AuditKeeper
from ca.audit.prune import prune
from ca.audit.verify import Report, verify
from ca.config import Settings
from ca.crl.issue import issue_all
from ca.enums import ListType, Role
from ca.errors import IntegrityFailure, InvalidInput
from ca.hsm import token_for
from ca.hsm.client import HSMClient
from ca.hsm.token import write_softhsm_conf
from ca.officers.credentials import hash_password
from ca.scheduler import Scheduler
from ca.storage.engine import make_engine, session_scope
from ca.storage.models import AuditCheckpoint, AuditEvent, IssuedCRL, OCSPQuery
from ca.storage.store import Store
from ca.tsa.certificate import ensure_certificate
from ca.tsa.known import token_checker
from ca.tsa.stamper import CurrentAuthority

from support.clock import NO_NTP
from support.database import Databases
from support.installation import CeremonyTemplates
from support.officers import standard_cast
from support.settings import make_settings
from support.tools import activated_hsm_service, damage_last_byte, end_ceremony, officers_client, revoca, write_config

REAL_NOW = dt.datetime.now(dt.UTC)
PASSWORD = "auditor-password-1"


class TsaTemplates:
    """The demo ceremony with a TSA certificate issued (its RSA key generated in the token by the HSM
    service, as key managers would), made once per database kind for this module; each test gets a
    copy of its own, database and data directory, as conftest's `initialized` copies the ceremony
    (support.installation), rather than generating an RSA key of its own first."""

    def __init__(self, root: Path, ceremonies: CeremonyTemplates) -> None:
        self.root, self.ceremonies = root, ceremonies
        self.made: dict[str, tuple[Path, str, ceremony.CeremonyResult]] = {}  # kind -> data dir, URL, result
        self.databases = contextlib.ExitStack()

    def get(self, kind: str) -> tuple[Path, str, ceremony.CeremonyResult]:
        if kind not in self.made:
            root = self.root / kind
            root.mkdir()
            url = self.databases.enter_context(
                self.ceremonies.databases.fresh(kind, root, template=self.ceremonies.database(kind)))
            settings = make_settings(root, url)
            engine = make_engine(url)
            try:
                result = self.ceremonies.restore(kind, settings, engine, database_copied=True)
                with activated_hsm_service(settings, engine, result.shares) as socket:
                    officers = officers_client(socket, settings)  # the TSA key and certificate: a ceremony act
                    ensure_certificate(settings, engine, officers, now=REAL_NOW - dt.timedelta(minutes=5),
                                       actor="test")
                    end_ceremony(officers, engine)  # its audit records are in before the tests count theirs
            finally:
                engine.dispose()  # nobody is connected to a database PostgreSQL copies
            self.made[kind] = (settings.data_dir, url, result)
        return self.made[kind]

    def restore(self, kind: str, settings: Settings) -> ceremony.CeremonyResult:
        """The template's data directory (token, shares, TSA certificate files) copied into `settings`'."""
        source, url, result = self.get(kind)
        shutil.copytree(source, settings.data_dir, symlinks=True)
        write_softhsm_conf(settings.softhsm_conf)  # tokendir = the copied tokens/, not the template's
        token_for(settings)._lib().reinitialize()  # SoftHSM2 lists a new token only after C_Initialize
        return dataclasses.replace(result, demo_files=tuple(settings.data_dir / path.relative_to(source)
                                                            for path in result.demo_files))

    def close(self) -> None:
        self.ceremonies.databases.stop_making()  # no copy of a template is being made while it is dropped
        self.databases.close()


@pytest.fixture(scope="module")
def tsa_templates(tmp_path_factory: pytest.TempPathFactory,
                  ceremony_templates: CeremonyTemplates) -> Iterator[TsaTemplates]:
    templates = TsaTemplates(tmp_path_factory.mktemp("tsa-templates"), ceremony_templates)
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases,
           tsa_templates: TsaTemplates) -> Iterator[str]:
    """A database of each kind of the test's own: a copy of the template's (the ceremony and the TSA certificate)."""
    with databases.fresh(request.param, tmp_path, template=tsa_templates.get(request.param)[1]) as url:
        yield url


@pytest.fixture
def initialized(settings: Settings, engine: sa.Engine, tsa_templates: TsaTemplates) -> ceremony.CeremonyResult:
    """conftest's finished demo ceremony, with this module's TSA certificate and key already in it."""
    return tsa_templates.restore("sqlite" if engine.dialect.name == "sqlite" else "postgresql", settings)


@pytest.fixture
def keys(settings: Settings, engine: sa.Engine, hsm_socket: Path) -> HSMClient:
    client = HSMClient(hsm_socket)
    found, issued = ensure_certificate(settings, engine, client, now=REAL_NOW, actor="test")
    assert not issued and found.key_label  # the template's, its key in the copied token
    return client


def _record(engine: sa.Engine, n: int, *, at: dt.datetime = REAL_NOW) -> None:
    for i in range(n):
        with session_scope(engine) as s:
            audit.record(s, "test.event", actor="tester", at=at + dt.timedelta(seconds=i), n=i)


def _head(engine: sa.Engine) -> int:
    """The ceremony and the TSA certificate left records of their own: positions are relative to this."""
    with session_scope(engine, readonly=True) as s:
        return s.scalar(sa.select(sa.func.max(AuditEvent.seq))) or 0


def _checkpoint(engine: sa.Engine, keys: HSMClient, reason: str = "periodic") -> int:
    with session_scope(engine) as s:
        return checkpoints.take(s, CurrentAuthority(keys, NO_NTP), reason, REAL_NOW).seq


def _verify(engine: sa.Engine) -> Report:
    with session_scope(engine, readonly=True) as s:
        return verify(s, token_checker(s))


def _sql(engine: sa.Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def _bridge_pem(engine: sa.Engine, path: Path) -> Path:
    with session_scope(engine, readonly=True) as s:
        store = Store(s)
        bridge = store.bridge()
        der = store.self_signed_der(bridge, store.current_key(bridge))
    path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
    return path


def test_a_checkpoint_token_verifies_in_revoca_and_in_openssl(engine: sa.Engine, keys: HSMClient,
                                                               tmp_path: Path) -> None:
    _record(engine, 5)
    assert _checkpoint(engine, keys) == _head(engine)
    report = _verify(engine)
    assert report.ok, report.findings
    assert report.checkpoints == 1 and report.newest_stamp is not None
    assert abs((report.newest_stamp - dt.datetime.now(dt.UTC)).total_seconds()) < 600

    with session_scope(engine, readonly=True) as s:
        cp = s.scalars(sa.select(AuditCheckpoint)).one()
        (tmp_path / "cp.tst").write_bytes(cp.time_stamp.token)
        imprint = checkpoints.of(cp)
    cmd = ["openssl", "ts", "-verify", "-digest", imprint.hex(), "-in", str(tmp_path / "cp.tst"), "-token_in",
           "-CAfile", str(_bridge_pem(engine, tmp_path / "bridge.pem"))]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    wrong = subprocess.run([*cmd[:4], hashlib.sha256(b"other").hexdigest(), *cmd[5:]], capture_output=True, text=True)
    assert wrong.returncode != 0


def test_a_rewritten_chain_is_caught_by_the_checkpoint(engine: sa.Engine, keys: HSMClient) -> None:
    base = _head(engine)
    _record(engine, 10)
    _checkpoint(engine, keys)
    _record(engine, 5)
    # The attacker edits seq base+3 and re-hashes everything after it, head included: the chain
    # is self-consistent again, but no longer what the time-stamped checkpoint saw.
    with engine.begin() as conn:
        rows = conn.execute(sa.select(AuditEvent.__table__).order_by(AuditEvent.seq)).mappings().all()
        previous = bytes(32)
        for row in rows:
            detail = json.dumps({"n": 999}) if row["seq"] == base + 3 else row["detail"]
            at = row["occurred_at"] if row["occurred_at"].tzinfo else row["occurred_at"].replace(tzinfo=dt.UTC)
            previous = link(previous, row["seq"], at, row["event_type"], row["result"], row["actor"], detail)
            conn.execute(sa.update(AuditEvent.__table__).where(AuditEvent.__table__.c.seq == row["seq"])
                         .values(detail=detail, chain_hash=previous))
        conn.execute(sa.text("UPDATE audit_head SET chain_hash = :h"), {"h": previous})
    report = _verify(engine)
    assert not report.ok
    assert report.findings[0].seq == base + 10 and "time-stamped checkpoint" in report.findings[0].problem


def test_truncation_before_a_checkpoint_is_caught_even_with_the_head_rewound(engine: sa.Engine,
                                                                            keys: HSMClient) -> None:
    _record(engine, 10)
    ten = _checkpoint(engine, keys)
    with session_scope(engine, readonly=True) as s:
        seven = s.scalars(sa.select(AuditEvent).where(AuditEvent.seq == ten - 3)).one().chain_hash
    _sql(engine, "DELETE FROM audit_events WHERE seq > :s", s=ten - 3)
    _sql(engine, "UPDATE audit_head SET seq = :s, chain_hash = :h", s=ten - 3, h=seven)
    problem = str(_verify(engine).findings[0])
    assert f"checkpoint covers seq {ten}" in problem and "truncated" in problem


def test_a_damaged_checkpoint_token_is_reported(engine: sa.Engine, keys: HSMClient) -> None:
    _record(engine, 3)
    seq = _checkpoint(engine, keys)
    with session_scope(engine) as s:
        cp = s.scalars(sa.select(AuditCheckpoint)).one()
        token = bytearray(cp.time_stamp.token)
        token[-10] ^= 0xFF  # inside the signature
        cp.time_stamp.token = bytes(token)
    finding = _verify(engine).findings[0]
    assert finding.seq == seq and "bad time-stamp" in finding.problem


def _start_over(engine: sa.Engine) -> None:
    """An empty chain, so that the records these tests make old are its oldest."""
    _sql(engine, "DELETE FROM audit_events")
    _sql(engine, "UPDATE audit_head SET seq = 0, chain_hash = :h", h=bytes(32))


def test_pruning_leaves_an_anchor_from_which_the_rest_verifies(settings: Settings, engine: sa.Engine,
                                                               keys: HSMClient) -> None:
    old = REAL_NOW - dt.timedelta(days=800)
    _start_over(engine)
    _record(engine, 6, at=old)
    _record(engine, 4)
    stamper = CurrentAuthority(keys, NO_NTP)
    with session_scope(engine) as s, pytest.raises(InvalidInput, match="retention"):
        prune(s, stamper, token_checker(s), before=REAL_NOW - dt.timedelta(days=10),
              retention=dt.timedelta(days=365), now=REAL_NOW, actor="aud")
    _stamp_all(settings, engine, keys)  # only archived records are pruned (test_audit_coverage.py)
    with session_scope(engine) as s:
        done = prune(s, stamper, token_checker(s), before=REAL_NOW - dt.timedelta(days=400),
                     retention=dt.timedelta(days=365), now=REAL_NOW, actor="aud")
    assert (done.count, done.through_seq) == (6, 6)
    report = _verify(engine)
    assert report.ok, report.findings
    assert (report.first_seq, report.records) == (7, 5)  # 4 kept and the audit.pruned record
    with session_scope(engine, readonly=True) as s:
        assert s.scalar(sa.select(sa.func.min(AuditEvent.seq))) == 7
    _sql(engine, "DELETE FROM audit_events WHERE seq = 7")  # deleting past the anchor is still caught
    assert _verify(engine).findings[0].seq == 8


def test_a_broken_chain_is_never_pruned(engine: sa.Engine, keys: HSMClient) -> None:
    _start_over(engine)
    _record(engine, 5, at=REAL_NOW - dt.timedelta(days=800))
    _sql(engine, "UPDATE audit_events SET actor = 'x' WHERE seq = 2")
    with session_scope(engine) as s, pytest.raises(IntegrityFailure, match="seq 2"):
        prune(s, CurrentAuthority(keys, NO_NTP), token_checker(s), before=REAL_NOW - dt.timedelta(days=400),
              retention=dt.timedelta(days=365), now=REAL_NOW, actor="aud")
    with session_scope(engine, readonly=True) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 5


# --- the archive ---------------------------------------------------------------------------------------


def _issue_lists(settings: Settings, engine: sa.Engine, keys: HSMClient) -> None:
    issue_all(engine, keys, settings.data_dir, now=REAL_NOW, time_guard=NO_NTP)


def _stamp_all(settings: Settings, engine: sa.Engine, keys: HSMClient, now: dt.datetime = REAL_NOW) -> int:
    total = 0
    while True:
        with session_scope(engine) as s:
            stamps = stamp_round(s, CurrentAuthority(keys, NO_NTP), settings.data_dir, now)
        if not stamps:
            return total
        total += len(stamps)


def _archive_verify(settings: Settings, engine: sa.Engine, ref: str):  # type: ignore[no-untyped-def]
    with session_scope(engine, readonly=True) as s:
        return verify_item(s, settings.data_dir, ref, token_checker(s))


def test_archive_items_are_stamped_and_tampering_is_found(settings: Settings, engine: sa.Engine,
                                                          keys: HSMClient) -> None:
    _issue_lists(settings, engine, keys)
    with session_scope(engine) as s:
        s.add_all(OCSPQuery(at=REAL_NOW - dt.timedelta(hours=1), channel="signed", nonce=False,
                            response_status="successful", answers=f"{i:x}=good") for i in range(30))
    assert _stamp_all(settings, engine, keys) > 10
    assert _stamp_all(settings, engine, keys) == 0  # nothing is stamped twice

    with session_scope(engine, readonly=True) as s:
        crl = s.scalars(sa.select(IssuedCRL).where(IssuedCRL.list_type == ListType.CRL)).first()
        assert crl is not None
        crl_id, crl_path = crl.id, settings.data_dir / crl.path
    verdict = _archive_verify(settings, engine, f"crl:{crl_id}")
    assert verdict.intact and verdict.stamped_at is not None
    assert _archive_verify(settings, engine, "certificate:1").intact
    assert _archive_verify(settings, engine, "ocsp-queries:17").ref == "ocsp-queries:1..30"

    data = bytearray(crl_path.read_bytes())
    data[-5] ^= 1
    crl_path.write_bytes(bytes(data))
    verdict = _archive_verify(settings, engine, f"crl:{crl_id}")
    assert not verdict.intact and "differs from what was stamped" in (verdict.problem or "")

    _sql(engine, "UPDATE ocsp_queries SET response_status = 'unauthorized' WHERE id = 4")
    assert not _archive_verify(settings, engine, "ocsp-queries:4").intact
    # covering the edit by changing the stamped digest breaks the token over the round's manifest
    with session_scope(engine) as s:
        from ca.storage.models import ArchiveStamp

        stamp = s.scalars(sa.select(ArchiveStamp).where(ArchiveStamp.item_type == "certificate",
                                                        ArchiveStamp.item_id == 2)).one()
        stamp.digest = bytes(32)
    _sql(engine, "UPDATE certificates SET subject_dn = 'x' WHERE id = 2")  # not in the DER: still intact
    assert _archive_verify(settings, engine, "certificate:3").problem.startswith("the time-stamp does not verify")


def test_archive_export_checks_offline_with_openssl(settings: Settings, engine: sa.Engine, keys: HSMClient,
                                                    tmp_path: Path) -> None:
    _issue_lists(settings, engine, keys)
    _stamp_all(settings, engine, keys)
    env = write_config(settings, tmp_path / "revoca.toml")
    _add_operator(engine, "aud", Role.INTERNAL_AUDITOR)
    code, out, err = revoca(env, "archive", "export", "--out", str(tmp_path / "bundle"), "--operator", "aud",
                            stdin=PASSWORD + "\n")
    assert code == 0, err
    script = tmp_path / "bundle" / "verify.sh"
    done = subprocess.run([str(script)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("verified:"), done.stdout + done.stderr
    item = next((tmp_path / "bundle" / "rounds").glob("*/items/crl-*.crl"))
    damage_last_byte(item)
    done = subprocess.run([str(script)], capture_output=True, text=True)
    assert done.returncode == 1 and "differs from its manifest line" in done.stdout


# --- the scheduler keeps the records -------------------------------------------------------------------


def test_the_scheduler_stamps_a_checkpoint_after_issuing_lists(settings: Settings, engine: sa.Engine,
                                                               keys: HSMClient) -> None:
    keeper = AuditKeeper(engine, CurrentAuthority(keys, NO_NTP), settings.data_dir)
    scheduler = Scheduler(engine, keys, settings.data_dir, clock=lambda: REAL_NOW, keeper=keeper, time_guard=NO_NTP)
    with session_scope(engine) as s:
        s.add(OCSPQuery(at=REAL_NOW - dt.timedelta(hours=2), channel="none", nonce=False,
                        response_status="unauthorized", answers=""))
    result = scheduler.tick()
    assert result.issued and not result.failed
    with session_scope(engine, readonly=True) as s:
        reasons = s.scalars(sa.select(AuditCheckpoint.reason)).all()
        seals = s.scalars(sa.select(AuditEvent.detail).where(AuditEvent.event_type == history_seal.EVENT)).all()
    assert reasons == ["crl"] and len(seals) == 1
    assert scheduler.tick(REAL_NOW + dt.timedelta(minutes=5)).issued == ()
    with session_scope(engine, readonly=True) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint)) == 1  # not due again yet
    report = _verify(engine)
    assert report.ok and report.checkpoints == 1 and report.seals == 1, report.findings


# --- the CLI, for the internal auditor only ------------------------------------------------------------


def _add_operator(engine: sa.Engine, name: str, role: Role) -> None:
    with session_scope(engine) as s:
        Store(s).add_operator(name=name, display_name=name, credential_hash=hash_password(PASSWORD), roles=[role],
                              now=REAL_NOW)


def test_only_the_internal_auditor_verifies_and_reads_the_log(settings: Settings, engine: sa.Engine,
                                                               keys: HSMClient, hsm_socket: Path,
                                                               tmp_path: Path) -> None:
    env = write_config(settings, tmp_path / "revoca.toml", hsm_socket)
    _add_operator(engine, "aud", Role.INTERNAL_AUDITOR)
    _add_operator(engine, "admin", Role.CA_ADMINISTRATOR)
    code, out, err = revoca(env, "audit", "checkpoint", "--operator", "aud", stdin=PASSWORD + "\n")
    assert code == 0, err
    code, out, err = revoca(env, "audit", "verify", "--operator", "aud", stdin=PASSWORD + "\n")
    assert code == 0 and out.startswith("audit chain intact:") and "1 checkpoints" in out, out + err

    code, out, err = revoca(env, "audit", "verify", "--operator", "admin", stdin=PASSWORD + "\n")
    assert code == 8 and "internal-auditor" in err
    code, out, err = revoca(env, "audit", "show", "--operator", "aud", "--type", "cli.act", stdin=PASSWORD + "\n")
    assert code == 0
    assert re.search(r"cli\.act\s+failure\s+admin\s", out), out  # the refused attempt is on record

    _sql(engine, "UPDATE audit_events SET detail = '{}' WHERE seq = 2")
    code, out, err = revoca(env, "audit", "verify", "--operator", "aud", stdin=PASSWORD + "\n")
    assert code == 10 and "audit chain broken at record seq 2 " in err, err
    with session_scope(engine, readonly=True) as s:
        inspections = s.scalars(sa.select(AuditEvent.actor).where(AuditEvent.event_type == "audit.inspected")).all()
    assert inspections == ["aud", "aud", "aud"]


def test_a_crl_issued_from_the_cli_checkpoints_the_chain(settings: Settings, engine: sa.Engine, keys: HSMClient,
                                                         hsm_socket: Path, tmp_path: Path) -> None:
    env = write_config(settings, tmp_path / "revoca.toml", hsm_socket)
    code, out, err = revoca(env, "crl", "issue", "--ca", "tokyo", "--type", "crl",
                            login=standard_cast().login("cast-operator"))
    assert code == 0, err
    with session_scope(engine, readonly=True) as s:
        cp = s.scalars(sa.select(AuditCheckpoint)).one()
        newest = s.scalar(sa.select(sa.func.max(AuditEvent.seq)))
    assert (cp.reason, cp.actor, cp.seq) == ("crl", "cast-operator", newest)  # covers the crl.issued record
