"""`revoca repository start|status|stop` runs a real slapd under the data directory; `publish` and `queue`."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from ca import ceremony
from ca.config import Settings
from ca.crl.issue import issue_all
from ca.errors import ServiceUnavailable
from ca.hsm import shares as sharing
from ca.hsm import token_for
from repository.slapd import LocalSlapd

from support.clock import NO_NTP
from support.officers import standard_cast
from support.settings import NOW
from support.tools import free_port, revoca, revoca_run, write_config


def _revoca(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return revoca_run(env, *args)


@pytest.mark.slow
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


def test_publish_queue_and_status_show_what_waits_and_what_is_published(
        ldap_settings: Settings, engine: sa.Engine, slapd: LocalSlapd, tmp_path: Path,
        initialized: ceremony.CeremonyResult) -> None:
    result = initialized  # the demo ceremony; the repository settings play no part in it
    secret = sharing.combine([share for _, share in result.shares[:2]])
    keys = token_for(ldap_settings).open(sharing.user_pin(secret))
    try:
        issue_all(engine, keys, ldap_settings.data_dir, now=NOW, time_guard=NO_NTP)
    finally:
        keys.close()
    env = write_config(ldap_settings, tmp_path / "revoca.toml")
    cast = standard_cast(ldap_settings.demo_shares_dir)  # an operator logs in (support.officers)

    code, out, _ = revoca(env, "repository", "queue", "--json", login=cast)
    queue = json.loads(out)
    assert code == 0 and len(queue) == 12  # 4 CAs x (certificates, crl, arl)
    lists = [q for q in queue if q["item"] != "certificates"]
    assert all(q["pending"] == 1 and q["published_at"] is None for q in lists)

    slapd.stop()  # the directory is away: nothing is lost, the command says so and fails
    code, out, err = revoca(env, "repository", "publish", login=cast)
    assert code == ServiceUnavailable.exit_code
    assert "unreachable" in err and "everything stays queued" in err
    code, out, err = revoca(env, "status", "--json")
    status = json.loads(out)
    # issue 15: the directory, the HSM service, the scheduler and the publisher are down, and it says so
    assert code == ServiceUnavailable.exit_code and status["publication_waiting"] == 12
    assert {name for name, c in status["components"].items() if not c["up"]} == {
        "ldap", "hsm", "scheduler", "publisher"}
    assert status["components"]["database"]["up"] is True
    code, out, err = revoca(env, "status")
    assert code == ServiceUnavailable.exit_code and "DOWN: ldap: DOWN (nothing answers on 127.0.0.1:" in err
    assert "LDAP publication: 12 waiting (revoca repository queue), and the LDAP repository is DOWN" in out
    assert any("not in the LDAP repository yet: tokyo crl" in w and "unreachable" in w for w in status["warnings"])

    slapd.start()
    code, out, err = revoca(env, "repository", "publish", login=cast)
    assert code == 0, err
    assert sum(line.startswith("published ") for line in out.splitlines()) == 12
    assert "published tokyo CRL #" in out
    code, out, _ = revoca(env, "repository", "queue", login=cast)
    assert code == 0 and "tokyo" in out
    queue = json.loads(revoca(env, "repository", "queue", "--json", login=cast)[1])
    assert all(q["pending"] == 0 and q["published_at"] for q in queue)
    assert {q["published_number"] for q in queue if q["item"] != "certificates"} == {1}
    code, out, _ = revoca(env, "repository", "publish", login=cast)
    assert code == 0 and "nothing to publish" in out
    # a directory rebuilt from nothing: --all puts everything back
    slapd.stop()
    import shutil

    shutil.rmtree(slapd.db_dir)
    slapd.start()
    code, out, _ = revoca(env, "repository", "publish", "--all", login=cast)
    assert code == 0 and sum(line.startswith("published ") for line in out.splitlines()) == 12, out
