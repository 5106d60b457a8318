"""The officers' status page under gunicorn: a populated installation and the running server."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ca.config import Settings
from ca.crl.issue import issue_all, issue_list
from ca.demo import VERIFIER, ensure_demo_verifier
from ca.enums import Applicant, CertKind, ListType, RequestChannel, Role
from ca.hsm.client import HSMClient
from ca.revocation import workflow
from ca.revocation.reasons import RevocationReason
from ca.revocation.workflow import Filing
from ca.storage.engine import session_scope
from ca.storage.models import Certificate, Verifier
from ca.storage.revocations import RevocationStore
from ca.verifiers import registry
from ocsp.history import QueryHistory
from ocsp.responder import Outcome

from support.clock import NO_NTP
from support.ra_fixtures import add_operator, certificates, subscribers
from support.tools import CHEAP_ARGON2, free_port, officers_client, write_config

REVOCA = str(Path(sys.executable).with_name("revoca"))
CHROMIUM = shutil.which("chromium")
START_TIMEOUT = 60
R = RevocationReason
# (days before now, reason) of RA window revocations: four days in the chart, one day outside it
WINDOW_REVOCATIONS = [(0, R.KEY_COMPROMISE), (0, R.CESSATION_OF_OPERATION), (1, R.KEY_COMPROMISE),
                      (1, R.KEY_COMPROMISE), (1, R.SUPERSEDED), (3, R.AFFILIATION_CHANGED), (12, R.SUPERSEDED),
                      (40, R.KEY_COMPROMISE)]


# --- the installation -------------------------------------------------------------------------------


def populate(engine: sa.Engine, keys: HSMClient, settings: Settings, now: dt.datetime) -> None:
    """CRLs/ARLs (most near expiry), window revocations over several days, dual-control requests
    waiting for review and for approval, and OCSP history, all through revoca's own code."""
    report = issue_all(engine, keys, settings.data_dir, now=now - dt.timedelta(hours=50),
                       time_guard=NO_NTP)  # 22 h left
    assert not report.failed, report.failed
    issue_list(engine, keys, settings.data_dir, "tokyo", ListType.CRL, now=now - dt.timedelta(hours=1),
               time_guard=NO_NTP)
    add_operator(engine, "rita", Role.RECEPTIONIST)
    add_operator(engine, "ren", Role.REVIEWER)
    targets = subscribers(engine, "tokyo")[:len(WINDOW_REVOCATIONS)]
    responders = [c for ca in ("osaka", "hokkaido", "tokyo") for c in certificates(engine, ca, CertKind.OCSP_RESPONDER)]
    with session_scope(engine) as s:
        store = RevocationStore(s)
        for (days, reason), ref in zip(WINDOW_REVOCATIONS, targets, strict=True):
            filing = Filing(RequestChannel.RA_WINDOW, s.get(Certificate, ref.id), reason, applicant=Applicant.SELF,
                            identity_document_checked=True)
            workflow.file_request(store, filing, now - dt.timedelta(days=days), actor="test")
        rita, ren = store.operator("rita"), store.operator("ren")
        filed = [workflow.file_request(store, Filing(RequestChannel.DUAL_CONTROL, s.get(Certificate, ref.id),
                                                       R.SUPERSEDED, receptionist=rita), now, actor="rita")[0]
                 for ref in responders]
        workflow.review(store, filed[0].public_id, ren, accept=True, now=now)  # now waits for approval
    verifier_id = _verifier_id(engine, settings, keys)
    history = QueryHistory(engine, thread=False)
    for i in range(7):
        history.record(Outcome(b"", "successful", "signed", verifier_id, None, i % 2 == 0, f"{i:x}=good,ff=revoked"))
    for _ in range(3):
        history.record(Outcome(b"", "unauthorized"))
    history.record(Outcome(b"", "malformed_request"))
    history.close()


def _verifier_id(engine: sa.Engine, settings: Settings, keys: HSMClient) -> int:
    # its LDAP password hashed at support.tools.CHEAP_ARGON2's low cost: nothing here binds with it
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry, "PasswordHasher", CHEAP_ARGON2)
        ensure_demo_verifier(settings, engine, keys)
    with session_scope(engine) as s:
        return s.scalar(sa.select(Verifier.id).where(Verifier.name == VERIFIER))  # type: ignore[return-value]


@dataclasses.dataclass
class StatusServer:
    """`revoca serve status` in a process group of its own (gunicorn master and workers stop together)."""

    env: dict[str, str]
    log: Path
    workers: int = 1
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/", auth: tuple[str, str] | None = None) -> str:
        if auth is None:
            return f"http://127.0.0.1:{self.port}{path}"
        user, password = (urllib.parse.quote(v, safe="") for v in auth)
        return f"http://{user}:{password}@127.0.0.1:{self.port}{path}"

    def start(self) -> StatusServer:
        """Start the server and return once it answers."""
        return self.launch().wait_until_up()

    def launch(self) -> StatusServer:
        """Start the server's process without waiting for it: its ~0.7 s of start-up (imports,
        gunicorn's master and worker) can run while the test fills the database (`running_site`)."""
        self.port = free_port()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([REVOCA, "serve", "status", "--port", str(self.port), "--workers",
                                          str(self.workers)], env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_until_up(self) -> StatusServer:
        """Return once /metrics answers 200 (the first scrape: nothing is asked of the server before)."""
        assert self.proc is not None, "launch() first"
        session = requests.Session()
        session.trust_env = False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if session.get(self.url("/metrics"), timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("revoca serve status did not come up:\n" + self.log.read_text(errors="replace"))
            time.sleep(0.02)  # a connection refused costs nothing: answer as soon as the worker is up

    def stop(self) -> None:
        """SIGTERM: the graceful stop, which records service.stopped (tests/integration/audit)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL to the whole group, for a fixture's teardown that is not about how the server
        stops: a graceful stop waits for its worker's and master's exits (~0.6 s, seconds under load)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None


def server_for(settings: Settings, tmp_path: Path, hsm_socket: Path | None) -> StatusServer:
    """The status server of `settings` (its revoca.toml written under `tmp_path`), not started."""
    env = {**os.environ, **write_config(settings, tmp_path / "revoca.toml", hsm_socket)}
    return StatusServer(env, tmp_path / "status-server.log")


def start_server(settings: Settings, tmp_path: Path, hsm_socket: Path | None) -> StatusServer:
    return server_for(settings, tmp_path, hsm_socket).start()


@contextlib.contextmanager
def running_site(settings: Settings, engine: sa.Engine, hsm_socket: Path, root: Path) -> Iterator[StatusServer]:
    """The installation, populated (`populate`), and its status server, stopped afterwards.

    The server's process starts first and comes up while `populate` runs (its start-up writes only
    its own service.started record, chained like any other): nothing asks it anything before
    `populate` is done, so its first scrape sees the populated installation, as when it started after."""
    server = server_for(settings, root, hsm_socket).launch()
    try:
        keys = officers_client(hsm_socket, settings)  # the verifier's certificate: a ceremony act
        try:
            populate(engine, keys, settings, dt.datetime.now(dt.UTC))
        finally:
            keys.close()
        yield server.wait_until_up()
    finally:
        server.kill()


@dataclasses.dataclass(frozen=True)
class PopulatedSite:
    server: StatusServer
    engine: sa.Engine
