"""Telling systemd a service is ready and alive (sd_notify), without libsystemd.

Under a unit with `Type=notify`, systemd sets NOTIFY_SOCKET to a Unix datagram socket (a path,
or an abstract name written with a leading "@") and waits for "READY=1" before it counts the
service started; with `WatchdogSec=` it also sets WATCHDOG_USEC (and WATCHDOG_PID) and kills
and restarts (`Restart=on-failure`) a service that sends no "WATCHDOG=1" within that time.
The protocol is one datagram of newline-separated assignments (sd_notify(3)); nothing else.

The watchdog is only worth having where the ping comes from the loop that does the work: a
stuck loop must stop pinging.  So `Heartbeat.beat` is called from the service's own main loop
(the scheduler's and the publisher's waits on their stop event, through `BeatingEvent`; the
HSM service's accept loop), never from a timer thread of its own.  Outside systemd (no
NOTIFY_SOCKET) every call here is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("revoca.notify")

READY = "READY=1"
WATCHDOG = "WATCHDOG=1"
STOPPING = "STOPPING=1"


def notify(state: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` ("READY=1", "WATCHDOG=1", "STATUS=...") to $NOTIFY_SOCKET; False when there is
    none or it cannot be reached (logged once at debug: a service outside systemd is normal)."""
    address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket name
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.debug("sd_notify %s to %r: %s", state.split("=", 1)[0], address, exc)
        return False
    return True


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds systemd allows between two pings (WATCHDOG_USEC), or None when there is no watchdog
    for this process (none set, or WATCHDOG_PID names another process)."""
    env = os.environ if env is None else env
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


class Heartbeat:
    """READY=1 once, then WATCHDOG=1 at most every half of the watchdog interval (systemd's advice),
    each sent from whichever loop calls `beat`.  Without NOTIFY_SOCKET it sends nothing."""

    def __init__(self, *, env: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        env = dict(os.environ if env is None else env)
        self._env = env
        self._clock = clock
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        interval = watchdog_interval(env)
        self.every = interval / 2 if interval else None
        self._last: float | None = None
        self._ready = False
        self._lock = threading.Lock()

    def ready(self, status: str = "") -> None:
        """The service is up: READY=1 (with a STATUS= line), sent once."""
        with self._lock:
            if self._ready or not self.enabled:
                return
            self._ready = True
            self._last = self._clock()
        notify(READY + (f"\nSTATUS={status}" if status else ""), env=self._env)

    def beat(self) -> None:
        """Called from the main loop: READY=1 the first time, then WATCHDOG=1 when one is due."""
        if not self.enabled:
            return
        if not self._ready:
            self.ready()
            return
        if self.every is None:
            return
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self.every:
                return
            self._last = now
        notify(WATCHDOG, env=self._env)

    def stopping(self) -> None:
        if self.enabled:
            notify(STOPPING, env=self._env)


class BeatingEvent(threading.Event):
    """A stop event whose waits and checks beat the heartbeat: a service loop that waits on its stop
    event between rounds (the scheduler, the publisher) pings systemd's watchdog from that loop, and
    stops pinging when a round hangs."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        super().__init__()
        self.heartbeat = heartbeat

    def is_set(self) -> bool:
        self.heartbeat.beat()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None or self.heartbeat.every is None:
            self.heartbeat.beat()
            return super().wait(timeout)
        # a long wait is cut into pieces short enough to ping in between
        deadline = time.monotonic() + timeout
        while True:
            self.heartbeat.beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return super().is_set()
            if super().wait(min(left, self.heartbeat.every)):
                return True


def ready_when_listening(host: str, port: int, *, status: str = "", timeout: float = 120.0,
                         heartbeat: Heartbeat | None = None) -> threading.Thread | None:
    """For a server whose loop revoca does not own (granian): READY=1 once `host:port` accepts a
    connection, from a thread of the main process (systemd takes notifications from MainPID)."""
    beat = heartbeat or Heartbeat()
    if not beat.enabled:
        return None

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, port), timeout=1).close()
            except OSError:
                time.sleep(0.2)
                continue
            beat.ready(status or f"listening on {host}:{port}")
            return
        log.warning("not ready after %.0f s: nothing listens on %s:%d", timeout, host, port)

    thread = threading.Thread(target=wait, name="revoca-sd-ready", daemon=True)
    thread.start()
    return thread
