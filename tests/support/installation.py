"""Demo installations for the tests, each a true copy of one key ceremony per process.

A key ceremony (SoftHSM2 token, 2-of-3 share set, bridge and three regional CAs with their
subscribers, and the officers of support.officers) takes most of a second.  `CeremonyTemplates`
runs it once per xdist worker and database kind, into a directory and database nobody else
touches, and then copies it for every test that wants a finished ceremony:

- the database: made for the test as a copy of the template's (support.database.Databases:
  CREATE DATABASE ... TEMPLATE on PostgreSQL, sqlite3's backup API on SQLite);
- the data directory (SoftHSM2 token directory, demo share and password files) with
  shutil.copytree; the copy gets its own softhsm2.conf, whose tokendir is the copied tokens/;
- where a test brings a migrated database of its own (a module's own `db_url`), the rows go
  into it: the SQLite file page for page, or on PostgreSQL every table with COPY and every
  sequence set to the template's value (triggers and FK checks off while copying).

Each copy is a separate installation: its own token directory, its own database, written by
no other test.  Only settings whose ceremony inputs (`hierarchy`, `hsm`) equal the template's
are copied; any other configuration (RSA keys, 47 CAs, ...) runs its own ceremony.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from ca import ceremony
from ca.config import Settings
from ca.enums import CertKind
from ca.hsm import shares as sharing
from ca.hsm import token_for
from ca.hsm.token import TokenSession, write_softhsm_conf
from ca.storage.engine import ensure_current, make_engine, session_scope
from ca.storage.models import Certificate
from ca.storage.revocations import RevocationStore

from support.database import Databases, pg_connect, pg_url, sqlite_copy
from support.officers import add_officers
from support.settings import NOW, make_settings
from support.tools import activated_hsm_service


@dataclasses.dataclass(frozen=True)
class Installation:
    """A finished demo ceremony (P-256 keys): its settings, database and ceremony result; `keys`
    is the token opened in this process (None when an HSM service opens it instead), `socket`
    the HSM service's socket when one runs (activated with two shares)."""

    settings: Settings
    engine: sa.Engine
    result: ceremony.CeremonyResult
    keys: TokenSession | None = None
    socket: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def env(self, **extra: str) -> dict[str, str]:
        """The REVOCA_* environment that points `revoca` at this installation (and its HSM socket)."""
        env = {"REVOCA_DATA_DIR": str(self.data_dir), "REVOCA_DATABASE_URL": self.settings.db_url,
               "REVOCA_HSM_TOKEN_LABEL": self.settings.hsm.token_label,
               "REVOCA_HSM_KEY_ALGORITHM": self.settings.hsm.key_algorithm,
               "REVOCA_CA_NEW_KEYS": "true" if self.settings.ca.new_keys else "false"}
        if self.socket is not None:
            env["REVOCA_HSM_SOCKET"] = str(self.socket)
        return {**env, **extra}


@dataclasses.dataclass
class _Template:
    settings: Settings
    url: str
    result: ceremony.CeremonyResult
    tables: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # PostgreSQL: (table, columns)
    sequences: list[tuple[str, int, bool]] = dataclasses.field(default_factory=list)  # (name, value, is_called)


class CeremonyTemplates:
    """One demo key ceremony per database kind in this process, copied into each installation."""

    def __init__(self, root: Path, databases: Databases) -> None:
        self.root = root
        self.databases = databases
        self._templates: dict[str, _Template] = {}
        self.copied: set[str] = set()  # URLs of databases made as copies of a template's
        self._reference = make_settings(root, "sqlite://")

    def _template(self, kind: str) -> _Template:
        if kind not in self._templates:
            self._templates[kind] = self._build(kind)
        return self._templates[kind]

    def _build(self, kind: str) -> _Template:
        root = self.root / kind
        root.mkdir()
        if kind == "sqlite":
            url = f"sqlite:///{root / 'revoca.db'}"
            sqlite_copy(self.databases.migrated(kind), url)
        else:
            migrated = sa.engine.make_url(self.databases.migrated(kind)).database
            url = pg_url(self.databases.create_pg(migrated))
        settings = make_settings(root, url)
        engine = make_engine(url)
        try:
            ensure_current(engine)
            result = ceremony.run(settings, engine, demo=True, now=NOW)
            add_officers(engine, settings.demo_shares_dir)  # every copy has the standard cast (support.officers)
            template = _Template(settings, url, result)
            if kind != "sqlite":
                template.tables, template.sequences = _pg_layout(engine)
        finally:
            engine.dispose()
        return template

    def database(self, kind: str) -> str:
        """The URL of the template ceremony's database, for Databases.fresh(template=...) to copy."""
        return self._template(kind).url

    def matches(self, settings: Settings) -> bool:
        """Whether `settings` would run exactly the template's ceremony."""
        return (settings.hierarchy, settings.hsm) == (self._reference.hierarchy, self._reference.hsm)

    def restore(self, kind: str, settings: Settings, engine: sa.Engine, *,
                database_copied: bool = False) -> ceremony.CeremonyResult:
        """Copy the ceremony into `settings`' data directory and, unless it was made as a copy of
        `database(kind)` already (`database_copied`), into `engine`'s migrated, empty database.

        The caller checked `matches(settings)`; the data directory must hold no token yet.
        """
        template = self._template(kind)
        source, target = template.settings.data_dir, settings.data_dir
        if settings.softhsm_conf.exists() or (target / "tokens").exists():
            raise AssertionError(f"{target} already has a token: not a fresh installation")
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        write_softhsm_conf(settings.softhsm_conf)  # tokendir = the copied tokens/, not the template's
        if not database_copied:
            engine.dispose()  # no pooled connection may keep what was there before
            if kind == "sqlite":
                sqlite_copy(template.url, engine.url.render_as_string(hide_password=False))
            else:
                with self.databases.template_lock:  # no copy of the template is made while connected to it
                    _pg_copy(template, engine.url.render_as_string(hide_password=False))
        token_for(settings)._lib().reinitialize()  # SoftHSM2 lists a new token only after C_Initialize
        files = tuple(target / path.relative_to(source) for path in template.result.demo_files)
        return dataclasses.replace(template.result, demo_files=files)

    def close(self) -> None:
        self.databases.stop_making()  # no copy of a template is being made while it is dropped
        for template in self._templates.values():
            if not template.url.startswith("sqlite"):
                self.databases.drop_pg_later(str(sa.engine.make_url(template.url).database))
        self._templates.clear()


