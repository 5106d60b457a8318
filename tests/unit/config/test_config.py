from pathlib import Path

import pytest

from ca.config import PREFECTURES, load_settings, settings_from_dict
from ca.errors import ConfigError


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.hsm.threshold == 2 and s.hsm.shares == 3
    assert s.hsm.key_algorithm == "rsa2048"
    assert [r.name for r in s.hierarchy.regional] == ["tokyo", "osaka", "hokkaido"]
    assert s.db_url.startswith("sqlite:///") and s.db_url.endswith("var/revoca.db")


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key.*tresholds"):
        settings_from_dict({"hsm": {"tresholds": 2}})


def test_one_key_manager_alone_may_not_activate() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        settings_from_dict({"hsm": {"threshold": 1, "shares": 3}})


def test_threshold_above_share_count_is_refused() -> None:
    with pytest.raises(ConfigError, match="impossible"):
        settings_from_dict({"hsm": {"threshold": 4, "shares": 3}})


def test_unknown_key_algorithm_is_refused() -> None:
    with pytest.raises(ConfigError, match="key_algorithm"):
        settings_from_dict({"hsm": {"key_algorithm": "rsa1024"}})


def test_all_47_prefectures() -> None:
    s = settings_from_dict({"hierarchy": {"regional": "all"}})
    assert len(s.hierarchy.regional) == 47 == len(set(PREFECTURES))


def test_duplicate_ca_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="unique"):
        settings_from_dict({"hierarchy": {"regional": ["Tokyo", "Tokyo"]}})


def test_bad_subject_dn_is_refused() -> None:
    with pytest.raises(ConfigError, match="RFC 4514"):
        settings_from_dict({"hierarchy": {"bridge": {"name": "bridge", "subject": "not a dn"}}})


def test_environment_overrides_file(tmp_path: Path) -> None:
    conf = tmp_path / "revoca.toml"
    conf.write_text('data_dir = "/srv/a"\n[hsm]\nthreshold = 3\nshares = 5\n')
    s = load_settings(conf, env={"REVOCA_DATA_DIR": "/srv/b", "REVOCA_HSM_THRESHOLD": "4"})
    assert s.data_dir == Path("/srv/b")
    assert (s.hsm.threshold, s.hsm.shares) == (4, 5)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "revoca.toml"
    conf.write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(conf, env={})
