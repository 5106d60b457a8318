"""`revoca run`'s supervisor: a service that dies is started again, and nothing outlives a stop.

Found as faults would come (issue 15): under `revoca run`, `kill -9` of the publisher ended the
whole stack with a line that did not say which service; `kill -9` of slapd went unnoticed; after
Ctrl-C a granian master could stay behind, because each child got SIGTERM and 10 s, never SIGKILL.

Here every child (and slapd, a daemon watched through its pid file) is looked at twice a
second.  One that exited is reported in one line (its name and how it ended) and started again
after a back-off (1, 2, 5, 10, 30 s); one that fails `GIVE_UP_AFTER` times within
`FAST_FAILURE_WINDOW` seconds is given up, which stops `revoca run` with one line saying so.
`stop` stops the services in two rounds: first those no other service needs, then those the
others need while they stop (`depended_on`: the HSM service, slapd).  Each round sends SIGTERM,
waits up to `grace` seconds, then SIGKILLs what is left and waits for it: no child is left behind.

Why two rounds (found: `revoca run` stopped right after its start hung 10 s, SIGKILLing ten
services): a service stopping may still call the HSM service (the scheduler's round, stamping
the archive inside a database transaction); when the HSM service got SIGTERM at the same moment,
it had stopped answering but still held its socket while it wrote its own stop record, which
waited for that very transaction: nobody stopped until the supervisor killed them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

from ca.errors import ServiceUnavailable

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
GIVE_UP_AFTER = 5
FAST_FAILURE_WINDOW = 60.0


class Child(Protocol):
    """What the supervisor needs of a running service (subprocess.Popen is one)."""

    pid: int

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...


class GroupChild:
    """A child started in a process group of its own (`start_new_session=True`): signals go to the
    whole group, so that a gunicorn or granian master's workers go with it, and whatever of the
    group outlived its leader is killed before the service is started again."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def poll(self) -> int | None:
        status = self.proc.poll()
        if status is not None:
            self._signal_group(signal.SIGKILL)  # orphaned workers would keep the port
        return status

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        status = self.proc.wait(timeout)
        self._signal_group(signal.SIGKILL)
        return status

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


def spawn(argv: list[str], **popen: object) -> GroupChild:
    return GroupChild(subprocess.Popen(argv, start_new_session=True, **popen))  # type: ignore[call-overload]


class DaemonChild:
    """A daemon that forks away and leaves a pid (slapd): watched through `pid()`."""

    def __init__(self, pid: Callable[[], int | None], stop: Callable[[], object]) -> None:
        self._pid = pid
        self._stop = stop
        self.pid = pid() or 0

    def poll(self) -> int | None:
        return None if self._pid() is not None else 1

    def terminate(self) -> None:
        self._stop()

    def kill(self) -> None:
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pid() is not None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("slapd", timeout or 0)
            time.sleep(0.05)
        return 0


@dataclasses.dataclass
class Service:
    name: str
    start: Callable[[], Child]
    child: Child | None = None
    depended_on: bool = False  # others need it while they stop: stopped after them
    failures: list[float] = dataclasses.field(default_factory=list)  # monotonic times of recent exits
    restart_at: float | None = None


def how_it_ended(status: int | None) -> str:
    if status is None:
        return "is gone"
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


class Supervisor:
    def __init__(self, *, echo: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 backoff: tuple[float, ...] = BACKOFF_S, give_up_after: int = GIVE_UP_AFTER,
                 window: float = FAST_FAILURE_WINDOW) -> None:
        self.echo = echo
        self.clock = clock
        self.backoff = backoff
        self.give_up_after = give_up_after
        self.window = window
        self.services: list[Service] = []

    def add(self, name: str, start: Callable[[], Child], *, depended_on: bool = False) -> Child:
        """Start a service now and watch it from here on.  `depended_on`: other services need it
        until they have stopped (the HSM service, slapd), so `stop` stops it after them."""
        service = Service(name, start, depended_on=depended_on)
        service.child = start()
        self.services.append(service)
        return service.child

    def poll(self) -> None:
        """Notice exits, restart what is due; ServiceUnavailable once a service keeps failing."""
        now = self.clock()
        for service in self.services:
            if service.restart_at is not None:
                if now >= service.restart_at:
                    service.restart_at = None
                    try:
                        service.child = service.start()
                    except Exception as exc:  # the start itself failed: counts like an exit
                        service.child = None
                        self._failed(service, f"could not be started again: {exc}", now)
                        continue
                    self.echo(f"revoca: {service.name} started again (pid {service.child.pid})")
                continue
            if service.child is None:
                continue
            status = service.child.poll()
            if status is None:
                continue
            self._failed(service, how_it_ended(status), now)

    def _failed(self, service: Service, what: str, now: float) -> None:
        service.failures = [t for t in service.failures if now - t < self.window] + [now]
        if len(service.failures) >= self.give_up_after:
            raise ServiceUnavailable(f"{service.name} {what}, its {len(service.failures)}th failure within "
                                     f"{self.window:.0f} s: giving up; see its messages above")
        delay = self.backoff[min(len(service.failures) - 1, len(self.backoff) - 1)]
        service.restart_at = now + delay
        self.echo(f"revoca: {service.name} {what}; starting it again in {delay:g} s "
                  f"(failure {len(service.failures)} of {self.give_up_after} allowed within {self.window:.0f} s)")

    def stop(self, grace: float = 10.0) -> None:
        """Those no other service needs first, then the `depended_on` ones: each round SIGTERM,
        up to `grace` seconds for all of the round, then SIGKILL and wait: none is left."""
        for depended_on in (False, True):
            self._stop_round([s.child for s in reversed(self.services)
                              if s.child is not None and s.depended_on == depended_on], grace)

    def _stop_round(self, children: list[Child], grace: float) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = self.clock() + grace
        for child in children:
            try:
                child.wait(timeout=max(0.0, deadline - self.clock()))
            except subprocess.TimeoutExpired:
                self.echo(f"revoca: pid {child.pid} did not stop within {grace:g} s; killing it")
                child.kill()
                child.wait()
