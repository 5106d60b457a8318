"""Audit coverage (issue 13, seed 004 5.4.1, 5.4.7, 5.5.1.2): service starts and stops, status
page logins, verifiers' reads of the directory, clock checks, the signed online request kept
and archived, and the audit log itself archived before any prune.

Real parts throughout: `revoca serve status` under gunicorn as a process of its own (stopped
with SIGTERM, killed with SIGKILL), slapd with the publisher reading its access log, the HSM
service and SoftHSM2, SQLite and PostgreSQL; `openssl cms` checks the archived request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from ca.archive.export import export
from ca.archive.stamping import stamp_round
from ca.archive.verify import verify_item
from ca.audit import service_events, timeline
from ca.audit.prune import NotArchived, Pruned, prune
from ca.audit.verify import verify
from ca.config import AuditConfig, Settings, TimeConfig
from ca.crl.issue import issue_all
from ca.demo import VERIFIER, ensure_demo_verifier
from ca.enums import Applicant, RequestChannel, Role
from ca.hsm.client import HSMClient
from ca.ra import online
from ca.revocation import reasons, workflow
from ca.scheduler import Scheduler
from ca.status_page import create_app as create_status_app
from ca.storage.engine import session_scope
from ca.storage.models import AuditEvent, Publication, RevocationRequest, ServiceRun
from ca.storage.revocations import RevocationStore
from ca.storage.store import ReadStore
from ca.trusted_time import ClockGuard
from ca.trusted_time.ntp import Reading
from ca.tsa.certificate import ensure_certificate
from ca.tsa.known import token_checker, tsa_certificates
from ca.tsa.stamper import CurrentAuthority
from ca.verifiers import registry
from repository.directory import Endpoint
from repository.entries import ca_entry_dn
from repository.publisher import LdapPublisher
from repository.service import make_publisher
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.ra_fixtures import PASSWORD, add_operator, basic_auth, new_subscriber, signed_request
from support.settings import LDAP_BASE
from support.status_site import start_server
from support.tools import CHEAP_ARGON2, end_ceremony, officers_client

REAL_NOW = dt.datetime.now(dt.UTC)


def _events(engine: sa.Engine, event_type: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(result, actor, detail) of every record of one type, in chain order."""
    with session_scope(engine, readonly=True) as s:
        rows = s.execute(sa.select(AuditEvent.result, AuditEvent.actor, AuditEvent.detail)
                         .where(AuditEvent.event_type == event_type).order_by(AuditEvent.seq)).all()
    return [(result, actor, json.loads(detail)) for result, actor, detail in rows]


def _status_runs(engine: sa.Engine) -> list[dict[str, Any]]:
    return [d for _r, actor, d in _events(engine, "service.started") if actor == "service:status"]


# --- the issue's check --------------------------------------------------------------------------------


