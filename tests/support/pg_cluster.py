"""A PostgreSQL cluster of a test's own (initdb, as the postgres user, on a free loopback port),
and a streaming standby of it (pg_basebackup -R): what tests/e2e/test_nodes.py runs its nodes on.

A cluster of its own rather than the machine's: a standby copies a whole cluster, and the test
must not change the machine's pg_hba.conf to allow replication.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (BIN / "initdb").exists() and shutil.which("runuser") is not None


def _as_postgres(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=True, cwd="/tmp")


class PgCluster:
    """One postgres server on 127.0.0.1:`port`, trust authentication on loopback, replication allowed."""

    def __init__(self, port: int, root: Path | None = None) -> None:
        self.port = port
        self.root = root or Path(tempfile.mkdtemp(prefix=f"rvpg{port}-", dir="/tmp"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def initdb(self) -> None:
        _as_postgres(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                       "wal_level = replica\nmax_wal_senders = 4\nfsync = off\nsynchronous_commit = off\n"
                       "full_page_writes = off\nshared_buffers = 16MB\n")
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")

    def standby_of(self, primary: PgCluster) -> None:
        """A streaming replica of `primary` (hot standby: read-only queries answered)."""
        _as_postgres(str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                     "-D", str(self.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nunix_socket_directories = '{self.root}'\nhot_standby = on\n")

    def start(self) -> None:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60",
                     "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "pg_ctl"), "-D", str(self.data), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=60, cwd="/tmp")
        shutil.rmtree(self.root, ignore_errors=True)

    def psql(self, sql: str, database: str = "postgres") -> str:
        return _as_postgres(str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                            database, "-AtXc", sql).stdout.strip()

    def wait_replayed(self, primary: PgCluster, timeout: float = 30.0) -> float:
        """Seconds until this standby has replayed everything the primary had written when asked."""
        target = primary.psql("SELECT pg_current_wal_lsn()")
        started = time.monotonic()
        while self.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"standby on {self.port} did not replay {target} within {timeout:.0f} s")
            time.sleep(0.05)
        return time.monotonic() - started
