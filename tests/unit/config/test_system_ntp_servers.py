"""NTP by default wherever the machine has any (issue 15): revoca reads the time daemon's own
configuration when revoca.toml and the environment name no server."""

from __future__ import annotations

from pathlib import Path

from ca.config import load_settings
from ca.config.system_ntp import discover


def _write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_chrony_servers_and_pools_with_their_options_dropped(tmp_path: Path) -> None:
    _write(tmp_path, "/etc/chrony/chrony.conf",
           "# comment\npool 2.debian.pool.ntp.org iburst\nserver ntp1.example.jp iburst maxpoll 6\n"
           "server 192.0.2.7 port 1123\nkeyfile /etc/chrony/chrony.keys\nserver ntp1.example.jp\n")
    found = discover(tmp_path)
    assert found.servers == ("2.debian.pool.ntp.org", "ntp1.example.jp", "192.0.2.7:1123")
    assert found.source == "/etc/chrony/chrony.conf"


def test_timesyncd_ntp_line_only_and_an_empty_line_resets(tmp_path: Path) -> None:
    _write(tmp_path, "/etc/systemd/timesyncd.conf", "[Time]\n#NTP=\n#FallbackNTP=0.debian.pool.ntp.org\n")
    assert discover(tmp_path).servers == ()  # the built-in fallback is nobody's choice
    _write(tmp_path, "/etc/systemd/timesyncd.conf.d/site.conf", "[Time]\nNTP=a.example b.example\n")
    assert discover(tmp_path).servers == ("a.example", "b.example")
    _write(tmp_path, "/etc/systemd/timesyncd.conf.d/zz.conf", "[Time]\nNTP=\n")
    assert discover(tmp_path).servers == ()


def test_ntpd_when_there_is_no_chrony(tmp_path: Path) -> None:
    _write(tmp_path, "/etc/ntpsec/ntp.conf", "pool 0.debian.pool.ntp.org iburst\nrestrict default kod\n")
    assert discover(tmp_path).servers == ("0.debian.pool.ntp.org",)


def test_settings_take_the_machines_servers_unless_the_operator_chose(tmp_path: Path) -> None:
    _write(tmp_path, "/etc/chrony/chrony.conf", "server ntp.example.jp iburst\n")
    assert load_settings(env={}, system_root=tmp_path).time.ntp_servers == ("ntp.example.jp",)
    assert load_settings(env={}, system_root=tmp_path).time.ntp_source == "/etc/chrony/chrony.conf"
    chosen = tmp_path / "revoca.toml"
    chosen.write_text("[time]\nntp_servers = []\n")  # explicitly none: the operator's choice stands
    assert load_settings(chosen, env={}, system_root=tmp_path).time.ntp_servers == ()
    overridden = load_settings(env={"REVOCA_TIME_NTP_SERVERS": "b.example"}, system_root=tmp_path)
    assert overridden.time.ntp_servers == ("b.example",)
    assert overridden.time.ntp_source == "REVOCA_TIME_NTP_SERVERS"


def test_a_machine_without_any_gets_none(tmp_path: Path) -> None:
    settings = load_settings(env={}, system_root=tmp_path)
    assert (settings.time.ntp_servers, settings.time.ntp_source) == ((), "")