def test_audit_show_has_a_status_page_login_a_service_restart_and_a_verifiers_arl_read(
        settings: Settings, ldap_settings: Settings, engine: sa.Engine, hsm_socket: Path, slapd: LocalSlapd,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = officers_client(hsm_socket, settings)  # the demo verifier's certificate: a ceremony act
    assert not issue_all(engine, keys, settings.data_dir, now=REAL_NOW, time_guard=NO_NTP).failed
    # the verifier's LDAP password hashed at support.tools.CHEAP_ARGON2's cost, not the product's
    # 0.1-0.4 s (and as much again in slapd at its bind below): still {ARGON2}, checked by slapd
    monkeypatch.setattr(registry, "PasswordHasher", CHEAP_ARGON2)
    verifier_dir = ensure_demo_verifier(ldap_settings, engine, keys)
    publisher = make_publisher(ldap_settings, engine)
    assert not publisher.round(side_work=True, retry_now=True).failed  # the lists and the verifier's account
    with session_scope(engine) as s:  # slapd logs whole seconds: a read in the second of publication may be before it
        for row in s.scalars(sa.select(Publication).where(Publication.published_at.is_not(None))):
            assert row.published_at is not None
            row.published_at = row.published_at - dt.timedelta(seconds=2)
    with session_scope(engine, readonly=True) as s:
        tokyo = next(ca for ca in ReadStore(s).cas() if ca.name == "tokyo")
        tokyo_dn = ca_entry_dn(tokyo, LDAP_BASE)
    # the verifier reads tokyo's ARL, as a relying party building a path would
    read = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", slapd.uri, "-D", f"cn={VERIFIER},ou=verifiers,{LDAP_BASE}",
                           "-y", str(verifier_dir / "ldap.password"), "-b", tokyo_dn, "-s", "base",
                           "(objectClass=*)", "authorityRevocationList;binary"], capture_output=True, timeout=30)
    assert read.returncode == 0 and b"authorityRevocationList;binary::" in read.stdout, read.stderr
    assert publisher.round(side_work=True).side_errors == []  # the access log into the history

    # an officer logs in to the status page; the page is stopped (SIGTERM) and started again
    add_operator(engine, "kei", Role.KEY_MANAGER)
    server = start_server(ldap_settings, tmp_path, hsm_socket)
    try:
        assert requests.get(server.url("/", ("kei", PASSWORD)), timeout=30).status_code == 200
    finally:
        server.stop()
    server.start()
    server.stop()

    with session_scope(engine, readonly=True) as s:
        shown = timeline.newest(s, limit=1000)
    login = [e for e in shown if e.type == "status_page.login"]
    assert [(e.result, e.actor) for e in login] == [("success", "kei")]
    assert login[0].detail["remote_addr"] == "127.0.0.1"
    status = [e for e in shown if e.actor == "service:status"]
    assert [(e.type, e.detail.get("previous_stop"), e.detail.get("stop")) for e in reversed(status)] == [
        ("service.started", "first", None), ("service.stopped", None, "clean"),
        ("service.started", "clean", None), ("service.stopped", None, "clean")]
    arl = [e for e in shown if e.type == timeline.READ and "arl" in e.detail["objects"]]
    assert [(e.actor, e.result, e.detail["ca"], e.detail["objects"]) for e in arl] == [
        (VERIFIER, "success", "tokyo", ["arl"])]
    assert arl[0].detail["arl_number"] is not None
    # the CLI's filters work on the history too
    with session_scope(engine, readonly=True) as s:
        assert [e.type for e in timeline.newest(s, limit=10, actor=VERIFIER, event_type=timeline.READ)] == [
            timeline.READ]


# --- service start and stop ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_killed_service_is_named_unclean_by_its_next_start(settings: Settings, engine: sa.Engine,
                                                             initialized: object, tmp_path: Path) -> None:
    server = start_server(settings, tmp_path, None)
    assert server.proc is not None
    killed = server.proc.pid
    os.killpg(killed, signal.SIGKILL)
    server.proc.wait(timeout=30)
    server.proc = None
    server.start()
    server.stop()

    first, second = _status_runs(engine)
    assert (first["pid"], first["previous_stop"]) == (killed, "first")
    assert second["previous_stop"] == "unclean"
    assert [r["pid"] for r in second["unclean_runs"]] == [killed]
    stopped = [d for _r, actor, d in _events(engine, "service.stopped") if actor == "service:status"]
    assert [d["pid"] for d in stopped] == [second["pid"]]  # the killed run never wrote a stop
    with session_scope(engine, readonly=True) as s:
        runs = s.execute(sa.select(ServiceRun.pid, ServiceRun.stop).where(ServiceRun.service == "status")
                         .order_by(ServiceRun.id)).all()
    assert [tuple(r) for r in runs] == [(killed, "unclean"), (second["pid"], "clean")]


def test_the_scheduler_and_the_publisher_audit_their_start_and_stop(settings: Settings, engine: sa.Engine,
                                                                    initialized: object) -> None:
    stop = threading.Event()
    stop.set()  # each run starts, finds it should stop, and stops cleanly
    Scheduler(engine, HSMClient(settings.hsm_socket), settings.data_dir, time_guard=NO_NTP).run(stop)
    LdapPublisher(engine, Endpoint("127.0.0.1", 1), LDAP_BASE, settings.data_dir).run(stop)
    started = {actor: d for _r, actor, d in _events(engine, "service.started")}
    stopped = {actor: (r, d) for r, actor, d in _events(engine, "service.stopped")}
    for name in ("scheduler", "publisher"):
        detail = started[f"service:{name}"]
        assert (detail["service"], detail["pid"], detail["previous_stop"]) == (name, os.getpid(), "first")
        assert detail["identity"] and detail["host"]
        result, detail = stopped[f"service:{name}"]
        assert (result, detail["stop"]) == ("success", "clean")


