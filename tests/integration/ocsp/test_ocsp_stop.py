"""A responder stopped with SIGTERM keeps its promise: every query it answered is in the query history.

The history is written in batches once a second (ocsp.history); a stop in between must write what
the workers still hold.  Found by bench/ocsp.py: granian's workers are multiprocessing children,
which leave by os._exit, so an `atexit` flush never ran and up to a second of queries per worker
was lost at every restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


def _tgkill(pid: int, tid: int, signum: int) -> None:
    """The signal to one thread of `pid` (tgkill(2): Python's os module has no call for another
    process's thread)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), "tgkill")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == str(pid):
            found.append(int(stat.parent.name))
    return found


@contextlib.contextmanager
def _granian(settings: Settings, hsm_socket: Path, tmp_path: Path, port: int, workers: int
             ) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`revoca serve ocsp` under granian in a process group of its own, and its log; killed if a
    test leaves it running."""
    env = {**os.environ, **write_config(settings, tmp_path / "revoca.toml", hsm_socket)}
    log = tmp_path / "ocsp.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("revoca")), "serve", "ocsp", "--server", "granian",
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _stops_cleanly(proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    try:
        returncode = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # what was still running, and what the server had logged
        ps = subprocess.run(["ps", "-o", "pid,ppid,stat,wchan:24,args", "-g", str(proc.pid)],
                            capture_output=True, text=True, check=False).stdout
        pytest.fail(f"the server did not stop within {timeout} s\n{ps}\n{log.read_text()}")
    assert returncode == 0, log.read_text()
    assert "Granian shutdown completed" in log.read_text()


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's syscall number is x86_64's")
def test_granian_and_its_worker_stop_when_their_sigterm_lands_on_another_thread_than_the_main_one(
        settings: Settings, hsm_socket: Path, tmp_path: Path) -> None:
    """Found by bench/ocsp.py under load: a SIGTERM sent to the responder's process group sometimes
    left a worker waiting for ever (its server waited 30 s, then it was killed).  The kernel had
    handed the signal to one of the worker's other threads, and its main thread, waiting on a
    lock, never ran the handler; granian's server process waits the same way.  Here each signal is
    sent to such a thread on purpose: a Rust thread of the worker's, then a thread of the server's."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with _granian(settings, hsm_socket, tmp_path, port, workers=1) as (proc, log):
        wait_listening(port, proc, log)
        requests.get(url, timeout=10)  # the worker is up and answering
        [worker] = _children(proc.pid)
        _tgkill(worker, _other_threads(worker)[0], signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _state(worker) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(worker) == "Z", f"the worker did not stop on a SIGTERM to another thread\n{log.read_text()}"
        deadline = time.monotonic() + 15
        while True:  # granian starts another worker, which answers
            try:
                requests.get(url, timeout=10)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert [c for c in _children(proc.pid) if c != worker], log.read_text()
        _tgkill(proc.pid, _other_threads(proc.pid)[0], signal.SIGTERM)
        _stops_cleanly(proc, log, timeout=15)


def _other_threads(pid: int) -> list[int]:
    """`pid`'s threads but its main one (any of them may be handed a signal sent to the process)."""
    found = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir() if int(t.name) != pid]
    assert found
    return found


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except (OSError, IndexError):
        return "Z"


def test_granian_stopped_while_its_workers_start_stops_them_and_itself(settings: Settings, hsm_socket: Path,
                                                                      tmp_path: Path) -> None:
    """Found by bench/ocsp.py under load: a responder stopped right after it started waited 30 s and
    was killed.  A worker still starting runs the server's own signal handler, inherited at the
    fork, until granian sets its own: the stop it took there was lost, and the worker then waited
    for one for ever.  Here the stop is sent as soon as the workers exist."""
    with _granian(settings, hsm_socket, tmp_path, free_port(), workers=2) as (proc, log):
        deadline = time.monotonic() + 30
        while len(_children(proc.pid)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGTERM)
        _stops_cleanly(proc, log, timeout=20)

