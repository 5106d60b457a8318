"""Revision 0007 on an installation of the release before it (SQLite and PostgreSQL): existing
accounts stay unapproved, except the holders of the active activation shares, whom the key
ceremony made; every password's age counts from the upgrade; the downgrade gives the old table back
with its rows and the rows that refer to them."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import command

from ca.storage.engine import alembic_config, make_engine

CEREMONY_AT = dt.datetime(2025, 4, 1, 10, 0)
CREATED_AT = dt.datetime(2024, 1, 1, 9, 0)  # long before: a password this old would have expired


def _migrate(engine: sa.Engine, to: str, *, down: bool = False) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, to)


def _columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("operators")}


def test_0007_adopts_share_holders_only_and_starts_password_ages_at_the_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        _migrate(engine, "0006")
        with engine.begin() as conn:
            for i, name in enumerate(("km-old", "km-current", "senior", "off"), start=1):
                conn.execute(sa.text("INSERT INTO operators (id, name, display_name, credential_hash, disabled, "
                                     "created_at) VALUES (:i, :n, '', 'x', :off, :at)"),
                             {"i": i, "n": name, "off": name == "off", "at": CREATED_AT})
                conn.execute(sa.text("INSERT INTO operator_roles (operator_id, role) VALUES (:i, :r)"),
                             {"i": i, "r": "senior-operator" if name in ("senior", "off") else "key-manager"})
            for set_id, active in ((1, False), (2, True)):  # a share set replaced by a newer one
                conn.execute(sa.text("INSERT INTO share_sets (id, token_label, threshold, total, active, created_at) "
                                     "VALUES (:s, 'revoca', 1, 1, :a, :at)"),
                             {"s": set_id, "a": active, "at": CEREMONY_AT})
            conn.execute(sa.text("INSERT INTO share_holders (share_set_id, share_index, operator_id, digest) "
                                 "VALUES (1, 1, 1, :d), (2, 1, 2, :d)"), {"d": bytes(32)})
        before = dt.datetime.now(dt.UTC)
        _migrate(engine, "0007")

        with engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(sa.text(
                "SELECT name, approval, approved_at, approved_by, registered_by, password_changed_at FROM operators"))}
        assert rows["km-current"].approval == "ceremony"
        assert [rows[n].approval for n in ("km-old", "senior", "off")] == [None, None, None]
        assert all(rows[n].approved_by is None and rows[n].registered_by is None for n in rows)
        approved_at = rows["km-current"].approved_at
        assert (approved_at if isinstance(approved_at, dt.datetime) else dt.datetime.fromisoformat(approved_at)
                ).replace(tzinfo=None) == CEREMONY_AT
        for row in rows.values():
            changed = row.password_changed_at
            changed = changed if isinstance(changed, dt.datetime) else dt.datetime.fromisoformat(changed)
            changed = changed.replace(tzinfo=dt.UTC) if changed.tzinfo is None else changed
            assert before - dt.timedelta(seconds=5) <= changed <= dt.datetime.now(dt.UTC)

        _migrate(engine, "0006", down=True)
        assert not _columns(engine) & {"password_changed_at", "approval", "approved_at", "registered_by",
                                       "approved_by"}
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM operator_roles")).scalar() == 4
            assert conn.execute(sa.text("SELECT COUNT(*) FROM share_holders")).scalar() == 2
            assert conn.execute(sa.text("SELECT COUNT(*) FROM operators")).scalar() == 4
        _migrate(engine, "0007")  # and up again
        assert "approval" in _columns(engine)
    finally:
        engine.dispose()
