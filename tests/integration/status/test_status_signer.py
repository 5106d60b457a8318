"""`revoca status`, `revoca hsm status` and /metrics on what issue 16 added: the OCSP signer that
holds the lease, how fresh the answers it signed ahead are, and the HSM service's signing processes.

Real processes: `revoca serve hsm` with `[hsm] signer_processes = 2` (activated with two demo
shares) and `revoca serve ocsp-signer`, on SQLite and PostgreSQL.  Who holds the lease is checked
against the signer process itself (SQLite: its pid; PostgreSQL: a backend that ends with it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ca import health
from ca.hsm.client import HSMClient
from ca.status_page.metrics import RevocaCollector
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, PresignedResponse

from support.cli import REVOCA, Cli, activate_in_process, demo_cli, start_hsm, stop_hsm
from support.installation import CeremonyTemplates
from support.tools import free_port

HOUR = dt.timedelta(hours=1)


@dataclasses.dataclass
class Running:
    cli: Cli
    hsm: subprocess.Popen[bytes]
    kind: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            ceremony_templates: CeremonyTemplates) -> Iterator[Running]:
    root = tmp_path_factory.mktemp(f"signer-{request.param}")
    with demo_cli(ceremony_templates, request.param, root) as cli:
        cli.env["REVOCA_HSM_SIGNER_PROCESSES"] = "2"
        hsm = start_hsm(cli)
        try:
            activate_in_process(cli, 1, 2)
            yield Running(cli, hsm, request.param)
        finally:
            stop_hsm(hsm)


def status(cli: Cli, *, text: bool = False) -> tuple[int, Any]:
    """`revoca status` (--json unless `text`): exit code and the parsed document (or stdout + stderr)."""
    proc = cli.run("status", *(() if text else ("--json",)))
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, (proc.stdout + proc.stderr if text else json.loads(proc.stdout))


def until(what: Callable[[], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, why
        time.sleep(0.2)
    return got


def backend_alive(cli: Cli, pid: int) -> bool:
    with cli.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}) == 1


def test_status_names_the_ocsp_signer_holding_the_lease_and_says_down_once_it_is_gone(running: Running) -> None:
    cli = running.cli
    _, before = status(cli)
    if "ocsp-signer" not in before["components"]:  # nothing signed ahead yet: no signer to miss
        assert before["ocsp_presigned"] is None
    with (cli.root / "ocsp-signer.log").open("ab") as log:
        signer = subprocess.Popen([REVOCA, "serve", "ocsp-signer"], cwd=cli.root, env=cli.env,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        def served() -> dict[str, Any] | None:
            got = status(cli)[1]
            signer_up = got["components"].get("ocsp-signer", {}).get("up")
            fresh = (got["ocsp_presigned"] or {}).get("oldest_age_s") is not None
            return got if signer_up and fresh else None

        got = until(served, 120, "the OCSP signer never held its lease with answers stored:\n"
                    + (cli.root / "ocsp-signer.log").read_text(errors="replace"))
        detail = got["components"]["ocsp-signer"]["detail"]
        backend = None
        if running.kind == "sqlite":
            assert detail == f"held by pid {signer.pid} on this host"
        else:
            found = re.fullmatch(r"held by PostgreSQL backend (\d+)(?: \(.*\))?", detail)
            assert found, detail
            backend = int(found[1])
            assert backend_alive(cli, backend)
        presigned = got["ocsp_presigned"]
        assert 0 <= presigned["oldest_age_s"] < 600, presigned  # signed since the signer started
        assert 0 < presigned["refresh_target_s"] <= 12 * 3600, presigned
        _, out = status(cli, text=True)
        assert f"  ocsp-signer: up ({detail})" in out
        assert re.search(r"^OCSP answers signed ahead: the oldest a responder would serve was signed \d+ min ago "
                         r"\(refresh target [\d.]+ h\)$", out, re.M), out
    finally:
        signer.send_signal(signal.SIGKILL)  # as a crash: no clean release of anything
        signer.wait(timeout=20)

    def down() -> dict[str, Any] | None:
        got = status(cli)[1]
        return got if not got["components"]["ocsp-signer"]["up"] else None

    got = until(down, 30, "the lease of a killed OCSP signer is still held")
    assert got["components"]["ocsp-signer"]["detail"].startswith(
        "no OCSP signer holds the lease: `revoca serve ocsp-signer` is not running")
    assert got["ocsp_presigned"]["oldest_age_s"] is not None  # the answers stay, and age
    if backend is not None:
        assert not backend_alive(cli, backend)  # the backend named was the killed signer's
    code, out = status(cli, text=True)
    assert code == 9 and "DOWN: ocsp-signer: DOWN (no OCSP signer holds the lease" in out


def test_the_age_is_that_of_the_oldest_answer_a_responder_would_serve_and_late_ones_warn(
        running: Running) -> None:
    cli = running.cli
    cli.ok("serve", "ocsp-signer", "--once", process=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with session_scope(cli.engine) as s:
        rows = s.execute(sa.select(PresignedResponse.key_id, PresignedResponse.serial)
                         .join(Certificate, sa.and_(Certificate.issuer_key_id == PresignedResponse.key_id,
                                                    Certificate.serial == PresignedResponse.serial))
                         .where(Certificate.not_after > now + 2 * HOUR)
                         .order_by(PresignedResponse.serial).limit(3)).all()
        assert len(rows) == 3

        def age(row: Any, *, signed: dt.timedelta, refresh: dt.timedelta, valid: dt.timedelta) -> None:
            s.execute(sa.update(PresignedResponse).where(PresignedResponse.key_id == row[0],
                                                         PresignedResponse.serial == row[1])
                      .values(this_update=now - signed, refresh_at=now - signed + refresh, next_update=now + valid))

        # the oldest and most overdue, but too close to its nextUpdate to be served (SERVE_MARGIN)
        age(rows[0], signed=20 * HOUR, refresh=12 * HOUR, valid=dt.timedelta(minutes=30))
        # served, two hours past its refresh time
        age(rows[1], signed=14 * HOUR, refresh=12 * HOUR, valid=10 * HOUR)
        # older still, but by a responder certificate that is not (or no longer) valid: never served
        age(rows[2], signed=30 * HOUR, refresh=12 * HOUR, valid=10 * HOUR)
        s.execute(sa.update(PresignedResponse).where(PresignedResponse.key_id == rows[2][0],
                                                     PresignedResponse.serial == rows[2][1])
                  .values(responder_serial=0x5EED))

    _, got = status(cli)
    assert abs(got["ocsp_presigned"]["oldest_age_s"] - 14 * 3600) < 300, got["ocsp_presigned"]
    assert got["ocsp_presigned"]["refresh_target_s"] == 12 * 3600
    behind = [w for w in got["warnings"] if w.startswith("the OCSP signer is behind")]
    assert len(behind) == 1 and ", 2.0 h past its refresh (target 12.0 h)" in behind[0], got["warnings"]

    samples = scrape(cli, now)
    assert samples["revoca_ocsp_presigned_served", ()] == 1
    assert samples["revoca_ocsp_presigned_oldest_age_seconds", ()] == 14 * 3600
    assert samples["revoca_ocsp_presigned_refresh_target_seconds", ()] == 12 * 3600
    assert samples["revoca_component_up", ("ocsp-signer",)] == 0  # nobody holds the lease now

    with session_scope(cli.engine) as s:  # half an hour past: within what a full re-sign takes
        s.execute(sa.update(PresignedResponse).where(PresignedResponse.key_id == rows[1][0],
                                                     PresignedResponse.serial == rows[1][1])
                  .values(refresh_at=now - dt.timedelta(minutes=30)))
    _, got = status(cli)
    assert not [w for w in got["warnings"] if w.startswith("the OCSP signer is behind")], got["warnings"]


def scrape(cli: Cli, now: dt.datetime) -> dict[tuple[str, tuple[str, ...]], float]:
    client = HSMClient(cli.socket)
    try:
        collector = RevocaCollector(cli.engine, clock=lambda: now, hsm_status=client.status, ldap_port=free_port())
        return {(sample.name, tuple(sample.labels.values())): sample.value
                for metric in collector.collect() for sample in metric.samples}
    finally:
        client.close()


def signing_children(hsm: subprocess.Popen[bytes]) -> set[int]:
    """The HSM service's signing processes (ca.hsm.signer_child), from /proc."""
    found = set()
    for task in Path(f"/proc/{hsm.pid}/task").iterdir():
        try:
            pids = (task / "children").read_text().split()
        except OSError:  # a thread that ended meanwhile
            continue
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ca.hsm.signer_child" in cmdline:
                found.add(int(pid))
    return found


