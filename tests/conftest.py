"""Fixtures: real SQLite and PostgreSQL databases (schema from Alembic), real SoftHSM2 tokens.

PostgreSQL tests run at 127.0.0.1:5432 (trust auth) in a database of their own, dropped
afterwards; where no server answers they are skipped with that reason.  Databases and key
ceremonies are made once per worker and copied per test: see support/database.py and
support/installation.py.
"""

from __future__ import annotations

import compileall
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca import ceremony
from ca.config import Settings
from ca.storage.engine import ensure_current, make_engine
from repository.slapd import SLAPD, LocalSlapd

from support.database import Databases
from support.installation import CeremonyTemplates, Installation, demo_installation
from support.officers import add_officers
from support.rewrite_ahead import rewrite_ahead
from support.settings import LDAP_BASE, LDAP_ROOT_PASSWORD, NOW, SIGNER_PROCESSES_ENV, make_settings
from support.tools import activated_hsm_service, free_port


@pytest.fixture(autouse=True)
def _umask_as_found() -> Iterator[None]:
    """A command run in this process sets revoca's umask (027) for the whole process: each test
    starts with the worker's own, so that files made for other users (a PostgreSQL server run as
    postgres, say) stay readable to them."""
    found = os.umask(0o022)
    os.umask(found)
    yield
    os.umask(found)


def pytest_configure(config: pytest.Config) -> None:
    """Bytecode for revoca's own code, once, before any worker starts: the suite runs `revoca` as a
    new process hundreds of times, and where PYTHONDONTWRITEBYTECODE is set (a clean clone run
    with it has no bytecode of ca/, ocsp/, repository/ at all) each such process would compile
    every module of ours it imports from source again (~0.1 s of CPU for `revoca status`).  An
    installed revoca has its bytecode; compileall skips what is current (~0.3 s for the lot),
    and writes the rest whatever that flag says."""
    os.environ.setdefault(SIGNER_PROCESSES_ENV, "1")  # why: support/settings.py
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it
        return
    root = Path(__file__).resolve().parents[1]
    for package in ("ca", "ocsp", "repository", "migrations"):
        with contextlib.suppress(OSError):  # a read-only checkout: the commands compile as before
            compileall.compile_dir(root / package, quiet=2, workers=1)
    if config.getoption("numprocesses", None):  # xdist workers will each import every test module
        rewrite_ahead(config, root / "tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with a test marked slow run first (each module stays together, in its own order),
    so that xdist does not end the run with one worker busy on a long test and the other idle."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}  # type: ignore[attr-defined]
    items.sort(key=lambda item: getattr(item, "module", None) not in slow_modules)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """This worker's test databases (and the migrated template each `engine` starts from)."""
    made = Databases(tmp_path_factory.mktemp("databases"))
    yield made
    made.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, databases: Databases,
           ceremony_templates: CeremonyTemplates) -> Iterator[str]:
    """A database of each kind of the test's own.

    Made as what the test will have once its fixtures ran: a copy of this worker's ceremony
    database where the test uses `initialized`, of the migrated empty database where it uses
    `engine`, else empty."""
    kind = request.param
    template = None
    if "initialized" in request.fixturenames:
        template = ceremony_templates.database(kind)
    elif "engine" in request.fixturenames:
        template = databases.migrated(kind)
    with databases.fresh(kind, tmp_path, template=template) as url:
        if "initialized" in request.fixturenames:
            ceremony_templates.copied.add(url)
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """`db_url`'s database, migrated to the newest schema."""
    eng = make_engine(db_url)
    ensure_current(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Demo-sized hierarchy; P-256 keys keep the token fast (RSA has its own tests)."""
    return make_settings(tmp_path, db_url)


@pytest.fixture(scope="session")
def ceremony_templates(tmp_path_factory: pytest.TempPathFactory, databases: Databases) -> Iterator[CeremonyTemplates]:
    """One demo key ceremony per database kind in this worker, copied into each test's installation."""
    templates = CeremonyTemplates(tmp_path_factory.mktemp("ceremony-templates"), databases)
    yield templates
    templates.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def installation(request: pytest.FixtureRequest, tmp_path: Path,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation of this test's own, on each database kind (a module may define its own)."""
    with demo_installation(ceremony_templates, request.param, tmp_path) as made:
        yield made


@pytest.fixture
def initialized(settings: Settings, engine: sa.Engine, databases: Databases,
                ceremony_templates: CeremonyTemplates) -> ceremony.CeremonyResult:
    """A finished key ceremony: token, 2-of-3 share set, bridge and three regional CAs, and the
    officers of support.officers.

    A copy of this worker's template ceremony (database, token directory, share files) where
    `settings` are the demo ones; any other configuration runs a ceremony of its own."""
    kind = "sqlite" if engine.dialect.name == "sqlite" else "postgresql"
    copied = engine.url.render_as_string(hide_password=False) in ceremony_templates.copied
    if ceremony_templates.matches(settings):
        return ceremony_templates.restore(kind, settings, engine, database_copied=copied)
    if copied:
        databases.reset(kind, engine)  # back to migrated and empty: this ceremony is not the template's
    result = ceremony.run(settings, engine, demo=True, now=NOW)
    add_officers(engine, settings.demo_shares_dir)  # as in the template's (support.officers)
    return result


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