def _pg_layout(engine: sa.Engine) -> tuple[list[tuple[str, str]], list[tuple[str, int, bool]]]:
    """The template's tables in foreign-key order with their columns, and its sequences' values."""
    meta = sa.MetaData()
    meta.reflect(engine)
    tables = [(table.name, ", ".join(f'"{c.name}"' for c in table.columns))
              for table in meta.sorted_tables if table.name != "alembic_version"]  # the copy is at head already
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"))
        sequences = []
        for name in names.scalars().all():
            value, called = conn.execute(sa.text(f'SELECT last_value, is_called FROM "{name}"')).one()
            sequences.append((name, value, called))
    return tables, sequences


def _pg_copy(template: _Template, target_url: str) -> None:
    """Every row of the template database into the (migrated) database at `target_url`, with COPY,
    and every sequence set to the template's value."""
    with pg_connect(template.url) as src, pg_connect(target_url) as dst, dst.transaction():
        dst.execute("SET LOCAL session_replication_role = replica")  # no triggers, no FK checks while copying
        dst.execute("TRUNCATE " + ", ".join(f'"{name}"' for name, _ in template.tables))  # type: ignore[arg-type]
        for name, columns in template.tables:
            with src.cursor().copy(f'COPY "{name}" ({columns}) TO STDOUT (FORMAT BINARY)') as out, \
                    dst.cursor().copy(f'COPY "{name}" ({columns}) FROM STDIN (FORMAT BINARY)') as into:
                for block in out:
                    into.write(block)
        for name, value, called in template.sequences:
            dst.execute("SELECT setval(%s, %s, %s)", (f'"{name}"', value, called))


@contextlib.contextmanager
def demo_installation(templates: CeremonyTemplates, kind: str, root: Path, *,
                      with_keys: bool = True) -> Iterator[Installation]:
    """A demo installation under `root` on a database of `kind` of its own, copied from `templates`.

    `with_keys=False` leaves the token closed, for an HSM service in this process to open
    (PKCS#11 allows one login per process).
    """
    root.mkdir(parents=True, exist_ok=True)
    with templates.databases.fresh(kind, root, template=templates.database(kind)) as url:
        settings = make_settings(root, url)
        engine = make_engine(url)
        try:
            result = templates.restore(kind, settings, engine, database_copied=True)
            keys = open_token(settings, result) if with_keys else None
            try:
                yield Installation(settings, engine, result, keys)
            finally:
                if keys is not None:
                    keys.close()
        finally:
            engine.dispose()


@contextlib.contextmanager
def serving_installation(templates: CeremonyTemplates, kind: str, root: Path, *,
                         prefix: str = "rvh") -> Iterator[Installation]:
    """A demo installation with the HSM service running in this process, activated with two shares."""
    with demo_installation(templates, kind, root, with_keys=False) as made:
        with activated_hsm_service(made.settings, made.engine, made.result.shares, prefix=prefix) as socket:
            yield dataclasses.replace(made, socket=socket)


def open_token(settings: Settings, result: ceremony.CeremonyResult) -> TokenSession:
    """The token opened in this process with two of the three demo shares."""
    secret = sharing.combine([share for _, share in result.shares[:2]])
    return token_for(settings).open(sharing.user_pin(secret))


def subscriber_rows(engine: sa.Engine, ca: str = "tokyo") -> list[Certificate]:
    """A CA's subscriber certificate rows in the order they were made, detached from their session."""
    with session_scope(engine) as s:
        issuer = RevocationStore(s).ca(ca)
        rows = s.scalars(sa.select(Certificate).where(Certificate.issuer_ca_id == issuer.id,
                                                      Certificate.kind == CertKind.SUBSCRIBER)
                         .order_by(Certificate.id)).all()
        for row in rows:
            s.expunge(row)
        return list(rows)
