"""The tests' copies of the demo key ceremony (support/installation.py) are true, separate copies:
the same rows and keys as the template, and nothing one installation does reaches another."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from ca.config import settings_from_dict
from ca.hsm.signer import KeyAlgorithm
from ca.storage.engine import make_engine

from support.installation import CeremonyTemplates, demo_installation
from support.settings import make_settings


def _rows(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        counts = {table: conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                  for table in sa.inspect(conn).get_table_names()}
    engine.dispose()  # PostgreSQL copies a template database only while nobody is connected to it
    return counts


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_copy_has_the_templates_rows_and_keys_and_keeps_what_it_does_to_itself(
        kind: str, tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    template = make_engine(ceremony_templates.database(kind))
    try:
        before = _rows(template)
        with demo_installation(ceremony_templates, kind, tmp_path / "a") as a:
            assert a.keys is not None
            assert _rows(a.engine) == before
            labels = sorted(a.keys.labels())
            assert f"directories.tokendir = {(tmp_path / 'a' / 'var' / 'tokens').resolve()}" in \
                a.settings.softhsm_conf.read_text()  # its own token directory
            a.keys.generate("only-in-a", KeyAlgorithm.P256)
            with a.engine.begin() as conn:
                conn.execute(sa.text("UPDATE cas SET name = name || '-a'"))
        with demo_installation(ceremony_templates, kind, tmp_path / "b") as b:
            assert b.keys is not None
            assert sorted(b.keys.labels()) == labels  # the template's keys, without a's
            assert _rows(b.engine) == before
            with b.engine.connect() as conn:
                assert not any(n.endswith("-a") for n in conn.execute(sa.text("SELECT name FROM cas")).scalars())
        assert _rows(template) == before
    finally:
        template.dispose()


def test_only_the_demo_ceremonys_settings_are_copied(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> None:
    demo = make_settings(tmp_path, "sqlite://")
    assert ceremony_templates.matches(demo)
    assert ceremony_templates.matches(make_settings(tmp_path, "sqlite://", repository={"port": 3899}))
    assert not ceremony_templates.matches(make_settings(tmp_path, "sqlite://", hsm={"key_algorithm": "rsa2048"}))
    assert not ceremony_templates.matches(make_settings(tmp_path, "sqlite://", hierarchy={"regional": "all"}))
    assert not ceremony_templates.matches(settings_from_dict({"data_dir": str(tmp_path)}))  # another token label
