"""One holder of a job at a time, across processes and (on PostgreSQL) machines (issue 15).

Found: two schedulers started at once both issued 6 of 8 lists (tokyo CRL 27 and 28 for the
same period).  A `Lease` is held by one process: on PostgreSQL a session advisory lock on a
connection of its own (it ends with the process or its connection, so a crashed leader's
lease frees itself); on SQLite an exclusive `flock` on a file beside the database (one
machine, as SQLite is).  `held()` says whether it is still ours, checked before each round.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(f"revoca:{name}".encode()).digest()[:8], "big", signed=True)


class Lease:
    def __init__(self, engine: sa.Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self._conn: Any = None  # PostgreSQL: the DB-API connection holding the advisory lock
        self._fd: int | None = None  # SQLite: the locked file
        self._sqlite = engine.dialect.name == "sqlite"

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it; True when it is ours (again)."""
        if self.held():
            return True
        self.release()
        return self._lock_file() if self._sqlite else self._advisory_lock()

    def held(self) -> bool:
        if self._sqlite:
            return self._fd is not None
        if self._conn is None:
            return False
        try:
            cur = self._conn.cursor()
            cur.execute("SELECT 1")
            cur.fetchone()
            cur.close()
        except Exception:  # the connection is gone, and the lock with it
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _lock_file(self) -> bool:
        database = self.engine.url.database
        if not database or database == ":memory:":
            return True  # one process is all there is
        path = Path(f"{database}.{self.name}.lease")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def _advisory_lock(self) -> bool:
        pooled = self.engine.raw_connection()
        conn = pooled.driver_connection
        pooled.detach()  # ours alone: the lock lives as long as this connection
        assert conn is not None
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT pg_try_advisory_lock(%s)", (_key(self.name),))
        (got,) = cur.fetchone()
        cur.close()
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True
