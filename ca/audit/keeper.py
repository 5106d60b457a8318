"""Keeping the records anchored, driven by the scheduler: history seals, archive stamps and
audit checkpoints.

Every round seals the settled access histories (OCSP queries, CRL fetches, directory reads) and
stamps what the archive has not stamped yet (with `monthly_report`, after making last month's
provision status report when it is due), the audit records and checkpoints among it (so
that `audit prune` finds them archived); a checkpoint is stamped when the newest is older than
the interval, and after every round that issued a CRL or ARL.  The time-stamp authority being unavailable never
stops CRL issuance: the failure is logged and audited, and the next round tries again.

The keeper drives the archive, so ca.audit depends on ca.archive and never the other way: the
archive takes its history encoding from ca.storage.history and its Stamper from ca.timestamps.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ca import audit
from ca.archive.stamping import stamp_round
from ca.audit import checkpoints, history_seal
from ca.errors import RevocaError
from ca.storage.audit import AuditReads
from ca.storage.engine import Engine, session_scope
from ca.timestamps import Stamper

log = logging.getLogger("revoca.audit")

INTERVAL = dt.timedelta(hours=1)
ACTOR = "system:scheduler"
MAX_ROUNDS = 10  # archive rounds per tick: a first run over a big archive spreads over several ticks


class AuditKeeper:
    def __init__(self, engine: Engine, stamper: Stamper, data_dir: Path, *,
                 interval: dt.timedelta = INTERVAL,
                 monthly_report: Callable[[dt.datetime], object] | None = None) -> None:
        """`monthly_report(now)`: also make last month's provision status report when it is due
        (`revoca serve scheduler` wires ca.reports.provision.make_if_due; the keeper only calls it)."""
        self.monthly_report = monthly_report
        self.engine = engine
        self.stamper = stamper
        self.data_dir = Path(data_dir)
        self.interval = interval

    def tick(self, now: dt.datetime, *, issued_lists: bool = False) -> Any:
        with session_scope(self.engine) as session:
            history_seal.seal(session, now)
        if self.monthly_report is not None:
            self._monthly_report(now)  # before the archive round, which then stamps it
        self._stamp_archive(now)
        reason = "crl" if issued_lists else "periodic" if self._checkpoint_due(now) else None
        return None if reason is None else self.checkpoint(now, reason)

    def checkpoint(self, now: dt.datetime, reason: str, actor: str = ACTOR) -> Any:
        """Stamp the chain's head; None (logged and audited) when the TSA cannot stamp now."""
        try:
            with session_scope(self.engine) as session:
                return checkpoints.take(session, self.stamper, reason, now, actor=actor)
        except RevocaError as exc:
            self._failed("audit.checkpoint", exc, reason=reason)
            return None

    def _monthly_report(self, now: dt.datetime) -> None:
        assert self.monthly_report is not None
        try:
            self.monthly_report(now)
        except RevocaError as exc:
            self._failed("report.provision", exc)

    def _stamp_archive(self, now: dt.datetime) -> None:
        try:
            for _ in range(MAX_ROUNDS):
                with session_scope(self.engine) as session:
                    if not stamp_round(session, self.stamper, self.data_dir, now):
                        return
        except RevocaError as exc:
            self._failed("archive.stamp", exc)

    def _failed(self, event_type: str, exc: RevocaError, **detail: object) -> None:
        log.warning("%s failed: %s", event_type, exc)
        audit.record_failure(self.engine, event_type, actor=ACTOR, error=str(exc), **detail)

    def _checkpoint_due(self, now: dt.datetime) -> bool:
        with session_scope(self.engine, readonly=True) as session:
            newest = AuditReads(session).newest_checkpoint_at()
        return newest is None or newest + self.interval <= now
