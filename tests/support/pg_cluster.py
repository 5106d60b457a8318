"""A PostgreSQL cluster of a test's own on a free loopback port: its directory, which the postgres
user may enter, and the test's reads of it.  tests/e2e/test_nodes.py makes its primary and
streaming standby with docs/deployment.md section 8's own commands (initdb, pg_basebackup -R)
in `data`, and stops them here.

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
    return (BIN / "initdb").exists() and shutil.which("runuser") is not None and shutil.which("su") is not None


def _as_postgres(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=True, cwd="/tmp")


class PgCluster:
    """One postgres server on 127.0.0.1:`port` with its data directory in `data` (trust on loopback)."""

    def __init__(self, port: int, root: Path | None = None) -> None:
        self.port = port
        self.root = root or Path(tempfile.mkdtemp(prefix=f"rvpg{port}-", dir="/tmp"))
        self.data = self.root / "data"
        shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

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
