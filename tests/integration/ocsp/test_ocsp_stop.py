"""A responder stopped with SIGTERM keeps its promise: every query it answered is in the query history.

The history is written in batches once a second (ocsp.history); a stop in between must write what
the workers still hold.  Found by bench/ocsp.py: granian's workers are multiprocessing children,
which leave by os._exit, so an `atexit` flush never ran and up to a second of queries per worker
was lost at every restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ca.config import Settings
from ca.storage.engine import session_scope
from ca.storage.models import OCSPQuery

from support.tools import free_port, wait_listening, write_config

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

QUERIES = 30


def _rows(engine: sa.Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as s:
        return [(r.channel, r.response_status) for r in s.scalars(sa.select(OCSPQuery))]


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_every_query_answered_before_a_sigterm_is_in_the_history(settings: Settings, engine: sa.Engine,
                                                                   hsm_socket: Path, tmp_path: Path,
                                                                   server: str) -> None:
    env = {**os.environ, **write_config(settings, tmp_path / "revoca.toml", hsm_socket)}
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "ocsp.log"
    before = len(_rows(engine))
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("revoca")), "serve", "ocsp", "--server", server,
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_listening(port, proc, log)
        requests.get(url, timeout=10)  # answered `malformedRequest`, and recorded like the rest
        for _ in range(QUERIES):  # malformed: answered `malformedRequest`, and recorded like any other query
            reply = requests.post(url, data=b"\x30\x03\x02\x01\x01", timeout=10,
                                  headers={"Content-Type": "application/ocsp-request"})
            assert reply.status_code == 200
        # at once: well inside the history's one-second batch
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rows = _rows(engine)[before:]
    assert len(rows) == QUERIES + 1, log.read_text()[-3000:]
    assert {status for _channel, status in rows} == {"malformed_request"}
