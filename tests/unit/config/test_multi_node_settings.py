"""The settings of a deployment over several nodes (docs/deployment.md section 8): how stale a
standby's OCSP reads may be, the other LDAP providers the publisher fails over to, and how often it polls."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca.config import load_settings, settings_from_dict
from ca.errors import ConfigError


def test_the_staleness_bound_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert settings_from_dict({}).database_read_max_lag_ms == 1000
    conf = tmp_path / "revoca.toml"
    conf.write_text("database_read_max_lag_ms = 250\n")
    assert load_settings(conf, env={}, system_root=tmp_path).database_read_max_lag_ms == 250
    settings = load_settings(env={"REVOCA_DATABASE_READ_MAX_LAG_MS": "40"}, system_root=tmp_path)
    assert settings.database_read_max_lag_ms == 40


@pytest.mark.parametrize("value", [0, 5, -1, 1.5, "1000", True, 3_600_001])
def test_a_staleness_bound_out_of_range_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="database_read_max_lag_ms"):
        settings_from_dict({"database_read_max_lag_ms": value})


def test_other_providers_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert settings_from_dict({}).repository.providers == ()
    conf = tmp_path / "revoca.toml"
    conf.write_text('[repository]\nproviders = ["ldap://10.0.0.2:1389/", "ldap://ldap-b.example"]\n')
    settings = load_settings(conf, env={}, system_root=tmp_path)
    assert settings.repository.providers == ("ldap://10.0.0.2:1389/", "ldap://ldap-b.example")
    settings = load_settings(env={"REVOCA_REPOSITORY_PROVIDERS": "ldap://10.0.0.2:1389/, ldap://[fd00::2]:1389/"},
                             system_root=tmp_path)
    assert settings.repository.providers == ("ldap://10.0.0.2:1389/", "ldap://[fd00::2]:1389/")


@pytest.mark.parametrize("value", ["ldap://10.0.0.2:1389/", ["http://10.0.0.2/"], ["ldap://x:70000/"], [1389]])
def test_a_provider_that_is_not_an_ldap_url_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="repository.providers"):
        settings_from_dict({"repository": {"providers": value}})


def test_the_publishers_poll_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert settings_from_dict({}).repository.publisher_poll_seconds == 2.0
    conf = tmp_path / "revoca.toml"
    conf.write_text("[repository]\npublisher_poll_seconds = 0.5\n")
    assert load_settings(conf, env={}, system_root=tmp_path).repository.publisher_poll_seconds == 0.5
    settings = load_settings(env={"REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS": "10"}, system_root=tmp_path)
    assert settings.repository.publisher_poll_seconds == 10.0


@pytest.mark.parametrize("value", [0, 0.05, -1, 3601, "2", True])
def test_a_publisher_poll_out_of_range_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="publisher_poll_seconds"):
        settings_from_dict({"repository": {"publisher_poll_seconds": value}})


def test_a_publisher_poll_that_is_no_number_in_the_environment_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS"):
        load_settings(env={"REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS": "soon"}, system_root=tmp_path)
