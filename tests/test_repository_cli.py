"""`revoca repository start|status|stop` runs a real slapd under the data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tools import free_port

REVOCA = str(Path(sys.executable).with_name("revoca"))



def _revoca(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REVOCA, *args], env=env, capture_output=True, text=True, timeout=60)


def test_start_status_stop_and_anonymous_root_search(tmp_path: Path) -> None:
    port = free_port()
    conf = tmp_path / "revoca.toml"
    conf.write_text(f'data_dir = "{tmp_path / "var"}"\n[repository]\nbase_dn = "o=Test,c=JP"\nport = {port}\n')
    env = {**os.environ, "REVOCA_CONFIG": str(conf)}
    try:
        started = _revoca(env, "repository", "start")
        assert started.returncode == 0, started.stderr
        status = json.loads(_revoca(env, "repository", "status", "--json").stdout)
        assert status["running"] and status["answering"] and status["uri"] == f"ldap://127.0.0.1:{port}/"
        base = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", status["uri"], "-b", "o=Test,c=JP", "-s", "base",
                               "dn"], capture_output=True, text=True, timeout=30)
        assert base.returncode == 0 and "dn: o=Test,c=JP" in base.stdout, base.stderr
        again = _revoca(env, "repository", "start")
        assert again.returncode != 0 and again.stderr.count("\n") == 1 and "revoca: error:" in again.stderr
    finally:
        stopped = _revoca(env, "repository", "stop")
    assert stopped.returncode == 0 and "slapd stopped" in stopped.stdout
    assert json.loads(_revoca(env, "repository", "status", "--json").stdout)["running"] is False
    assert "not running" in _revoca(env, "repository", "stop").stdout


def test_bad_repository_setting_is_one_error_line(tmp_path: Path) -> None:
    conf = tmp_path / "revoca.toml"
    conf.write_text("[repository]\nport = 70000\n")
    result = _revoca({**os.environ, "REVOCA_CONFIG": str(conf)}, "repository", "status")
    assert result.returncode == 2 and result.stderr.strip() == "revoca: error: repository.port 70000 is not a TCP port"
