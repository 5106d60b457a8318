"""`revoca crl issue|list|show` and `revoca serve scheduler`, against the HSM service running
in this process (activated with two demo shares) and a real SQLite database.

"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.cli import cli as root
from ca.enums import ListType
from ca.errors import InvalidInput, NotFound
from ca.scheduler import Scheduler
from ca.storage.engine import session_scope
from ca.storage.store import ReadStore

from support.clock import NO_NTP
from support.installation import CeremonyTemplates, Installation, serving_installation
from support.officers import standard_cast
from support.tools import damage_last_byte

ENTRY_POINT = "from ca.cli import main\nmain()\n"


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory,
                 ceremony_templates: CeremonyTemplates) -> Iterator[Installation]:
    """A demo installation (SQLite) with the HSM service running in this process, activated."""
    with serving_installation(ceremony_templates, "sqlite", tmp_path_factory.mktemp("cli"), prefix="rvc") as made:
        yield made


def run_cli(installation: Installation, *args: str, env: dict[str, str] | None = None) -> Result:
    """`revoca ARGS` in this process (click's runner), pointed at `installation` by the environment,
    with the logins the command needs (support.officers)."""
    argv, stdin = standard_cast(installation.settings.demo_shares_dir).for_command(args).into(args)
    return CliRunner().invoke(root, argv, input=stdin, env=installation.env(**(env or {})), catch_exceptions=True)


@pytest.fixture(autouse=True)
def _no_revoca_toml_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # settings come from the environment only


def test_issue_one_ca_prints_a_table_and_archives(installation: Installation) -> None:
    result = run_cli(installation, "crl", "issue", "--ca", "tokyo", "--type", "crl")
    assert result.exit_code == 0, result.output
    header, rule, row = result.output.splitlines()
    assert header.split() == ["CA", "TYPE", "NUMBER", "THIS", "UPDATE", "NEXT", "UPDATE", "ENTRIES", "SIZE", "SHA-256"]
    assert row.split()[:2] == ["tokyo", "crl"]
    with session_scope(installation.engine) as s:
        store = ReadStore(s)
        latest = store.issued_crl(store.ca("tokyo"), ListType.CRL)
        assert row.split()[-1] == latest.sha256.hex()


def test_issue_all_both_lists_as_json(installation: Installation) -> None:
    result = run_cli(installation, "crl", "issue", "--all", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {(d["ca"], d["type"]) for d in data["issued"]} == {
        (ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido") for t in ("crl", "arl")}
    assert data["failed"] == []
    for item in data["issued"]:
        assert x509.load_der_x509_crl(Path(item["path"]).read_bytes()).extensions.get_extension_for_class(
            x509.CRLNumber).value.crl_number == item["number"]


@pytest.mark.parametrize("args", [[], ["--ca", "tokyo", "--all"]])
def test_issue_needs_either_cas_or_all(installation: Installation, args: list[str]) -> None:
    result = run_cli(installation, "crl", "issue", *args)
    assert result.exit_code == 2 and "--ca NAME" in result.output


def test_issue_without_the_hsm_service_is_one_error_line_per_list(installation: Installation) -> None:
    result = run_cli(installation, "crl", "issue", "--ca", "osaka", env={"REVOCA_HSM_SOCKET": "/nonexistent/hsm.sock"})
    assert result.exit_code == 9  # ServiceUnavailable
    lines = result.output.splitlines()
    assert lines == [f"revoca: error: osaka {t}: not issued: the HSM service is not running on "
                     "/nonexistent/hsm.sock; start it with `revoca serve hsm`" for t in ("CRL", "ARL")]


def test_list_shows_the_archive_newest_first(installation: Installation) -> None:
    run_cli(installation, "crl", "issue", "--ca", "hokkaido")
    data = json.loads(run_cli(installation, "crl", "list", "--ca", "hokkaido", "--json").output)
    assert {d["type"] for d in data} == {"crl", "arl"}
    assert [d["this_update"] for d in data] == sorted((d["this_update"] for d in data), reverse=True)
    arl_only = json.loads(run_cli(installation, "crl", "list", "--type", "arl", "--json").output)
    assert arl_only and {d["type"] for d in arl_only} == {"arl"}
    table = run_cli(installation, "crl", "list", "--ca", "hokkaido").output.splitlines()
    assert table[0].split()[:3] == ["CA", "TYPE", "NUMBER"] and all("hokkaido" in line for line in table[2:])


def test_show_checks_the_file_and_gives_pem_or_der(installation: Installation, tmp_path: Path) -> None:
    run_cli(installation, "crl", "issue", "--ca", "osaka", "--type", "arl")
    shown = run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "arl")
    assert shown.exit_code == 0, shown.output
    assert "matches the archived SHA-256" in shown.output
    details = json.loads(run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "arl", "--json").output)
    pem = run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "arl", "--pem").output.encode()
    assert x509.load_pem_x509_crl(pem).public_bytes(Encoding.DER) == \
        Path(details["path"]).read_bytes()
    out = tmp_path / "osaka.arl"
    assert run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "arl", "--der-out", str(out)).exit_code == 0
    assert out.read_bytes() == Path(details["path"]).read_bytes()
    numbered = json.loads(run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "arl", "--number",
                                   str(details["number"]), "--json").output)
    assert numbered["sha256"] == details["sha256"]


def test_show_of_a_number_never_issued_is_not_found(installation: Installation) -> None:
    result = run_cli(installation, "crl", "show", "--ca", "tokyo", "--number", "99999")
    assert isinstance(result.exception, NotFound) and "no CRL number 99999" in str(result.exception)


def test_show_refuses_a_file_that_no_longer_matches_the_archive(installation: Installation) -> None:
    run_cli(installation, "crl", "issue", "--ca", "bridge", "--type", "crl")
    details = json.loads(run_cli(installation, "crl", "show", "--ca", "bridge", "--json").output)
    path = Path(details["path"])
    damage_last_byte(path)
    result = run_cli(installation, "crl", "show", "--ca", "bridge")
    assert isinstance(result.exception, InvalidInput) and "altered or damaged" in str(result.exception)


def test_serve_scheduler_leaves_nothing_due_and_stops_on_sigterm(installation: Installation) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    proc = subprocess.Popen([sys.executable, "-c", ENTRY_POINT, "serve", "scheduler"], env={**env,
                                                                                            **installation.env()},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the first round is over
            lines.append(line)
            if "next round at" in line or "round failed" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 0, out
    assert "CRL scheduler: every 24 h, valid 72 h" in out and "CRL scheduler stopped" in out
    assert "round done: " in out and " 0 failed" in out
    now = dt.datetime.now(dt.UTC)
    assert Scheduler(installation.engine, None, installation.data_dir, time_guard=NO_NTP).due(now) == []  # type: ignore[arg-type]
    ctx = click.Context(root, info_name="revoca")
    assert root.get_command(ctx, "serve").get_command(ctx, "scheduler").name == "scheduler"  # type: ignore[union-attr]


def test_issue_and_show_a_delta_crl_that_names_its_base(installation: Installation, tmp_path: Path) -> None:
    base = run_cli(installation, "crl", "issue", "--ca", "osaka", "--type", "crl", "--json")
    assert base.exit_code == 0, base.output
    [crl] = json.loads(base.output)["issued"]
    result = run_cli(installation, "crl", "issue", "--ca", "osaka", "--type", "delta", "--json")
    assert result.exit_code == 0, result.output
    [delta] = json.loads(result.output)["issued"]
    assert delta["type"] == "delta" and delta["number"] == crl["number"] + 1
    base_crl = x509.load_der_x509_crl(Path(crl["path"]).read_bytes())
    assert base_crl.extensions.get_extension_for_class(x509.FreshestCRL).value  # deltas are on by default
    shown = run_cli(installation, "crl", "show", "--ca", "osaka", "--type", "delta", "--der-out",
                    str(tmp_path / "delta.crl"))
    assert shown.exit_code == 0, shown.output
    parsed = x509.load_der_x509_crl((tmp_path / "delta.crl").read_bytes())
    assert parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == crl["number"]
    listed = run_cli(installation, "crl", "list", "--ca", "osaka", "--type", "delta", "--json")
    rows = json.loads(listed.output)  # newest first; `serve scheduler` may have issued deltas before
    assert rows[0]["number"] == delta["number"] and {r["type"] for r in rows} == {"delta"}
    # the default, both, is the CRL and the ARL: a delta issued last does not push the CRL off a --limit 1
    newest = json.loads(run_cli(installation, "crl", "list", "--ca", "osaka", "--limit", "1", "--json").output)
    assert [(r["type"], r["number"]) for r in newest] == [("crl", crl["number"])]
    every = json.loads(run_cli(installation, "crl", "list", "--ca", "osaka", "--json").output)
    assert "crl" in {r["type"] for r in every} <= {"crl", "arl"}  # osaka issues no ARL: it certifies no CA
