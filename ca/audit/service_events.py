"""Start and stop of the long-running services, in the audit log (seed 004 5.4.7: events are
collected from the system's start; 5.5.1.2: start and stop logs, 起動停止ログ, are archived).

Each service records `service.started` once it starts serving and `service.stopped` when it
stops cleanly (SIGTERM, Ctrl-C, the end of its loop), with `service:<name>` as the actor and
its host, pid and Unix identity in the detail.  A run that ended without its stop record
(SIGKILL, a crash, lost power) is noticed by the next start of the same service on the same
host (ca.storage.service_runs: an open run whose process is gone): that `service.started` says
`previous_stop: "unclean"` and names the runs.  Runs on other hosts are not judged: a pid
means nothing there.

The names are those of ca.storage.grants (signer, ra, ocsp, tsa, status, scheduler,
publisher): each service writes through its own database role, which may append audit records
and keep its runs.  The calls sit on the service side (ca.ra.server, ca.tsa.server,
ca.status_page.server, ocsp.server, ca.scheduler, repository.publisher), not in the CLI that
starts them.  A record that cannot be written is logged and does not keep a service from
starting or stopping: the database being away is then the first thing its log says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import pwd
import socket
from collections.abc import Callable, Iterator
from typing import Any

from ca import audit
from ca.storage.engine import Engine, session_scope
from ca.storage.service_runs import CLEAN, FAILED, UNCLEAN, ServiceRunWrites

log = logging.getLogger("revoca.service")

STARTED = "service.started"
STOPPED = "service.stopped"

EngineSource = Engine | Callable[[], Engine]


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    """One run of a service, as its start recorded it."""

    service: str
    run_id: int
    host: str
    pid: int
    identity: str
    started_at: dt.datetime
    previous_stop: str  # clean | unclean | first


def actor(name: str) -> str:
    return f"service:{name}"


def identity() -> str:
    """The Unix user this process runs as (its uid when the user has no name)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # there, another identity's
        return True
    return True


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def service_started(engine: Engine, name: str, *, pid: int | None = None, user: str | None = None,
                    host: str | None = None, now: dt.datetime | None = None, **detail: Any) -> Run:
    """Open a run and record `service.started`; closes (and names) the runs here that ended uncleanly."""
    pid = os.getpid() if pid is None else pid
    user = identity() if user is None else user
    host = socket.gethostname() if host is None else host
    now = now or _utc_now()
    with session_scope(engine) as session:
        store = ServiceRunWrites(session)
        run, gone, had_previous = store.start(service=name, host=host, pid=pid, identity=user, now=now,
                                              alive=_alive)
        previous = UNCLEAN if gone else CLEAN if had_previous else "first"
        if gone:
            detail["unclean_runs"] = [{"pid": r.pid, "started_at": r.started_at.isoformat()} for r in gone]
        audit.record(session, STARTED, actor=actor(name), at=now, service=name, host=host, pid=pid, identity=user,
                     previous_stop=previous, **detail)
        run_id = run.id
    if gone:
        log.warning("%s: %d earlier run(s) on %s ended without a clean stop (pid %s)", name, len(gone), host,
                    ", ".join(str(r.pid) for r in gone))
    return Run(name, run_id, host, pid, user, now, previous)


def service_stopped(engine: Engine, run: Run, *, error: str | None = None, now: dt.datetime | None = None,
                    **detail: Any) -> None:
    """Close the run and record `service.stopped`: a clean stop, or (with `error`) one forced by
    an error the service noticed itself."""
    now = now or _utc_now()
    how = CLEAN if error is None else FAILED
    with session_scope(engine) as session:
        ServiceRunWrites(session).stop(run.run_id, now=now, how=how)
        extra = {"error": error} if error is not None else {}
        audit.record(session, STOPPED, actor=actor(run.service), at=now, result=audit.SUCCESS if error is None
                     else audit.FAILURE, service=run.service, host=run.host, pid=run.pid, identity=run.identity,
                     stop=how, ran_s=round((now - run.started_at).total_seconds(), 3), **extra, **detail)


@contextlib.contextmanager
def _engine(source: EngineSource) -> Iterator[Engine]:
    """The engine to write with: a given one as it is, or one made for the write and disposed
    after it (a gunicorn master must hold no connection when it forks its workers)."""
    if isinstance(source, Engine):
        yield source
        return
    engine = source()
    try:
        yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def running(source: EngineSource, name: str, **detail: Any) -> Iterator[Run | None]:
    """Record the start now and the stop when the block ends, in this process only.

    SIGTERM and Ctrl-C (KeyboardInterrupt, or a server's SystemExit with status 0) are a clean
    stop; an exception or a non-zero exit is a stop with an error.  A worker forked inside the
    block (gunicorn, granian) that unwinds through it records nothing: only the process that
    entered the block does.  Yields the Run, or None when the start could not be recorded.
    """
    pid = os.getpid()
    run: Run | None = None
    try:
        with _engine(source) as engine:
            run = service_started(engine, name, pid=pid, **detail)
    except Exception:
        log.exception("%s: could not record its start in the audit log", name)
    error: str | None = None
    try:
        yield run
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        if exc.code not in (0, None):
            error = f"exit status {exc.code}"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        if run is not None and os.getpid() == pid:
            try:
                with _engine(source) as engine:
                    service_stopped(engine, run, error=error)
            except Exception:
                log.exception("%s: could not record its stop in the audit log", name)
