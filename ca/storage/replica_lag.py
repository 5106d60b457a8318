"""How far a PostgreSQL streaming standby is behind its primary, and whether it may answer now.

The OCSP responders read statuses from a standby ([database_read_url]) so that a node's reads
do not load the primary; a standby replays the primary's WAL a little later, so a revocation
just committed on the primary may not be on it yet.  The rule (bounded staleness):

- every `every` (a quarter of the bound by default) the primary's WAL insert position and its
  newest revocation id are sampled, then the standby's replay position and newest revocation id;
- the standby is *fresh as of* the time of the newest primary sample whose position it has
  replayed: it then holds every transaction committed before that time (the WAL is one ordered
  stream; the insert position covers commits not yet flushed, as with synchronous_commit off);
- a status is read from the standby only while it is fresh as of at most `max_lag` ago *and*
  it holds the newest revocation the primary held at the last sample; otherwise from the primary.

So a revocation committed more than `max_lag` ago always shows, and one committed before the
last sample (at most `every` ago) shows as soon as it is sampled, whatever the standby's lag.
When the primary cannot be asked the standby answers (nothing can be revoked without the
primary); when the standby cannot be asked the primary answers.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from ca.storage.models import Revocation

log = logging.getLogger(__name__)

_NEWEST = sa.select(sa.func.coalesce(sa.func.max(Revocation.id), 0)).scalar_subquery()
_PRIMARY = sa.select(sa.text("pg_current_wal_insert_lsn() - '0/0'::pg_lsn"), _NEWEST)
_STANDBY = sa.select(sa.text("coalesce(pg_last_wal_replay_lsn(), '0/0'::pg_lsn) - '0/0'::pg_lsn"), _NEWEST)


@dataclasses.dataclass(frozen=True, slots=True)
class Freshness:
    use_replica: bool
    staleness: float | None  # seconds the standby is behind (None: not known)
    why: str


class ReplicaLag:
    """Samples `primary` and `replica` (PostgreSQL engines) and says which one a status is read from."""

    def __init__(self, primary: sa.Engine, replica: sa.Engine, *, max_lag: float, every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.primary, self.replica = primary, replica
        self.max_lag = max_lag
        self.every = every if every is not None else max(0.01, max_lag / 4)
        self.clock = clock
        self._lock = threading.Lock()
        self._samples: collections.deque[tuple[float, int]] = collections.deque()  # (time, primary position)
        self._fresh_as_of: float | None = None
        self._primary_newest = 0
        self._replica_newest = 0
        self._sampled_at: float | None = None
        self._primary_down = False
        self._replica_down = False

    def freshness(self) -> Freshness:
        """Which database answers now; samples first when the last sample is older than `every`."""
        now = self.clock()
        if (self._sampled_at is None or now - self._sampled_at >= self.every) and self._lock.acquire(blocking=False):
            try:
                self._sample()
            finally:
                self._lock.release()
        now = self.clock()
        if self._replica_down:
            return Freshness(False, None, "the standby cannot be asked")
        if self._primary_down:
            return Freshness(True, None, "the primary cannot be asked")
        staleness = None if self._fresh_as_of is None else max(0.0, now - self._fresh_as_of)
        if staleness is None or staleness > self.max_lag:
            return Freshness(False, staleness, "the standby is behind the bound")
        if self._replica_newest < self._primary_newest:
            return Freshness(False, staleness, "the standby has not replayed the newest revocation")
        return Freshness(True, staleness, "fresh")

    def _sample(self) -> None:
        at = self.clock()  # before asking: the position read covers every commit made before `at`
        try:
            with self.primary.connect() as conn:
                position, newest = conn.execute(_PRIMARY).one()
            self._samples.append((at, int(position)))
            self._primary_newest = int(newest)
            self._note("primary", False)
        except sa.exc.SQLAlchemyError as exc:
            self._note("primary", True, exc)
        try:
            with self.replica.connect() as conn:
                replayed, newest = conn.execute(_STANDBY).one()
            self._replica_newest = int(newest)
            self._note("replica", False)
        except sa.exc.SQLAlchemyError as exc:
            self._note("replica", True, exc)
            replayed = None
        self._sampled_at = at
        if replayed is not None:
            while self._samples and self._samples[0][1] <= int(replayed):
                self._fresh_as_of = self._samples.popleft()[0]
        horizon = at - self.max_lag - self.every  # samples older than the bound can no longer make it fresh
        while len(self._samples) > 1 and self._samples[0][0] < horizon:
            self._samples.popleft()

    def _note(self, which: str, down: bool, exc: BaseException | None = None) -> None:
        attr = f"_{which}_down"
        if down and not getattr(self, attr):
            log.warning("OCSP status reads: the %s cannot be asked (%s); reading from the %s", which,
                        str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if exc else "",
                        "standby" if which == "primary" else "primary")
        elif not down and getattr(self, attr):
            log.warning("OCSP status reads: the %s answers again", which)
        setattr(self, attr, down)