def test_hsm_status_counts_the_signing_processes_up_against_those_configured(running: Running) -> None:
    cli = running.cli
    client = HSMClient(cli.socket)
    try:
        until(lambda: client.status()["signers_up"] == 2, 60, "the two signing processes never came up")
        reply = cli.json("hsm", "status")
        assert (reply["signer_processes"], reply["signers_up"], reply["signers_given_up"]) == (2, 2, False)
        assert reply["line"].endswith("activated (2 of 3 key managers); signing processes 2 of 2 up")
        assert "signing processes 2 of 2 up" in cli.ok("hsm", "status")
        _, got = status(cli)
        assert got["components"]["hsm"]["detail"].endswith("signing processes 2 of 2 up")
        assert not [w for w in got["warnings"] if "signing processes up" in w]
        samples = scrape(cli, dt.datetime.now(dt.UTC))
        assert samples["revoca_hsm_signer_processes", ()] == 2
        assert samples["revoca_hsm_signer_processes_up", ()] == 2

        children = signing_children(running.hsm)
        assert len(children) == 2
        victim = min(children)
        os.kill(victim, signal.SIGKILL)
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            component = health.hsm(client.status)
            seen.append((client.status()["signers_up"], component.warning))
            if len(seen) > 1 and seen[-1][0] == 2 and any(up == 1 for up, _ in seen):
                break
            time.sleep(0.02)
        lone = [warning for up, warning in seen if up == 1]
        assert lone, seen[:20]
        assert any(w.startswith("the HSM service has 1 of 2 signing processes up ([hsm] signer_processes): the "
                                "others are starting or were lost") for w in lone), lone
        assert seen[-1][0] == 2, "the lost signing process was not replaced"
        replaced = signing_children(running.hsm)
        assert len(replaced) == 2 and victim not in replaced
    finally:
        client.close()
