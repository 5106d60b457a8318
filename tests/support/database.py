"""Real databases for the tests: SQLite files, and PostgreSQL at 127.0.0.1:5432 (trust auth,
database `test`; REVOCA_TEST_PG overrides), skipped with the reason where no server answers.

Every test gets a database of its own: SQLite, a file in its tmp_path; PostgreSQL, a database
of its own (CREATE DATABASE ... TEMPLATE, dropped after the test on a background thread, since
DROP DATABASE waits for a checkpoint).  A test that uses the `engine` fixture gets a copy of a
database this process migrated once with Alembic (a migrated database is what `engine` would
make of it anyway), one that uses `initialized` a copy of the ceremony's (support/installation.py);
the others get an empty one, as before.
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from ca.storage.engine import make_engine, upgrade

PG_URL = os.environ.get("REVOCA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reason() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"no PostgreSQL answers at {PG_URL}: {type(exc).__name__}"
    return None


PG_SKIP = _pg_reason()


def pg_url(database: str) -> str:
    """PG_URL with another database name."""
    return sa.engine.make_url(PG_URL).set(database=database).render_as_string(hide_password=False)


def pg_connect(url: str) -> psycopg.Connection:
    args = sa.engine.make_url(url).translate_connect_args(username="user", database="dbname")
    return psycopg.connect(**args, autocommit=True)


def sqlite_copy(source_url: str, target_url: str) -> None:
    """The whole database at `source_url` into the file at `target_url`, page for page (sqlite3's
    backup API, consistent even in WAL mode); nobody may hold the target open."""
    source_path, target_path = sa.engine.make_url(source_url).database, sa.engine.make_url(target_url).database
    assert source_path and target_path, (source_url, target_url)
    source, target = sqlite3.connect(source_path), sqlite3.connect(target_path)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


class Databases:
    """This process's (xdist worker's) test databases: fresh ones, and the migrated templates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"rt_{os.getpid()}_{secrets.token_hex(3)}"  # the pid: see _drop_orphans
        self._migrated: dict[str, str] = {}
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None
        self._drop_orphans()

    def _drop_orphans(self) -> None:
        """Drop the test databases of processes that are gone (a run that was killed)."""
        if PG_SKIP:
            return
        with pg_connect(PG_URL) as conn:
            names = [row[0] for row in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rt\\_%'")]
        for name in names:
            pid = name.split("_")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                self.drop_pg_later(name)

    # --- PostgreSQL databases --------------------------------------------------------------------

    def _admin(self, sql: str) -> None:
        with pg_connect(PG_URL) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_pg(self, template: str | None = None) -> str:
        """A new database (a copy of `template`, or empty); its name."""
        if PG_SKIP:
            pytest.skip(PG_SKIP)
        name = f"{self.prefix}_{secrets.token_hex(5)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template or 'template0'} STRATEGY WAL_LOG")
        return name

    def drop_pg_later(self, name: str) -> None:
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_loop, name="drop-test-databases", daemon=True)
            self._dropper.start()
        self._drops.put(name)

    def _drop_loop(self) -> None:
        while (name := self._drops.get()) is not None:
            with contextlib.suppress(Exception):  # a leftover database is no test's failure
                self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    # --- the migrated templates ------------------------------------------------------------------

    def migrated(self, kind: str) -> str:
        """The URL of this process's migrated, empty template database of `kind` (made once)."""
        if kind not in self._migrated:
            if kind == "sqlite":
                url = f"sqlite:///{self.root / 'migrated.db'}"
            else:
                url = pg_url(self.create_pg())
            engine = make_engine(url)
            try:
                upgrade(engine)
            finally:
                engine.dispose()
            self._migrated[kind] = url
        return self._migrated[kind]

    @contextlib.contextmanager
    def fresh(self, kind: str, directory: Path, *, template: str | None = None) -> Iterator[str]:
        """A database of its own for one test: empty, or a copy of the database at `template`."""
        if kind == "sqlite":
            url = f"sqlite:///{directory / 'revoca.db'}"
            if template is not None:
                sqlite_copy(template, url)
            yield url
            return
        name = self.create_pg(sa.engine.make_url(template).database if template is not None else None)
        try:
            yield pg_url(name)
        finally:
            self.drop_pg_later(name)

    def reset(self, kind: str, engine: sa.Engine) -> None:
        """Empty `engine`'s database back to the migrated template (every row gone, sequences restarted)."""
        engine.dispose()
        if kind == "sqlite":
            sqlite_copy(self.migrated(kind), engine.url.render_as_string(hide_password=False))
            return
        with engine.begin() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY"))

    def close(self) -> None:
        """Drop every database this process made, templates included (waits for the drops)."""
        for kind, url in self._migrated.items():
            if kind != "sqlite":
                self.drop_pg_later(str(sa.engine.make_url(url).database))
        self._migrated.clear()
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join(timeout=300)
            self._dropper = None
