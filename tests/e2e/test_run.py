"""`revoca run` (what `make run` starts): ceremony once, HSM service activated, clean stop.

`revoca run` and the commands it prints (curl, openssl, ldapsearch, `tail ... | revoca`) run as
processes; the test's own reads of the running service (`revoca status`, `crl list`, `repository
queue`, ...) run in this process (support.tools.revoca_run: ~0.5 s of start-up each saved).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca.host import identities
from ca.host.files import world_readable
from ca.storage.engine import make_engine
from repository.slapd import LocalSlapd

from support.installation import CeremonyTemplates
from support.settings import make_settings
from support.tools import free_port, revoca_run

REVOCA = str(Path(sys.executable).with_name("revoca"))


def _sockets(root: Path) -> Path:
    """Where the HSM socket goes: beside `root` (a socket path has at most 108 bytes), removed with it."""
    return root.with_name(f"{root.name}-sockets")


def _env(root: Path) -> dict[str, str]:
    sockets = _sockets(root)
    sockets.mkdir()
    os.chmod(sockets, 0o755)  # the HSM service's own user makes its socket in there
    return {**os.environ, "REVOCA_DATA_DIR": str(root / "var"), "REVOCA_HSM_KEY_ALGORITHM": "p256",
            "REVOCA_HSM_SOCKET": str(sockets / "run" / "hsm.sock"), "REVOCA_REPOSITORY_PORT": str(free_port()),
            # the publisher's idle rounds every 0.2 s (default 2): the lists are in the directory sooner
            "REVOCA_REPOSITORY_PUBLISHER_POLL_SECONDS": "0.2"}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory other users may pass through (pytest's own is 0700): as root, `revoca run`
    gives the data directory to the services' own users, who must reach it."""
    root = Path(tempfile.mkdtemp(prefix="rvrun-data", dir="/tmp"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(_sockets(root), ignore_errors=True)



@pytest.fixture
def installed(tmp_path: Path, ceremony_templates: CeremonyTemplates) -> dict[str, str]:
    """A copy of this worker's demo key ceremony (token, shares, officers, database) where `revoca
    run` looks for its data (tmp_path/var, its database var/revoca.db), for a test whose subject is
    not the first run: `revoca run` finds it initialised and runs no ceremony of its own.  Returns
    what the environment adds to `_env`'s: the copy's token label (the rest stays `revoca run`'s own)."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'var' / 'revoca.db'}")
    engine = make_engine(settings.db_url)
    try:
        ceremony_templates.restore("sqlite", settings, engine)
    finally:
        engine.dispose()
    return {"REVOCA_HSM_TOKEN_LABEL": settings.hsm.token_label}


def _revoca(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """A reading `revoca` command, in this process as a new one would run it; it must exit 0."""
    done = revoca_run(env, *args, stdin=stdin)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def _passwords(url: str, user: str, password: str) -> urllib.request.HTTPPasswordMgrWithDefaultRealm:
    manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    manager.add_password(None, url, user, password)
    return manager


def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([REVOCA, "run", "--ra-port", str(free_port()), "--ocsp-port", str(free_port()),
                             "--tsa-port", str(free_port()), "--status-port", str(free_port()),
                             "--web-port", str(free_port()), "--cvs-port", str(free_port())],
                            env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    if not any("Ctrl-C stops everything" in ln for ln in lines):
        proc.terminate()  # do not leave a half-started service behind
        proc.wait(timeout=30)
        raise AssertionError("".join(lines))
    return proc, lines


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> str:
    proc.send_signal(sig)
    try:
        rest, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired as exc:  # say what is left (the `started` fixture then stops it)
        raise AssertionError(f"revoca run did not stop within 30 s of {sig.name}; still running: "
                             f"{_descendants(proc.pid)}") from exc
    return rest


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """The `revoca run` processes a test starts: stopped (and their slapd too) even when the test fails."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    LocalSlapd(tmp_path / "var" / "ldap", "o=JPKI,c=JP", 1).stop()


@pytest.mark.slow
def test_run_initialises_activates_and_stops_cleanly_then_reuses_its_data(
        tmp_path: Path, started: list[subprocess.Popen[str]]) -> None:
    env = _env(tmp_path)
    proc, lines = _start(env)
    started.append(proc)
    out = "".join(lines)
    assert "first run: key ceremony with demo shares (DEMO ONLY)" in out
    # one log format, `time service level message`, for revoca's, gunicorn's and granian's lines (issue 17)
    logged = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) ", re.M)
    assert {"hsm", "ra", "ocsp", "tsa", "status"} <= {m[1] for m in logged.finditer(out)}, out
    assert re.search(r"Z ra INFO Listening at: https://127\.0\.0\.1:\d+", out), out  # gunicorn's
    assert re.search(r"Z ocsp INFO Listening at: http://127\.0\.0\.1:\d+", out), out  # granian's
    assert not re.search(r"^\[(\d{4}-|INFO|WARNING)", out, re.M), out  # gunicorn's and granian's own formats
    assert "Python threads" not in out and "Websockets are not supported" not in out
    # as root each service runs as its own user (issue 12), where they can run this Python
    if identities.unreachable(tmp_path / "var", Path(env["REVOCA_HSM_SOCKET"]).parent):
        assert "WARNING: every service runs as root" in out
    else:
        assert "services run as their own users" in out
        # -ww: whole command lines (cut at 80 columns, a clone's longer path hid `serve scheduler`)
        users = subprocess.run(["ps", "-ww", "-eo", "user:20,args"], capture_output=True, text=True).stdout
        for service, user in (("hsm", "revoca-hsm"), ("ocsp", "revoca-ocsp"), ("ocsp-signer", "revoca-ocsp"),
                              ("ra", "revoca-ra"),
                              ("scheduler", "revoca-scheduler"), ("publisher", "revoca-publisher"),
                              ("web", "revoca-web"), ("cvs", "revoca-cvs")):
            assert any(ln.split()[0] == user and f"serve {service}" in ln for ln in users.splitlines()), users
        assert any(ln.split()[0] == "revoca-ldap" and str(tmp_path) in ln for ln in users.splitlines()), users
    # nothing the running service wrote is readable by other local users (issue 12)
    assert world_readable(tmp_path / "var") == []
    assert "activated (2 of 3 key managers)" in out
    status = _revoca(env, "hsm", "status")
    assert "activated" in status.stdout and "not activated" not in status.stdout
    listing = _revoca(env, "ca", "list")
    assert all(name in listing.stdout for name in ("bridge", "tokyo", "osaka", "hokkaido"))
    # the printed curl command revokes a demo certificate through the RA API, with the clerk's
    # password from the file the output names: the password itself is never in the log (issue 12)
    password_file = re.search(r"the last line of (\S+\.password)\)", out)
    assert password_file, out
    clerk_password = Path(password_file.group(1)).read_text().splitlines()[-1]
    assert clerk_password not in out
    assert Path(password_file.group(1)).stat().st_mode & 0o077 == 0
    curl = next(ln.strip() for ln in lines if ln.strip().startswith("curl "))
    curl = curl.replace(" -u demo-clerk ", f" -u demo-clerk:{clerk_password} ")
    answer = subprocess.run(curl + " -s -w '\n%{http_code}'", shell=True, capture_output=True, text=True,
                            check=True).stdout
    assert answer.rstrip().endswith("201"), answer
    assert '"status":"completed"' in answer
    # the printed command of the demo operator logs in (docs/roles.md) with the password piped in
    listed = next(ln.strip() for ln in lines if ln.strip().startswith("tail -n 1 ") and "--operator" in ln)
    listed = listed.replace(".venv/bin/revoca", REVOCA) + " --json"
    rows = json.loads(subprocess.run(listed, shell=True, env=env, capture_output=True, text=True, check=True).stdout)
    assert rows and {r["issuer"] for r in rows} == {"tokyo"}
    operator_login = {"args": ["--operator", "demo-operator"],
                      "stdin": Path(listed.split()[3]).read_text().splitlines()[-1] + "\n"}
    # the printed openssl ocsp, signed as the demo verifier, sees that revocation at once
    ocsp = next(ln.strip() for ln in lines if ln.strip().startswith("openssl ocsp "))
    seen = subprocess.run(ocsp, shell=True, capture_output=True, text=True, timeout=60)
    assert "Response verify OK" in seen.stdout + seen.stderr, seen
    assert ": revoked" in seen.stdout and "Reason: keyCompromise" in seen.stdout, seen.stdout
    # the OCSP signer (issue 16) has signed that revocation's answer ahead, within seconds
    database = sqlite3.connect(tmp_path / "var" / "revoca.db")
    _wait(lambda: database.execute("SELECT count(*) FROM ocsp_presigned p JOIN revocations r "
                                   "ON r.id = p.revocation_id").fetchone()[0] >= 1, "an answer signed ahead", 30)
    database.close()
    # the printed openssl ts query goes through curl to the TSA; openssl verifies the reply
    assert re.search(r"^TSA: +http://127\.0\.0\.1:\d+/", out, re.M), out
    stamp = next(ln.strip() for ln in lines if ln.strip().startswith("openssl ts -query "))
    stamped = subprocess.run(stamp, shell=True, capture_output=True, text=True, timeout=60)
    assert stamped.returncode == 0 and "Verification: OK" in stamped.stdout, stamped
    # the status page, with the demo key manager's credentials as printed, and the metrics
    page = re.search(r"^status page: (http://127\.0\.0\.1:\d+/) +\(log in as (\w+); its DEMO ONLY password is the "
                     r"last line of (\S+):", out, re.M)
    assert page, out
    url, user, password_file = page.groups()
    password = Path(password_file).read_text().splitlines()[-1]
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(_passwords(url, user, password)))
    with opener.open(url, timeout=30) as resp:
        html = resp.read().decode()
    assert resp.status == 200 and "tokyo" in html and "hokkaido" in html
    with urllib.request.urlopen(url + "metrics", timeout=30) as resp:
        metrics = resp.read().decode()
    assert "revoca_crl_next_update_seconds" in metrics and "revoca_hsm_activated" in metrics
    # the public web repository (issue 17): every CA's page, no login
    web = re.search(r"^web: +(http://127\.0\.0\.1:\d+/) ", out, re.M)
    assert web, out
    with urllib.request.urlopen(web.group(1) + "ca/tokyo.html", timeout=30) as resp:
        assert resp.status == 200 and "SHA-256" in resp.read().decode()
    # the scheduler catches up at start: every CA gets a CRL and an ARL
    deadline = time.monotonic() + 60
    while True:
        issued = json.loads(_revoca(env, "crl", "list", "--json").stdout)
        if {(r["ca"], r["type"]) for r in issued} >= {(ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido")
                                                     for t in ("crl", "arl")} or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # each CA's CRL and ARL (and its delta CRL, RFC 5280 5.2.4, when [crl] delta_period_minutes is on)
    assert len({(r["ca"], r["type"]) for r in issued if r["type"] in ("crl", "arl")}) == 8, issued
    # ... and the publisher puts them into the local slapd
    deadline = time.monotonic() + 60
    while True:
        queue = json.loads(_revoca(env, "repository", "queue", "--json", *operator_login["args"],
                                   stdin=operator_login["stdin"]).stdout)
        if all(q["published_at"] and not q["pending"] for q in queue) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # per CA: its certificates, CRL, ARL (and delta CRL when delta CRLs are on)
    items = {(q["ca"], q["item"]) for q in queue}
    assert {(ca, i) for ca in ("bridge", "tokyo", "osaka", "hokkaido") for i in ("certificates", "crl", "arl")} <= items
    assert all(q["published_at"] and not q["pending"] for q in queue), queue
    # every component up, the scheduler and publisher holding their leases (issue 15),
    # and, the catch-up round over and published, no warning (exit 0; a list not issued yet is
    # one: asked right after the start, as it was, it raced the scheduler's first round)
    overall = revoca_run(env, "status", "--wait", "30")
    assert overall.returncode == 0, overall.stdout + overall.stderr
    assert all(f"{c}: up" in overall.stdout for c in ("database", "hsm", "ldap", "scheduler", "publisher"))
    port = env["REVOCA_REPOSITORY_PORT"]
    arl = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{port}/", "-b", "o=JPKI,c=JP",
                          "(cn=Governor of Tokyo)", "authorityRevocationList;binary"], capture_output=True, text=True)
    assert arl.returncode == 0 and "authorityRevocationList;binary::" in arl.stdout, arl
    # the printed ldapsearch, as the demo verifier, gets tokyo's CRL: the archived bytes
    ldapsearch = next(ln.strip() for ln in lines if ln.strip().startswith("ldapsearch "))
    deadline = time.monotonic() + 30
    while True:  # the publisher creates the verifier's account within its first rounds
        got = subprocess.run(ldapsearch + f" -o ldif-wrap=no -T {tmp_path}", shell=True, capture_output=True, text=True)
        if "certificateRevocationList;binary:< file://" in got.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    fetched = Path(got.stdout.split("certificateRevocationList;binary:< file://", 1)[1].split()[0])
    newest = max((tmp_path / "var" / "crls" / "tokyo" / "crl").glob("*.crl"), key=lambda p: int(p.stem))
    assert fetched.read_bytes() == newest.read_bytes()
    # a hostile local user reads neither that CRL file, nor the database, nor a terminal's key (issue 12)
    for secret in (newest, tmp_path / "var" / "revoca.db", tmp_path / "var" / "demo-terminal" / "demo-window.key"):
        probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat", str(secret)],
                               capture_output=True, text=True)
        assert probe.returncode != 0 and "Permission denied" in probe.stderr, (secret, probe)
    rest = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert not Path(env["REVOCA_HSM_SOCKET"]).exists()
    status = _revoca(env, "repository", "status")
    assert "not running" in status.stdout  # run started slapd, so run stopped it

    proc, lines = _start(env)  # the second run reuses the hierarchy
    started.append(proc)
    assert not any("first run" in ln for ln in lines)
    rest = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0, rest
    assert not Path(env["REVOCA_HSM_SOCKET"]).exists(), rest