def test_a_run_whose_process_is_gone_is_closed_as_unclean_and_a_live_one_is_left(engine: sa.Engine) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    service_events.service_started(engine, "tsa", pid=os.getppid(), host="h1")  # alive: another copy
    service_events.service_started(engine, "tsa", pid=gone.pid, host="h1")
    service_events.service_started(engine, "tsa", pid=gone.pid, host="h2")  # another host: not judged here
    run = service_events.service_started(engine, "tsa", host="h1")
    assert run.previous_stop == "unclean"
    detail = _events(engine, "service.started")[-1][2]
    assert [r["pid"] for r in detail["unclean_runs"]] == [gone.pid]
    service_events.service_stopped(engine, run, error="RuntimeError: the port is taken")
    result, _actor, stopped = _events(engine, "service.stopped")[-1]
    assert (result, stopped["stop"], stopped["error"]) == ("failure", "failed", "RuntimeError: the port is taken")
    with session_scope(engine, readonly=True) as s:
        open_runs = s.execute(sa.select(ServiceRun.host, ServiceRun.pid).where(ServiceRun.stopped_at.is_(None))
                              .order_by(ServiceRun.id)).all()
    assert [tuple(r) for r in open_runs] == [("h1", os.getppid()), ("h2", gone.pid)]


# --- status page logins ----------------------------------------------------------------------------------


