"""The database as files, for backups (ca.backup): a consistent dump, a restore into an empty
database, and a scratch database to check a dump in.  Kept here because only the storage layer
speaks to the database.

SQLite: its online backup API (page by page, consistent while services write), then a
self-contained file.  PostgreSQL: `pg_dump --format=custom` (one snapshot transaction) and
`pg_restore`; a password goes to the tools through a temporary 0600 PGPASSFILE, never on their
command line, where every local user could read it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ca.errors import ServiceUnavailable

SQLITE_NAME = "revoca.db"
PG_NAME = "revoca.pgdump"


def kind(url: str) -> str:
    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgresql"


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def dump(url: str, out: Path) -> Path:
    """The database in one file under `out`; its path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        target_path = out / SQLITE_NAME
        source = sqlite3.connect(f"file:{parsed.database}?mode=ro", uri=True)
        target = sqlite3.connect(target_path)
        try:
            source.backup(target)
            # one self-contained file: a copy left in WAL mode grows -wal/-shm beside it when opened
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
            source.close()
        return target_path
    target_path = out / PG_NAME
    with _password_file(parsed) as env:
        _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={target_path}",
              "--dbname", _libpq(parsed)], env)
    return target_path


def restore(dump_file: Path, url: str) -> None:
    """`dump_file` into the (empty) database at `url`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        shutil.copy2(dump_file, parsed.database)
        return
    with _password_file(parsed) as env:
        _run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", _libpq(parsed),
              str(dump_file)], env)


def has_tables(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and (not parsed.database or not Path(parsed.database).exists()):
        return False
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return bool(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def readable(dump_file: Path) -> str | None:
    """None when `pg_restore --list` reads the dump, else why not."""
    done = subprocess.run(["pg_restore", "--list", str(dump_file)], capture_output=True, text=True, check=False)
    return None if done.returncode == 0 else done.stderr.strip() or f"exit {done.returncode}"


@contextlib.contextmanager
def scratch_database(server_url: str, dump_file: Path, scratch_dir: Path) -> Iterator[str | None]:
    """A database holding `dump_file`, gone afterwards: a copied SQLite file in `scratch_dir`, or a
    PostgreSQL database created on `server_url`'s server (None when this user may not create one)."""
    if dump_file.name == SQLITE_NAME:
        copy = scratch_dir / SQLITE_NAME
        shutil.copy2(dump_file, copy)
        yield f"sqlite:///{copy}"
        return
    url = make_url(server_url)
    name = f"revoca_backup_check_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.DBAPIError:
            yield None
            return
        try:
            scratch = url.set(database=name).render_as_string(hide_password=False)
            restore(dump_file, scratch)
            yield scratch
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def _libpq(url: URL) -> str:
    """libpq's connection string, without the password."""
    parts = [f"host={url.host or 'localhost'}", f"port={url.port or 5432}", f"dbname={url.database}"]
    if url.username:
        parts.append(f"user={url.username}")
    return " ".join(parts)


@contextlib.contextmanager
def _password_file(url: URL) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if not url.password:
        yield env
        return
    fd, name = tempfile.mkstemp(prefix="revoca-pgpass.")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{url.host or 'localhost'}:{url.port or 5432}:*:{url.username}:{url.password}\n")
        yield {**env, "PGPASSFILE": name}
    finally:
        Path(name).unlink(missing_ok=True)


def _run(argv: list[str], env: dict[str, str]) -> None:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600, check=False)
    except FileNotFoundError as exc:
        raise ServiceUnavailable(f"{argv[0]} is not installed (Debian: postgresql-client)") from exc
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise ServiceUnavailable(f"{argv[0]} failed: {last[0]}")
