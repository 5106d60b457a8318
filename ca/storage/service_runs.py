"""Queries of the service runs (ca.audit.service_events): a row per start, closed at a clean stop.

`ServiceRunWrites.start` opens a run and closes, as unclean, the earlier runs of the same
service on the same host that never recorded a stop and whose process is gone; `stop` closes
a run.  Callers own the transaction (ca.storage.engine.session_scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from ca.storage.base import SessionStore
from ca.storage.models import ServiceRun

CLEAN = "clean"
UNCLEAN = "unclean"
FAILED = "failed"  # stopped by an error the service noticed itself


class ServiceRunWrites(SessionStore):
    def start(self, *, service: str, host: str, pid: int, identity: str, now: dt.datetime,
              alive: Callable[[int], bool]) -> tuple[ServiceRun, Sequence[ServiceRun], bool]:
        """(the new run, the earlier runs found open here whose process `alive` says is gone, now
        closed as unclean, whether the service ran here before at all).  Runs on other hosts are
        left alone: their pids mean nothing here."""
        here = (ServiceRun.service == service, ServiceRun.host == host)
        open_runs = self.session.scalars(sa.select(ServiceRun).where(*here, ServiceRun.stopped_at.is_(None))
                                         .order_by(ServiceRun.id)).all()
        gone = [run for run in open_runs if run.pid == pid or not alive(run.pid)]
        for old in gone:
            old.stopped_at, old.stop = now, UNCLEAN
        had_previous = bool(open_runs) or self.session.scalar(
            sa.select(ServiceRun.id).where(*here).limit(1)) is not None
        run = ServiceRun(service=service, host=host, pid=pid, identity=identity, started_at=now)
        self.session.add(run)
        self.session.flush()
        return run, gone, had_previous

    def stop(self, run_id: int, *, now: dt.datetime, how: str) -> ServiceRun | None:
        """Close a run (None when it is not there, or was closed as unclean by a later start)."""
        run = self.session.get(ServiceRun, run_id)
        if run is None or run.stopped_at is not None:
            return None
        run.stopped_at, run.stop = now, how
        return run