def test_every_status_page_login_is_audited_success_and_failure(engine: sa.Engine, initialized: object) -> None:
    add_operator(engine, "kei", Role.KEY_MANAGER)
    add_operator(engine, "rita", Role.RECEPTIONIST)
    client = create_status_app(engine).test_client()
    assert client.get("/").status_code == 401  # no credentials yet: no attempt, nothing recorded
    assert _events(engine, "status_page.login") == []

    assert client.get("/", headers=basic_auth("kei", "wrong password")).status_code == 401
    assert client.get("/", headers=basic_auth("nobody")).status_code == 401
    assert client.get("/", headers=basic_auth("rita")).status_code == 403  # a role that may not look
    assert client.get("/", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert client.get("/", headers=basic_auth("kei")).status_code == 200
    assert client.get("/", headers=basic_auth("kei")).status_code == 200  # remembered: no second login
    assert client.get("/metrics", headers=basic_auth("kei", "wrong again")).status_code == 401

    events = _events(engine, "status_page.login")
    assert [(result, actor) for result, actor, _d in events] == [
        ("failure", "kei"), ("failure", "nobody"), ("failure", "rita"), ("failure", "(malformed credentials)"),
        ("success", "kei"), ("failure", "kei")]
    assert "wrong password" in str(events[0][2]["error"]) and events[5][2]["path"] == "/metrics"
    assert events[4][2]["roles"] == ["key-manager"]


# --- clock checks ---------------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _join_audit_writers() -> None:
    for thread in threading.enumerate():
        if thread.name == "revoca-time-audit":
            thread.join(10)


def test_good_clock_checks_are_audited_at_most_hourly_and_failed_ones_always(engine: sa.Engine) -> None:
    offsets = {"ntp-a:123": 0.012, "ntp-b:123": 0.015}
    clock = _Clock()

    def query(server: str, _timeout: float) -> Reading:
        return Reading(server, offset_s=offsets[server], delay_s=0.002)

    guard = ClockGuard(TimeConfig(ntp_servers=tuple(offsets), recheck_s=60), query=query, monotonic=clock)

    def at(t: float) -> None:
        clock.t = 1000.0 + t
        try:
            guard.require("tokyo CRL", engine=engine, actor="scheduler")
        except Exception:
            pass
        _join_audit_writers()

    at(0)  # recorded
    at(61)  # checked again: not recorded
    at(1800)
    at(3600)  # an hour after the last record: recorded
    offsets["ntp-a:123"] = offsets["ntp-b:123"] = 5.0
    at(3700)  # refused: recorded
    at(3705)  # the failed check is reused for 10 s: nothing new
    at(3711)  # checked again and refused again: recorded
    offsets["ntp-a:123"] = offsets["ntp-b:123"] = 0.01
    at(3730)  # good, but a good check was recorded less than an hour ago

    checked = _events(engine, "time.checked")
    assert len(checked) == 2 and len(_events(engine, "time.untrusted")) == 2
    result, actor, detail = checked[0]
    assert (result, actor, detail["purpose"]) == ("success", "scheduler", "tokyo CRL")
    assert detail["servers"] == ["ntp-a:123", "ntp-b:123"]
    assert detail["offsets_s"] == {"ntp-a:123": 0.012, "ntp-b:123": 0.015}
    assert detail["delays_s"] == {"ntp-a:123": 0.002, "ntp-b:123": 0.002}
    assert detail["agreed_offset_s"] == pytest.approx(0.0135) and "warning" not in detail


# --- the signed online request --------------------------------------------------------------------------


def _stamp_all(settings: Settings, engine: sa.Engine, keys: HSMClient, now: dt.datetime = REAL_NOW) -> int:
    total = 0
    while True:
        with session_scope(engine) as s:
            stamps = stamp_round(s, CurrentAuthority(keys, NO_NTP), settings.data_dir, now)
        if not stamps:
            return total
        total += len(stamps)


def _export(settings: Settings, engine: sa.Engine, out: Path) -> Path:
    with session_scope(engine, readonly=True) as s:
        export(s, settings.data_dir, out, tsa_certificates(s))
    done = subprocess.run([str(out / "verify.sh")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("verified:"), done.stdout + done.stderr
    return out


def test_the_signed_online_request_is_kept_and_archived_byte_for_byte(settings: Settings, engine: sa.Engine,
                                                                      hsm_socket: Path, tmp_path: Path) -> None:
    keys = officers_client(hsm_socket, settings)  # the TSA certificate, a certificate: a ceremony act
    ensure_certificate(settings, engine, keys, now=REAL_NOW - dt.timedelta(minutes=5), actor="test")
    ref, key = new_subscriber(engine, keys, now=REAL_NOW - dt.timedelta(minutes=1))
    body = signed_request(ref.der, key, {"reason": "cessationOfOperation", "serial": ref.hex_serial})
    with session_scope(engine) as s:  # as the RA's online endpoint files it
        store = RevocationStore(s)
        signed = online.parse_signed_request(body, store, REAL_NOW)
        filing = workflow.Filing(channel=RequestChannel.ONLINE, certificate=signed.certificate,
                                 reason=reasons.parse_reason(signed.reason), applicant=Applicant.SELF,
                                 identity_document_checked=True, signed_request=signed.document)
        request_id = workflow.file_request(store, filing, REAL_NOW, actor="subscriber")[0].id
    with session_scope(engine, readonly=True) as s:
        assert s.get(RevocationRequest, request_id).signed_request == body  # type: ignore[union-attr]

    _stamp_all(settings, engine, keys)
    with session_scope(engine, readonly=True) as s:
        assert verify_item(s, settings.data_dir, f"online-request:{request_id}", token_checker(s)).intact
    bundle = _export(settings, engine, tmp_path / "bundle")
    [item] = list((bundle / "rounds").glob(f"*/items/online-request-{request_id}.p7m"))
    assert item.read_bytes() == body
    content = tmp_path / "content.json"
    checked = subprocess.run(["openssl", "cms", "-verify", "-noverify", "-inform", "DER", "-binary", "-in", str(item),
                              "-out", str(content)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0 and "Verification successful" in checked.stderr, checked.stderr
    assert json.loads(content.read_bytes()) == {"reason": "cessationOfOperation", "serial": ref.hex_serial}


# --- the audit log in the archive, and pruning ----------------------------------------------------------


def _start_over(engine: sa.Engine, officers: HSMClient, socket: Path) -> HSMClient:
    """An empty chain, so that the records these tests make old are its oldest; a client without a
    ceremony session for the rest.  The officers' ceremony session is ended and its audit records
    written first: the service writes them on a thread of its own, and one landing after the reset
    (or a new session's, opened by the next signature) would sit among the old records."""
    end_ceremony(officers, engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_events"))
        conn.execute(sa.text("UPDATE audit_head SET seq = 0, chain_hash = :h"), {"h": bytes(32)})
    return HSMClient(socket)


def _record(engine: sa.Engine, event_type: str, n: int, at: dt.datetime) -> None:
    from ca import audit

    with session_scope(engine) as s:
        for i in range(n):
            audit.record(s, event_type, actor="tester", at=at + dt.timedelta(seconds=i), n=i)


def _prune(engine: sa.Engine, keys: HSMClient, retention: AuditConfig | dt.timedelta,
           before: dt.datetime = REAL_NOW - dt.timedelta(days=400)) -> Pruned:
    with session_scope(engine) as s:
        return prune(s, CurrentAuthority(keys, NO_NTP), token_checker(s), before=before, retention=retention,
                     now=REAL_NOW,
                     actor="aud")


def test_only_archived_records_are_pruned_and_the_archive_keeps_them(settings: Settings, engine: sa.Engine,
                                                                    hsm_socket: Path, tmp_path: Path) -> None:
    keys = officers_client(hsm_socket, settings)  # the TSA certificate, a certificate: a ceremony act
    ensure_certificate(settings, engine, keys, now=REAL_NOW - dt.timedelta(minutes=5), actor="test")
    keys = _start_over(engine, keys, hsm_socket)
    _record(engine, "test.event", 6, REAL_NOW - dt.timedelta(days=800))
    _record(engine, "test.event", 2, REAL_NOW)
    with pytest.raises(NotArchived, match="archive holds them only through seq 0"):
        _prune(engine, keys, dt.timedelta(days=365))

    with session_scope(engine) as s:  # a checkpoint over the old records, not yet archived
        from ca.audit import checkpoints

        checkpoints.take(s, CurrentAuthority(keys, NO_NTP), "periodic", REAL_NOW, at=(3, s.scalars(
            sa.select(AuditEvent.chain_hash).where(AuditEvent.seq == 3)).one()))
    with session_scope(engine) as s:
        from ca.archive.items import AuditRange

        AuditRange("audit-log", "audit_events").next_range(s, REAL_NOW, 100)  # copied, not yet stamped
    with pytest.raises(NotArchived, match="archive holds them only through seq 0"):
        _prune(engine, keys, dt.timedelta(days=365))
    _stamp_all(settings, engine, keys)
    done = _prune(engine, keys, dt.timedelta(days=365))
    assert (done.count, done.through_seq) == (6, 6)
    with session_scope(engine, readonly=True) as s:
        assert verify(s, token_checker(s)).ok
        # the archived copy still holds the pruned records, and says so when checked
        assert verify_item(s, settings.data_dir, "audit-log:2", token_checker(s)).intact

    # offline: the exported lines recompute the chain up to the checkpoint's hash
    _stamp_all(settings, engine, keys)
    bundle = _export(settings, engine, tmp_path / "bundle")
    lines = [json.loads(line) for f in sorted((bundle / "rounds").glob("*/items/audit-log-*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    assert [line[0] for line in lines][:8] == list(range(1, 9))
    previous = bytes(32)
    for line in lines:
        canonical = json.dumps(line[:6], ensure_ascii=False, separators=(",", ":")).encode()
        previous = hashlib.sha256(previous + canonical).digest()
        assert previous.hex() == line[6]
    [checkpoint] = [json.loads(f.read_text()) for f in (bundle / "rounds").glob("*/items/audit-checkpoint-*.json")
                    if json.loads(f.read_text())[3] == "periodic"]
    assert checkpoint[1] == 3 and checkpoint[2] == lines[2][6]


def test_a_kind_kept_longer_stops_the_prune_before_it(settings: Settings, engine: sa.Engine,
                                                      hsm_socket: Path) -> None:
    keys = officers_client(hsm_socket, settings)  # the TSA certificate, a certificate: a ceremony act
    ensure_certificate(settings, engine, keys, now=REAL_NOW - dt.timedelta(minutes=5), actor="test")
    keys = _start_over(engine, keys, hsm_socket)
    old = REAL_NOW - dt.timedelta(days=800)
    _record(engine, "test.event", 3, old)
    _record(engine, "time.checked", 1, old + dt.timedelta(minutes=1))  # seed 000: 10 years
    _record(engine, "test.event", 3, old + dt.timedelta(minutes=2))
    _stamp_all(settings, engine, keys)

    done = _prune(engine, keys, AuditConfig(retention_years=1))
    assert (done.count, done.through_seq, done.kept_from_seq, done.kept_kind) == (3, 3, 4, "time.checked")
    _stamp_all(settings, engine, keys)  # the prune anchor is a checkpoint too: archived before the next prune
    # named in [audit.retention_by_kind], the kind is kept only as long as it says
    done = _prune(engine, keys, AuditConfig(retention_years=1, retention_by_kind=(("time.*", 2),)))
    assert (done.count, done.through_seq, done.kept_from_seq) == (4, 7, None)
    with pytest.raises(Exception, match="retention"):
        _prune(engine, keys, AuditConfig(), before=REAL_NOW - dt.timedelta(days=800))
