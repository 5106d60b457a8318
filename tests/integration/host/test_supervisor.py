"""The supervisor restarts what dies, gives up on what keeps dying, and leaves nothing behind (issue 15).

Real child processes (the Python interpreter running small scripts), real signals.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from ca.errors import ServiceUnavailable
from ca.host.supervisor import Supervisor, spawn


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _run_until(supervisor: Supervisor, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        supervisor.poll()
        time.sleep(0.02)


def test_a_killed_service_is_named_and_started_again() -> None:
    lines: list[str] = []
    supervisor = Supervisor(echo=lines.append, backoff=(0.1,))
    first = supervisor.add("publisher", lambda: spawn([sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        os.kill(first.pid, signal.SIGKILL)
        _run_until(supervisor, lambda: supervisor.services[0].child is not first
                   and supervisor.services[0].restart_at is None)
        assert lines[0].startswith("revoca: publisher was killed by SIGKILL; starting it again in 0.1 s")
        assert lines[1].startswith("revoca: publisher started again (pid ")
        assert _alive(supervisor.services[0].child.pid)  # type: ignore[union-attr]
    finally:
        supervisor.stop(grace=2)


def test_a_service_that_keeps_failing_is_given_up_with_one_line() -> None:
    lines: list[str] = []
    supervisor = Supervisor(echo=lines.append, backoff=(0.0,), give_up_after=3, window=30)
    supervisor.add("scheduler", lambda: spawn([sys.executable, "-c", "raise SystemExit(3)"]))
    with pytest.raises(ServiceUnavailable, match=r"^scheduler exited with status 3, its 3th failure within 30 s: "
                                                 r"giving up"):
        _run_until(supervisor, lambda: False)
    assert sum("exited with status 3" in line for line in lines) == 2
    supervisor.stop(grace=1)


def test_stop_kills_what_ignores_sigterm_and_the_workers_of_a_master(tmp_path: Path) -> None:
    """A master that ignores SIGTERM and has a worker of its own: both are gone after stop."""
    worker_pid = tmp_path / "worker.pid"
    master = ("import signal, subprocess, sys, time\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "w = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
              f"open({str(worker_pid)!r}, 'w').write(str(w.pid))\n"
              "time.sleep(60)\n")
    lines: list[str] = []
    supervisor = Supervisor(echo=lines.append)
    child = supervisor.add("OCSP responder", lambda: spawn([sys.executable, "-c", master]))
    deadline = time.monotonic() + 10
    while not worker_pid.exists() or not worker_pid.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker = int(worker_pid.read_text())
    started = time.monotonic()
    supervisor.stop(grace=0.5)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5  # SIGKILL is delivered asynchronously
    while _alive(child.pid) or _alive(worker):
        assert time.monotonic() < deadline, "a process of the group outlived stop()"
        time.sleep(0.02)
    assert any("did not stop within 0.5 s; killing it" in line for line in lines)


def test_a_dead_masters_orphaned_workers_are_killed_before_the_restart(tmp_path: Path) -> None:
    """Found: a killed gunicorn or granian master left its workers holding the port."""
    worker_pid = tmp_path / "worker.pid"
    master = ("import subprocess, sys, time\n"
              "w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
              f"open({str(worker_pid)!r}, 'w').write(str(w.pid))\n"
              "time.sleep(60)\n")
    supervisor = Supervisor(echo=lambda line: None, backoff=(30.0,))
    child = supervisor.add("RA API", lambda: spawn([sys.executable, "-c", master]))
    try:
        deadline = time.monotonic() + 10
        while not worker_pid.exists() or not worker_pid.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        worker = int(worker_pid.read_text())
        os.kill(child.pid, signal.SIGKILL)
        _run_until(supervisor, lambda: supervisor.services[0].restart_at is not None)
        deadline = time.monotonic() + 5
        while _alive(worker):
            assert time.monotonic() < deadline, "the orphaned worker survived its master"
            time.sleep(0.02)
    finally:
        supervisor.stop(grace=1)


def test_stop_stops_what_the_others_need_after_them(tmp_path: Path) -> None:
    """Found: `revoca run` stopped right after its start hung 10 s, then SIGKILLed ten services:
    the scheduler, stopping, still called the HSM service inside a database transaction, and the
    HSM service, which got SIGTERM at the same moment, no longer answered while it wrote its own
    stop record behind that transaction.  A service the others depend on (`depended_on`) gets
    SIGTERM only once they have stopped, so one that needs it while it stops is still answered."""
    socket_path = tmp_path / "needed.sock"
    needed = ("import os, signal, socket, sys\n"
              "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
              f"s = socket.socket(socket.AF_UNIX); s.bind({str(socket_path)!r}); s.listen(8)\n"
              "while True:\n"
              "    c, _ = s.accept(); c.sendall(b'answer'); c.close()\n")
    dependent = ("import signal, socket, sys, time\n"
                 "def stop(*_):\n"
                 "    time.sleep(0.3)  # the end of its round, then one more call to the service it needs\n"
                 "    c = socket.socket(socket.AF_UNIX); c.settimeout(5)\n"
                 "    try:\n"
                 f"        c.connect({str(socket_path)!r}); sys.exit(0 if c.recv(6) == b'answer' else 3)\n"
                 "    except OSError:\n"
                 "        sys.exit(4)\n"
                 "signal.signal(signal.SIGTERM, stop)\n"
                 f"open({str(tmp_path / 'ready')!r}, 'w').close()\n"
                 "while True: time.sleep(1)\n")
    lines: list[str] = []
    supervisor = Supervisor(echo=lines.append)
    server = supervisor.add("HSM service", lambda: spawn([sys.executable, "-c", needed]), depended_on=True)
    _run_until(supervisor, socket_path.exists)
    client = supervisor.add("scheduler", lambda: spawn([sys.executable, "-c", dependent]))
    _run_until(supervisor, (tmp_path / "ready").exists)  # its SIGTERM handler is in place
    started = time.monotonic()
    supervisor.stop(grace=5)
    assert time.monotonic() - started < 5
    assert client.wait(timeout=0) == 0, "the service it needed was stopped before it"
    assert server.wait(timeout=0) == 0
    assert lines == []
