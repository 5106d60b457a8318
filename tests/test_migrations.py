"""The schema comes from Alembic only, and the models match it on both databases."""

import sqlalchemy as sa
from alembic import command

from ca.db import alembic_config, is_current, make_engine, upgrade


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

    from ca.db import SCHEMA_HEAD

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
