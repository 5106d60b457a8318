"""The OCSP query history (seed 004 5.5.1.2), written in batches off the request path.

A request only appends a tuple to a deque (thread-safe, no lock, about a microsecond); a
thread takes what is there every FLUSH_EVERY seconds (or sooner when BATCH rows wait) and
inserts it with one executemany in one transaction, on a DB-API connection of its own: the
SQL comes from the model, only the values are converted here, as ca.models' types store
them (SQLAlchemy's per-row processing doubled the cost of an answer).  `close` writes what is
left, so a clean stop loses nothing; a killed worker loses at most the last second.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from ca.storage.models import OCSPQuery
from ocsp.lookups import compile_positional

log = logging.getLogger("revoca.ocsp")

FLUSH_EVERY = 1.0
BATCH = 50_000  # rows; at 10,000 answers/s per worker the thread writes once a second
_COLUMNS = ("at", "verifier_id", "ca_id", "channel", "nonce", "response_status", "answers")


def _sqlite_time(ts: float) -> str:
    """UTC as SQLite keeps it (naive text, as ca.models.UTCDateTime stores it there)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class QueryHistory:
    def __init__(self, engine: sa.Engine, *, flush_every: float = FLUSH_EVERY, batch: int = BATCH,
                 thread: bool = True) -> None:
        self.engine = engine
        self.flush_every = flush_every
        self.batch = batch
        self._rows: collections.deque[tuple[Any, ...]] = collections.deque()
        self._sqlite = engine.dialect.name == "sqlite"
        self._sql, names = compile_positional(
            sa.insert(OCSPQuery).values({c: sa.bindparam(c) for c in _COLUMNS}), engine)
        if names != _COLUMNS:  # the rows below are built in _COLUMNS order
            raise RuntimeError(f"unexpected parameter order for ocsp_queries: {names}")
        self._conn: Any = None
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ocsp-history", daemon=True) if thread else None
        if self._thread is not None:
            self._thread.start()

    def record(self, outcome: Any) -> None:
        """Queue one query (`outcome` is an ocsp.responder.Outcome); the time is taken now."""
        self._rows.append((time.time(), outcome.verifier_id, outcome.ca_id, outcome.channel, outcome.nonce,
                           outcome.response_status, outcome.answers))
        if len(self._rows) >= self.batch:
            self._wake.set()

    def flush(self) -> int:
        with self._flush_lock:
            taken = []
            with contextlib.suppress(IndexError):
                while True:
                    taken.append(self._rows.popleft())
            if not taken:
                return 0
            try:
                self._insert(taken)
            except Exception:
                log.exception("could not write %d OCSP queries to the history; keeping them for the next try",
                              len(taken))
                self._close_connection()
                self._rows.extendleft(reversed(taken))
                return 0
            return len(taken)

    def _insert(self, taken: list[tuple[Any, ...]]) -> None:
        if self._conn is None:
            pooled = self.engine.raw_connection()
            self._conn = pooled.driver_connection
            pooled.detach()  # ours: it runs its own transactions
        at = _sqlite_time if self._sqlite else _aware_time
        params = [(at(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in taken]
        cur = self._conn.cursor()
        try:
            if self._sqlite:
                cur.execute("BEGIN IMMEDIATE")  # the connection is in autocommit mode (ca.db)
                try:
                    cur.executemany(self._sql, params)
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                cur.execute("COMMIT")
            else:
                try:
                    cur.executemany(self._sql, params)
                except BaseException:
                    self._conn.rollback()
                    raise
                self._conn.commit()
        finally:
            cur.close()

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_every)
            self._wake.clear()
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self._close_connection()
