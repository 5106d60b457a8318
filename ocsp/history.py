"""The OCSP query history (seed 004 5.5.1.2), written in batches off the request path.

A request only appends a tuple to a deque (thread-safe, no lock, about a microsecond); a
thread takes what is there every FLUSH_EVERY seconds (or sooner when BATCH rows wait) and
inserts it with one executemany in one transaction (ca.storage.ocsp_history, on a DB-API
connection of its own).  `close` writes what is left, so a clean stop loses nothing; a killed
worker loses at most the last second.

While the database is away the rows wait in memory, at most `max_pending` of them (about
200 bytes each): beyond that the oldest are dropped, counted in `dropped` and logged, so that
an outage cannot exhaust a worker's memory (issue 12).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from typing import Any

from ca.storage.engine import Engine
from ca.storage.ocsp_history import QueryHistoryWriter

log = logging.getLogger("revoca.ocsp")

FLUSH_EVERY = 1.0
BATCH = 50_000  # rows; at 10,000 answers/s per worker the thread writes once a second
MAX_PENDING = 1_000_000  # rows kept while the database is away (about 200 MB)


class QueryHistory:
    def __init__(self, engine: Engine, *, flush_every: float = FLUSH_EVERY, batch: int = BATCH,
                 thread: bool = True, max_pending: int = MAX_PENDING) -> None:
        self.engine = engine
        self.flush_every = flush_every
        self.batch = batch
        self.max_pending = max_pending
        self.dropped = 0  # rows lost because the database stayed away too long
        self._rows: collections.deque[tuple[Any, ...]] = collections.deque()
        self._writer = QueryHistoryWriter(engine)  # rows in its COLUMNS order
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
        if len(self._rows) > self.max_pending:
            self._drop_oldest()
        if len(self._rows) >= self.batch:
            self._wake.set()

    def _drop_oldest(self) -> None:
        with contextlib.suppress(IndexError):
            while len(self._rows) > self.max_pending:
                self._rows.popleft()
                if self.dropped % 100_000 == 0:
                    log.error("the OCSP query history cannot be written and %d rows wait: dropping the oldest "
                              "(%d dropped so far)", self.max_pending, self.dropped + 1)
                self.dropped += 1

    def flush(self) -> int:
        with self._flush_lock:
            taken = []
            with contextlib.suppress(IndexError):
                while True:
                    taken.append(self._rows.popleft())
            if not taken:
                return 0
            try:
                self._writer.insert(taken)
            except Exception:
                log.exception("could not write %d OCSP queries to the history; keeping them for the next try",
                              len(taken))
                self._writer.close()
                self._rows.extendleft(reversed(taken))
                if len(self._rows) > self.max_pending:
                    self._drop_oldest()
                return 0
            return len(taken)

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
        self._writer.close()
