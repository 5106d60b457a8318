"""sd_notify: services tell systemd they are ready and alive, and a stuck loop stops saying so.

The listener is a real Unix datagram socket, as systemd's NOTIFY_SOCKET is; the services are
real `revoca serve ...` processes on a copied demo installation.  The scheduler's stuck loop is
a round waiting on an HSM socket that accepts and never answers (the client waits 60 s): systemd
(WatchdogSec= shorter than that) would kill it and Restart= start it again.  The scheduler runs with
WatchdogSec=0.2 (WATCHDOG_USEC=200000, a ping due every 0.1 s), so that a second of silence is
five whole watchdog periods.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca.host.notify import BeatingEvent, Heartbeat, notify, ready_when_listening, watchdog_interval

from support.installation import CeremonyTemplates, Installation, demo_installation

REVOCA = str(Path(sys.executable).with_name("revoca"))


class NotifyListener:
    """A NOTIFY_SOCKET: every datagram received, with the monotonic time it came."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def states(self, since: float = 0.0) -> list[str]:
        return [state for at, state in self.received if at >= since]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    made = NotifyListener(tmp_path / "notify.sock")
    yield made
    made.close()


def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_loop_that_waits_on_its_stop_event_pings_and_a_stuck_one_does_not(listener: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "100000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 0.1
    assert watchdog_interval({**env, "WATCHDOG_PID": "1"}) is None  # meant for another process
    stop = BeatingEvent(Heartbeat(env=env))
    stuck = threading.Event()
    free = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if stuck.is_set():
                free.wait()  # a round that hangs
            stop.wait(0.05)

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        wait_for(lambda: listener.states().count("WATCHDOG=1") >= 3)
        assert listener.states()[0] == "READY=1"
        stuck.set()
        time.sleep(0.3)  # a ping already on its way may still arrive
        quiet_from = time.monotonic()
        time.sleep(0.5)
        assert listener.states(quiet_from) == []  # five intervals of 0.1 s without a ping
        free.set()
        stuck.clear()
        resumed = time.monotonic()
        wait_for(lambda: "WATCHDOG=1" in listener.states(resumed), timeout=2)
    finally:
        free.set()
        stop.set()
        worker.join()


def test_outside_systemd_nothing_is_sent() -> None:
    assert notify("READY=1", env={}) is False
    beat = Heartbeat(env={})
    beat.beat()
    assert not beat.enabled


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    with demo_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("notify"), with_keys=False) as made:
        yield made


WATCHDOG_S = 0.2  # the scheduler's WatchdogSec=


def start_scheduler(installation: Installation, listener: NotifyListener, hsm_socket: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **installation.env(REVOCA_HSM_SOCKET=str(hsm_socket)),
           "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": str(round(WATCHDOG_S * 1e6))}
    return subprocess.Popen([REVOCA, "serve", "scheduler"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.slow
def test_the_scheduler_pings_while_it_works_and_not_while_a_round_hangs(installation: Installation,
                                                                       listener: NotifyListener,
                                                                       tmp_path: Path) -> None:
    # working: no HSM service at all, so each round fails at once and the loop waits for the next
    proc = start_scheduler(installation, listener, tmp_path / "no-hsm.sock")
    try:
        wait_for(lambda: "READY=1" in listener.states())
        ready = next(at for at, state in listener.received if state == "READY=1")
        wait_for(lambda: listener.states(ready + 0.01).count("WATCHDOG=1") >= 4)  # every ~0.1 s (half of 0.2 s)
    finally:
        stop(proc)

    # stuck: an HSM socket that accepts and never answers; the round waits there (60 s)
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(str(tmp_path / "hung.sock"))
    hung.listen(8)
    hung.settimeout(30)
    started = time.monotonic()
    proc = start_scheduler(installation, listener, tmp_path / "hung.sock")
    try:
        wait_for(lambda: "READY=1" in listener.states(started))
        connection, _ = hung.accept()  # the round has reached the HSM (and waits for its answer)
        quiet_from = time.monotonic() + 0.5  # a ping sent before the round connected may still arrive
        time.sleep(0.5 + 5 * WATCHDOG_S)
        assert proc.poll() is None
        assert listener.states(quiet_from) == []  # 5 periods: systemd with WatchdogSec=0.2 would have killed it
        connection.close()
    finally:
        stop(proc)
        hung.close()


def test_a_server_revoca_does_not_loop_for_is_ready_once_its_port_accepts(listener: NotifyListener) -> None:
    env = {"NOTIFY_SOCKET": str(listener.path)}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    thread = ready_when_listening("127.0.0.1", port, heartbeat=Heartbeat(env=env), timeout=60)
    assert thread is not None
    time.sleep(0.5)
    assert listener.states() == []  # nothing listens yet: not ready
    with socket.create_server(("127.0.0.1", port)):
        wait_for(lambda: listener.states(), timeout=20)
        thread.join(20)
    assert listener.states() == [f"READY=1\nSTATUS=listening on 127.0.0.1:{port}"]
