"""Fixtures: real SQLite and PostgreSQL databases (schema from Alembic), real SoftHSM2 tokens.

PostgreSQL tests run at 127.0.0.1:5432 (trust auth, database `test`) in a schema of their
own, dropped afterwards; where no server answers they are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca import ceremony
from ca.config import Settings, settings_from_dict
from ca.storage.engine import make_engine, upgrade
from repository.slapd import SLAPD, LocalSlapd

from tools import activated_hsm_service, free_port

PG_URL = os.environ.get("REVOCA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NOW = dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC)
LDAP_BASE = "o=JPKI,c=JP"
LDAP_ROOT_PASSWORD = "root-secret"


def _pg_reason() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"no PostgreSQL answers at {PG_URL}: {type(exc).__name__}"
    return None


_PG_SKIP = _pg_reason()


@contextlib.contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """A fresh empty database URL: SQLite in `directory`, or a PostgreSQL schema of its own,
    dropped afterwards (skipped, with the reason, where no PostgreSQL answers)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'revoca.db'}"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database of each kind."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    raw: dict[str, object] = {
        "data_dir": str(tmp_path / "var"),
        "database_url": db_url,
        # A label per test: SoftHSM2 keeps tokens in the test's own directory anyway.
        "hsm": {"token_label": f"t{secrets.token_hex(4)}", "key_algorithm": "p256"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}  # type: ignore[dict-item]
        else:
            raw[key] = value
    return settings_from_dict(raw)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Demo-sized hierarchy; P-256 keys keep the token fast (RSA has its own tests)."""
    return make_settings(tmp_path, db_url)


@pytest.fixture
def initialized(settings: Settings, engine: sa.Engine) -> ceremony.CeremonyResult:
    """A finished key ceremony: token, 2-of-3 share set, bridge and three regional CAs."""
    return ceremony.run(settings, engine, demo=True, now=NOW)


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[LocalSlapd]:
    """A real slapd on a free loopback port, under tmp_path/var/ldap (the data directory of `ldap_settings`)."""
    if not Path(SLAPD).exists():
        pytest.skip(f"{SLAPD} not installed (Debian package slapd)")
    s = LocalSlapd(tmp_path / "var" / "ldap", LDAP_BASE, free_port(), LDAP_ROOT_PASSWORD)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def ldap_settings(tmp_path: Path, db_url: str, slapd: LocalSlapd) -> Settings:
    """`settings` whose repository is the running `slapd`."""
    return make_settings(tmp_path, db_url, repository={"base_dn": LDAP_BASE, "port": slapd.port})


@pytest.fixture
def hsm_socket(settings: Settings, engine: sa.Engine, initialized: ceremony.CeremonyResult) -> Iterator[Path]:
    """The HSM service in this process, activated with two demo shares, as `revoca serve hsm` would run."""
    with activated_hsm_service(settings, engine, initialized.shares) as socket:
        yield socket
