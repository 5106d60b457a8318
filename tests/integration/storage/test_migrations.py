"""The schema comes from Alembic only, and the models match it on both databases."""

import sqlalchemy as sa
from alembic import command

from ca.storage.engine import alembic_config, is_current, make_engine, upgrade


def test_upgrade_head_then_check_finds_no_drift(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    assert is_current(engine)
    cfg = alembic_config(db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)  # raises if models and migrations differ
    tables = set(sa.inspect(engine).get_table_names())
    assert {"cas", "key_generations", "certificates", "revocations", "operators", "operator_roles",
            "share_sets", "share_holders", "audit_events"} <= tables
    engine.dispose()


def test_schema_head_constant_is_alembics_head(db_url: str) -> None:
    from alembic.script import ScriptDirectory

    from ca.storage.engine import SCHEMA_HEAD

    assert ScriptDirectory.from_config(alembic_config(db_url)).get_current_head() == SCHEMA_HEAD


def test_upgrade_twice_is_harmless(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)
    assert is_current(engine)
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_migration_0006_chains_with_the_frozen_encoding_of_the_live_code() -> None:
    """0006 keeps its own copy of the link encoding; it must equal ca.audit.chain's (which is frozen)."""
    import datetime as dt
    import importlib.util

    from ca.audit import chain
    from ca.storage.engine import MIGRATIONS_DIR

    path = MIGRATIONS_DIR / "versions" / "0006_audit_chain_time_stamps.py"
    spec = importlib.util.spec_from_file_location("m0006", path)
    assert spec and spec.loader
    m0006 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m0006)
    assert (m0006.GENESIS, m0006.HEAD_ID) == (chain.GENESIS, chain.HEAD_ID)
    at = dt.datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    for previous, detail in ((chain.GENESIS, "{}"), (b"\x01" * 32, '{"ca":"東京","n":1}')):
        assert m0006.link(previous, 7, at, "crl.issued", "success", "scheduler", detail) == chain.link(
            previous, 7, at, "crl.issued", "success", "scheduler", detail)
