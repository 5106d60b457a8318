"""Writing the OCSP query history (seed 004 5.5.1.2): one executemany per batch, in one
transaction, on a DB-API connection of its own.

Speed path: the SQL comes from the model (compiled once), only the values are converted
here, as ca.storage.models' types store them (SQLAlchemy's per-row processing doubled the
cost of an answer).  ocsp.history gathers the rows off the request path and calls `insert`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from ca.storage.models import OCSPQuery
from ca.storage.ocsp_lookups import compile_positional

# The order of the values in each row given to `insert`; `at` is a POSIX timestamp.
COLUMNS = ("at", "verifier_id", "ca_id", "channel", "nonce", "response_status", "answers")


def _sqlite_time(ts: float) -> str:
    """UTC as SQLite keeps it (naive text, as ca.storage.models.UTCDateTime stores it there)."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class QueryHistoryWriter:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._sql, names = compile_positional(
            sa.insert(OCSPQuery).values({c: sa.bindparam(c) for c in COLUMNS}), engine)
        if names != COLUMNS:  # the rows below are built in COLUMNS order
            raise RuntimeError(f"unexpected parameter order for ocsp_queries: {names}")
        self._conn: Any = None

    def insert(self, taken: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows (values in COLUMNS order) in one transaction; raises if it could not."""
        if self._conn is None:
            pooled = self.engine.raw_connection()
            self._conn = pooled.driver_connection
            pooled.detach()  # ours: it runs its own transactions
        at = _sqlite_time if self._sqlite else _aware_time
        params = [(at(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in taken]
        cur = self._conn.cursor()
        try:
            if self._sqlite:
                cur.execute("BEGIN IMMEDIATE")  # the connection is in autocommit mode (ca.storage.engine)
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

    def close(self) -> None:
        """Drop the connection (after a failure, or at the end); the next insert opens a new one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