def _descendants(pid: int) -> dict[int, str]:
    """Every process under `pid` (its children, theirs, ...), by pid, with its command line."""
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,args="], capture_output=True, text=True).stdout
    children: dict[int, list[tuple[int, str]]] = {}
    for line in table.splitlines():
        child, parent, args = line.split(None, 2) if len(line.split(None, 2)) == 3 else (*line.split(), "")
        children.setdefault(int(parent), []).append((int(child), args))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child, args in children.get(todo.pop(), []):
            found[child] = args
            todo.append(child)
    return found


def _wait(condition, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.2)


@pytest.mark.slow
def test_run_starts_again_what_dies_and_leaves_nothing_behind(tmp_path: Path, installed: dict[str, str],
                                                               started: list[subprocess.Popen[str]]) -> None:
    """Found (issue 15): kill -9 of the publisher ended the whole stack without naming it; kill -9 of
    an OCSP worker shut granian down; kill -9 of slapd went unnoticed; after Ctrl-C a granian
    master and worker could stay behind.  (On a copied ceremony: the first run has the test above.)"""
    env = {**_env(tmp_path), **installed}
    proc, lines = _start(env)
    started.append(proc)
    assert not any("first run" in ln for ln in lines)  # the copied installation is the one running
    seen = _descendants(proc.pid)

    def serving(service: str) -> list[int]:
        # (not "serve ocsp-signer" for "serve ocsp")
        return [pid for pid, args in _descendants(proc.pid).items() if re.search(rf"serve {service}(\s|$)", args)]

    # the publisher: killed, named, started again
    [publisher] = [p for p in serving("publisher") if p in seen and "serve publisher" in seen[p]][:1]
    os.kill(publisher, signal.SIGKILL)
    _wait(lambda: any(p != publisher for p in serving("publisher")), "a new publisher")
    # one OCSP worker: granian starts another, and the responder answers throughout
    ocsp_master = min(serving("ocsp"))
    workers = [p for p in serving("ocsp") if p != ocsp_master]
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _wait(lambda: len([p for p in serving("ocsp") if p != ocsp_master]) == 2 and workers[0] not in serving("ocsp"),
          "a new OCSP worker")
    query = next(ln.strip() for ln in lines if ln.strip().startswith("openssl ocsp "))
    answer = subprocess.run(query, shell=True, capture_output=True, text=True, timeout=60)
    assert "Response verify OK" in answer.stdout + answer.stderr, answer
    # slapd: killed, noticed, started again, answering
    slapd = LocalSlapd(tmp_path / "var" / "ldap", "o=JPKI,c=JP", int(env["REVOCA_REPOSITORY_PORT"]))
    first_slapd = slapd.pid()
    assert first_slapd is not None
    os.kill(first_slapd, signal.SIGKILL)
    _wait(lambda: slapd.pid() not in (None, first_slapd) and slapd.answers(), "slapd started again")
    everything = {**seen, **_descendants(proc.pid)}
    rest = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, rest
    assert "revoca: publisher was killed by SIGKILL; starting it again" in rest
    assert "revoca: slapd is gone" not in rest and "revoca: slapd exited with status 1; starting it again" in rest
    # nothing of it is left: every process seen under revoca run is gone
    _wait(lambda: not [p for p in everything if _alive(p)], "every child gone", timeout=10)
    assert slapd.pid() is None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"
