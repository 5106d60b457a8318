"""Engine, sessions and schema upgrades for SQLite (default) and PostgreSQL.

Jobs and CLI commands use `with session_scope(engine) as s:` — one transaction per
operation, committed on success and rolled back on any error, so nothing is half-written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ca.errors import ConfigError, DatabaseUnavailable, ServiceUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

# The database types other packages name in signatures (Engine, and Session imported above):
# taken from here, so that outside ca/storage only this layer imports SQLAlchemy (issue 11).
Engine = sa.Engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# The newest migration; tests/integration/storage/test_migrations.py checks it equals Alembic's head.  Knowing it
# lets every command skip importing Alembic (a third of a second) when the schema is current.
SCHEMA_HEAD = "0016"


BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another's lock before DatabaseUnavailable


def _sqlite_pragmas(dbapi_conn, _record, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
    # Let SQLAlchemy, not the driver, issue BEGIN (see _sqlite_begin): pysqlite's own
    # transaction handling sends no BEGIN before a SAVEPOINT, so RELEASE would commit.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL lets readers (OCSP, status) run beside the writer; busy_timeout makes a second
    # writer wait instead of failing at once; synchronous=FULL makes a commit survive power
    # loss too, which an acknowledged revocation must.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """BEGIN IMMEDIATE takes the write lock up front, so a writer waits (busy_timeout) rather
    than failing when its read snapshot turns stale; read-only scopes ask for DEFERRED."""
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _set_role(dbapi_conn, role: str) -> None:
    """SET ROLE for the whole session, committed so that no later rollback undoes it."""
    cur = dbapi_conn.cursor()
    cur.execute(f"SET ROLE {role}")
    cur.close()
    dbapi_conn.commit()


def make_engine(url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, role: str | None = None,
                **kwargs: object) -> sa.Engine:
    """`busy_timeout_ms`: SQLite only, how long a writer waits for the write lock.  `role`:
    PostgreSQL only, every connection runs `SET ROLE role` first, so the service holds that role's
    privileges and no more (ca.storage.grants); SQLite has no roles and ignores it."""
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        db_path = engine.url.database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        sa.event.listen(engine, "connect",
                        lambda conn, record: _sqlite_pragmas(conn, record, busy_timeout_ms))
        sa.event.listen(engine, "begin", _sqlite_begin)
    elif role:
        quoted = engine.dialect.identifier_preparer.quote_identifier(role)
        sa.event.listen(engine, "connect", lambda conn, _record: _set_role(conn, quoted))
    return engine


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine) -> None:
    """Bring the schema to the newest migration (the only way the schema is created)."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def current_revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.OperationalError as exc:
        if "alembic_version" in str(exc):  # SQLite: no such table yet
            return None
        raise
    except sa.exc.ProgrammingError:  # PostgreSQL: relation does not exist yet
        return None


def open_current(url: str, *, role: str | None = None) -> sa.Engine:
    """An engine for `url` with the schema brought up to date, or one clear error: ConfigError for
    a URL that is not one, ServiceUnavailable for a database that cannot be reached.

    With a `role` (make_engine) the schema is only checked: a service's role may not migrate."""
    try:
        engine = make_engine(url, role=role)
        if role is None or engine.dialect.name != "postgresql":
            ensure_current(engine)
        elif (revision := current_revision(engine)) != SCHEMA_HEAD:
            raise ConfigError(f"the database schema is at {revision or 'nothing'}, revoca needs {SCHEMA_HEAD}: "
                              "run `revoca db upgrade` as the database's owner first")
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"database_url {safe_url(url)!r} is not a database URL: {exc}") from exc
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ServiceUnavailable(f"cannot reach the database {safe_url(url)}: {reason}") from exc
    except sa.exc.DBAPIError as exc:  # SET ROLE refused, or the role may not read the schema version
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ConfigError(f"database role {role}: {reason}; run `revoca db grant` as the database's owner") from exc
    return engine


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def is_current(engine: sa.Engine) -> bool:
    return current_revision(engine) == SCHEMA_HEAD


def ensure_current(engine: sa.Engine) -> None:
    """Upgrade only when needed, so that a current schema costs one query and no Alembic import."""
    if not is_current(engine):
        upgrade(engine)


@contextlib.contextmanager
def session_scope(engine: sa.Engine, *, readonly: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    A database that is busy beyond the wait (busy_timeout), full, or gone raises
    ServiceUnavailable with one line (HTTP 503, OCSP tryLater, a CLI error line), never a
    driver error: nothing in the block was stored, and the caller says so."""
    bind = engine.execution_options(sqlite_begin="DEFERRED") if readonly else engine
    factory = sessionmaker(bind, expire_on_commit=False)
    try:
        with factory() as session, session.begin():
            yield session
    except sa.exc.OperationalError as exc:
        raise unavailable(exc) from exc


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The one-line ServiceUnavailable for a database that could not do its part (`exc` is the
    SQLAlchemy OperationalError or the DB-API error itself)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered or "lock timeout" in lowered:
        return DatabaseUnavailable(f"the database is busy (another transaction held it too long): {text}; "
                                  "nothing was stored, try again")
    if "full" in lowered or "no space" in lowered or "i/o error" in lowered:
        return DatabaseUnavailable(f"the database cannot write (disk full or I/O error): {text}; nothing was stored")
    return DatabaseUnavailable(f"the database is unavailable: {text}; nothing was stored")
