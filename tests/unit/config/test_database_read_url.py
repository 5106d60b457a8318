"""`database_read_url`: where OCSP responders read statuses (a streaming standby); the rest writes to the primary."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca.config import load_settings, settings_from_dict
from ca.errors import ConfigError

PRIMARY = "postgresql+psycopg://revoca@db-primary/revoca"
STANDBY = "postgresql+psycopg://revoca@127.0.0.1/revoca"


def test_without_a_replica_readers_read_the_primary(tmp_path: Path) -> None:
    settings = settings_from_dict({"database_url": PRIMARY})
    assert settings.read_url == settings.db_url == PRIMARY


def test_a_replica_from_the_file_or_the_environment(tmp_path: Path) -> None:
    conf = tmp_path / "revoca.toml"
    conf.write_text(f'database_url = "{PRIMARY}"\ndatabase_read_url = "{STANDBY}"\n')
    settings = load_settings(conf, env={}, system_root=tmp_path)
    assert (settings.db_url, settings.read_url) == (PRIMARY, STANDBY)
    settings = load_settings(env={"REVOCA_DATABASE_URL": PRIMARY, "REVOCA_DATABASE_READ_URL": STANDBY},
                             system_root=tmp_path)
    assert (settings.db_url, settings.read_url) == (PRIMARY, STANDBY)


def test_a_replica_that_is_not_a_url_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="database_read_url"):
        settings_from_dict({"database_read_url": 5432})
