"""One holder of a job at a time, across processes and (on PostgreSQL) machines (issue 15).

Found: two schedulers started at once both issued 6 of 8 lists (tokyo CRL 27 and 28 for the
same period).  A `Lease` is held by one process: on PostgreSQL a session advisory lock on a
connection of its own (it ends with the process or its connection, so a crashed leader's
lease frees itself); on SQLite an exclusive `flock` on a file beside the database (one
machine, as SQLite is).  `held()` says whether it is still ours, checked before each round.
`holder()` says who else holds one, for `revoca status`: the process (SQLite: its pid, from the
kernel's lock table) or its PostgreSQL backend (from pg_locks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def _key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(f"revoca:{name}".encode()).digest()[:8], "big", signed=True)


@dataclasses.dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lease, as far as the database (or, for SQLite, this machine) can tell."""

    pid: int  # SQLite: the holding process, on this machine; PostgreSQL: the holder's backend
    backend: bool = False  # `pid` is a PostgreSQL backend's
    client: str = ""  # PostgreSQL: the address the holder connects from ("local": the Unix socket)
    since: dt.datetime | None = None  # PostgreSQL: when the holder's connection opened

    def line(self) -> str:
        """E.g. "pid 4242 on this host", "PostgreSQL backend 812 (from 10.0.0.5, connected 2026-12-03 09:00:00Z)"."""
        if not self.backend:
            return f"pid {self.pid} on this host"
        seen = [f"from {self.client}"] if self.client else []
        seen += [f"connected {self.since:%Y-%m-%d %H:%M:%SZ}"] if self.since is not None else []
        return f"PostgreSQL backend {self.pid}" + (f" ({', '.join(seen)})" if seen else "")


def holder(engine: sa.Engine, name: str) -> Holder | None:
    """Who holds the lease `name` now (None: nobody, or nobody this can see).  Reads only: the
    kernel's lock table (/proc/locks) for SQLite's file lock, pg_locks for the advisory lock
    (pg_stat_activity adds the address and time where the role may see them)."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        return _flock_holder(Path(f"{database}.{name}.lease")) if database and database != ":memory:" else None
    key = _key(name)
    query = sa.text(
        "SELECT l.pid, a.client_addr::text, a.backend_start FROM pg_locks l "
        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    with engine.connect() as conn:
        row = conn.execute(query, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).first()
    if row is None:
        return None
    since = row[2] if row[2] is None or row[2].tzinfo else row[2].replace(tzinfo=dt.UTC)
    return Holder(int(row[0]), backend=True, client=row[1] or ("local" if since is not None else ""),
                  since=since.astimezone(dt.UTC) if since is not None else None)


def _flock_holder(path: Path, locks: Path = Path("/proc/locks")) -> Holder | None:
    """The pid holding an flock on `path`, from the kernel's table ("1: FLOCK ADVISORY WRITE
    <pid> <major>:<minor>:<inode> 0 EOF"; waiters' lines have "->")."""
    try:
        st = path.stat()
        table = locks.read_text()
    except OSError:
        return None
    file_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == file_id:
            return Holder(int(fields[4]))
    return None


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
