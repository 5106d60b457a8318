"""`revoca run` (what `make run` starts): ceremony once, HSM service activated, clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools import free_port

REVOCA = str(Path(sys.executable).with_name("revoca"))


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "REVOCA_DATA_DIR": str(tmp_path / "var"), "REVOCA_HSM_KEY_ALGORITHM": "p256",
            "REVOCA_HSM_SOCKET": str(Path(tempfile.mkdtemp(prefix="rvrun")) / "hsm.sock")}



def _start(env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([REVOCA, "run", "--ra-port", str(free_port())], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert any("Ctrl-C stops everything" in ln for ln in lines), "".join(lines)
    return proc, lines


def _stop(proc: subprocess.Popen[str], sig: signal.Signals) -> str:
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    return rest


def test_run_initialises_activates_and_stops_cleanly_then_reuses_its_data(tmp_path: Path) -> None:
    env = _env(tmp_path)
    proc, lines = _start(env)
    out = "".join(lines)
    assert "first run: key ceremony with demo shares (DEMO ONLY)" in out
    assert "activated (2 of 3 key managers)" in out
    status = subprocess.run([REVOCA, "hsm", "status"], env=env, capture_output=True, text=True, check=True)
    assert "activated" in status.stdout and "not activated" not in status.stdout
    listing = subprocess.run([REVOCA, "ca", "list"], env=env, capture_output=True, text=True, check=True)
    assert all(name in listing.stdout for name in ("bridge", "tokyo", "osaka", "hokkaido"))
    # the printed curl command revokes a demo certificate through the RA API, as printed
    curl = next(ln.strip() for ln in lines if ln.strip().startswith("curl "))
    answer = subprocess.run(curl + " -s -w '\n%{http_code}'", shell=True, capture_output=True, text=True,
                            check=True).stdout
    assert answer.rstrip().endswith("201"), answer
    assert '"status":"completed"' in answer
    # the scheduler catches up at start: every CA gets a CRL and an ARL
    deadline = time.monotonic() + 60
    while True:
        issued = json.loads(subprocess.run([REVOCA, "crl", "list", "--json"], env=env, capture_output=True,
                                           text=True, check=True).stdout)
        if {(r["ca"], r["type"]) for r in issued} >= {(ca, t) for ca in ("bridge", "tokyo", "osaka", "hokkaido")
                                                     for t in ("crl", "arl")} or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len({(r["ca"], r["type"]) for r in issued}) == 8, issued
    rest = _stop(proc, signal.SIGINT)
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert not Path(env["REVOCA_HSM_SOCKET"]).exists()

    proc, lines = _start(env)  # the second run reuses the hierarchy
    assert not any("first run" in ln for ln in lines)
    _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert not Path(env["REVOCA_HSM_SOCKET"]).exists()
