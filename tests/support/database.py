"""Real databases for the tests: SQLite files, and PostgreSQL at 127.0.0.1:5432 (trust auth,
database `test`; REVOCA_TEST_PG overrides), skipped with the reason where no server answers.

Every test gets a database of its own: SQLite, a file in its tmp_path; PostgreSQL, a database
of its own (CREATE DATABASE ... TEMPLATE, dropped after the test on a background thread, since
DROP DATABASE waits for a checkpoint).  A test that uses the `engine` fixture gets a copy of a
database this process migrated once with Alembic (a migrated database is what `engine` would
make of it anyway), one that uses `initialized` a copy of the ceremony's (support/installation.py);
the others get an empty one, as before.

CREATE DATABASE writes and syncs a whole database (catalogs included) however small: ~0.1 s on
a quiet machine, seconds when the disk is busy.  So each PostgreSQL database a test gets was
made ahead, while the test before it ran: `fresh` takes a ready copy of its template (made by
a background thread, one spare per template) and asks for the next one.  A test gets a database
nobody has used either way; only the waiting moves.  Copies are made only of the migrated and
ceremony templates and of template0, which nothing writes once made; a template is copied only
while nobody is connected to it (PostgreSQL refuses otherwise): `template_lock`.
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


class _Stop:
    """The end of the spare-making thread's orders."""


class Databases:
    """This process's (xdist worker's) test databases: fresh ones, and the migrated templates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.prefix = f"rt_{os.getpid()}_{secrets.token_hex(3)}"  # the pid: see _drop_orphans
        self._migrated: dict[str, str] = {}
        self._drops: queue.Queue[str | None] = queue.Queue()
        self._dropper: threading.Thread | None = None
        # held while a template is copied or connected to (support.installation's row copy)
        self.template_lock = threading.Lock()
        self._spares: dict[str | None, queue.Queue[str]] = {}  # template (None: template0) -> ready copies
        self._orders: queue.Queue[str | None | _Stop] = queue.Queue()
        self._maker: threading.Thread | None = None
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
        with self.template_lock:
            self._admin(f"CREATE DATABASE {name} TEMPLATE {template or 'template0'} STRATEGY WAL_LOG")
        return name

    def _copy_of(self, template: str | None) -> str:
        """A new database made as a copy of `template` (None: empty): a spare made ahead when there
        is one, else made now; either way the next spare is ordered."""
        if PG_SKIP:
            pytest.skip(PG_SKIP)
        spares = self._spares.setdefault(template, queue.Queue())
        try:
            name = spares.get_nowait()
        except queue.Empty:
            name = self.create_pg(template)
        if self._maker is None:
            self._maker = threading.Thread(target=self._make_loop, name="make-test-databases", daemon=True)
            self._maker.start()
        self._orders.put(template)
        return name

    def _make_loop(self) -> None:
        while not isinstance(template := self._orders.get(), _Stop):
            spares = self._spares[template]
            if spares.qsize() >= 1:
                continue
            with contextlib.suppress(Exception):  # no spare: the next test makes its own, and sees why
                spares.put(self.create_pg(template))

    def drop_pg_later(self, name: str) -> None:
        if self._dropper is None:
            self._dropper = threading.Thread(target=self._drop_loop, name="drop-test-databases", daemon=True)
            self._dropper.start()
        self._drops.put(name)

    def _drop_loop(self) -> None:
        """Drop what is queued, everything queued at once: each DROP DATABASE waits for a checkpoint
        (~1 s), and drops running together share one (3 took 2.9 s one after the other, 0.4 s
        together), so the queue keeps up with the tests and the run does not end waiting for it."""
        done = False
        while not done:
            batch = [self._drops.get()]
            while not self._drops.empty() and len(batch) < 8:
                batch.append(self._drops.get_nowait())
            done = None in batch
            droppers = [threading.Thread(target=self._drop, args=(name,), daemon=True) for name in batch if name]
            for dropper in droppers:
                dropper.start()
            for dropper in droppers:
                dropper.join()

    def _drop(self, name: str) -> None:
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
        name = self._copy_of(sa.engine.make_url(template).database if template is not None else None)
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

    def stop_making(self) -> None:
        """No more spares (the one being made is finished first), and the ready ones dropped: before
        a template is dropped, so that no copy of it is being made then."""
        if self._maker is not None:
            self._orders.put(_Stop())
            self._maker.join(timeout=300)
            self._maker = None
        for spares in self._spares.values():
            while not spares.empty():
                self.drop_pg_later(spares.get_nowait())

    def close(self) -> None:
        """Drop every database this process made, templates and spares included (waits for the drops)."""
        self.stop_making()
        for kind, url in self._migrated.items():
            if kind != "sqlite":
                self.drop_pg_later(str(sa.engine.make_url(url).database))
        self._migrated.clear()
        if self._dropper is not None:
            self._drops.put(None)
            self._dropper.join(timeout=300)
            self._dropper = None
