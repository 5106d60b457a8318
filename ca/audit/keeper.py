"""Keeping the audit chain anchored: history seals and checkpoints, driven by the scheduler.

Every round seals the settled OCSP and CRL-fetch history; a checkpoint is stamped when the
newest is older than the interval, and after every round that issued a CRL or ARL.  The
time-stamp authority being unavailable never stops CRL issuance: the failure is logged and
audited, and the next round tries again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import sqlalchemy as sa

from ca import audit
from ca.audit import checkpoints, history_seal
from ca.db import session_scope
from ca.errors import RevocaError
from ca.models import AuditCheckpoint

log = logging.getLogger("revoca.audit")

INTERVAL = dt.timedelta(hours=1)
ACTOR = "system:scheduler"


class AuditKeeper:
    def __init__(self, engine: sa.Engine, stamper: Callable[[], checkpoints.Stamper], *,
                 interval: dt.timedelta = INTERVAL) -> None:
        self.engine = engine
        self._stamper = stamper  # built lazily: the TSA key may only be usable once the HSM is activated
        self.interval = interval

    def tick(self, now: dt.datetime, *, issued_lists: bool = False) -> AuditCheckpoint | None:
        with session_scope(self.engine) as session:
            history_seal.seal(session, now)
        reason = "crl" if issued_lists else "periodic" if self._checkpoint_due(now) else None
        if reason is None:
            return None
        try:
            with session_scope(self.engine) as session:
                return checkpoints.take(session, self._stamper(), reason, now, actor=ACTOR)
        except RevocaError as exc:
            log.warning("audit checkpoint not stamped: %s", exc)
            audit.record_failure(self.engine, "audit.checkpoint", actor=ACTOR, error=str(exc), reason=reason)
            return None

    def _checkpoint_due(self, now: dt.datetime) -> bool:
        with session_scope(self.engine, readonly=True) as session:
            newest = session.scalar(sa.select(sa.func.max(AuditCheckpoint.created_at)))
        return newest is None or newest + self.interval <= now
