"""Which parts of revoca are up, as `revoca status` and /metrics report them (issue 15).

Found: with the HSM service dead `revoca status` exited 0; with slapd dead it said "LDAP
publication: nothing waiting" and exited 0; /metrics had no LDAP gauge.  Each component is
checked the cheapest way that cannot lie:

- database: a read;
- HSM service: its socket answers `status` (and whether it is activated);
- LDAP repository: its port accepts a connection;
- scheduler, publisher: someone holds their lease (ca.storage.leases) -- a lease nobody holds
  is one this check can take, and gives back at once.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable
from typing import Any

from ca.errors import RevocaError
from ca.storage.engine import Engine, session_scope
from ca.storage.leases import Lease
from ca.storage.reporting import ReportingReads

COMPONENTS = ("database", "hsm", "ldap", "scheduler", "publisher")


@dataclasses.dataclass(frozen=True, slots=True)
class Component:
    name: str
    up: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'up' if self.up else 'DOWN'} ({self.detail})"


def database(engine: Engine) -> Component:
    try:
        with session_scope(engine, readonly=True) as session:
            ReportingReads(session).waiting_counts()
    except RevocaError as exc:
        return Component("database", False, str(exc))
    return Component("database", True, engine.url.render_as_string(hide_password=True))


def hsm(status: Callable[[], dict[str, Any]]) -> Component:
    try:
        reply = status()
    except RevocaError as exc:
        return Component("hsm", False, str(exc))
    return Component("hsm", True, str(reply.get("line", "answering")))


def ldap(host: str, port: int, timeout: float = 2.0) -> Component:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return Component("ldap", False, f"nothing answers on {host}:{port} ({exc.strerror or exc})")
    return Component("ldap", True, f"listening on {host}:{port}")


def lease_holder(engine: Engine, job: str) -> Component:
    probe = Lease(engine, job)
    try:
        free = probe.try_acquire()
    except Exception as exc:  # the database is away: the job cannot be checked either
        return Component(job, False, f"cannot check: {exc}")
    finally:
        probe.release()
    if free:
        return Component(job, False, f"no {job} holds the lease: `revoca serve {job}` is not running")
    return Component(job, True, f"a {job} holds the lease")


def check_all(engine: Engine, hsm_status: Callable[[], dict[str, Any]], ldap_port: int,
              ldap_host: str = "127.0.0.1") -> list[Component]:
    db = database(engine)
    found = [db, hsm(hsm_status), ldap(ldap_host, ldap_port)]
    if db.up:
        found += [lease_holder(engine, "scheduler"), lease_holder(engine, "publisher")]
    else:
        found += [Component(job, False, "cannot check without the database") for job in ("scheduler", "publisher")]
    return found
