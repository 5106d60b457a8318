"""Another local user reads nothing under the data directory (issue 12).

Found in an attack: as `nobody`, sqlite3 read the operators' and verifiers' password hashes,
every revocation with its reason and the audit log, and every CRL file.  Now every revoca
process runs with umask 027 and tightens what it finds on start (ca.host.files).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca.host.files import world_readable

from support.cli import REVOCA
from support.database import sqlite_copy
from support.installation import CeremonyTemplates, demo_installation

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user (setpriv)")

PROBE = r"""
import json, os, sqlite3, sys
from pathlib import Path
root = Path(sys.argv[1])
got = {}
def attempt(name, fn):
    try:
        fn()
        got[name] = "read"
    except (PermissionError, sqlite3.OperationalError) as exc:
        got[name] = type(exc).__name__
attempt("list the data directory", lambda: os.listdir(root))
attempt("database file", lambda: open(root / "revoca.db", "rb").read(16))
attempt("sqlite3 query", lambda: sqlite3.connect(f"file:{root / 'revoca.db'}?mode=ro", uri=True)
        .execute("SELECT credential_hash FROM operators").fetchall())
attempt("token directory", lambda: os.listdir(root / "tokens"))
attempt("SoftHSM2 configuration", lambda: open(root / "softhsm2.conf").read())
attempt("share file", lambda: open(sys.argv[2]).read())
print(json.dumps(got))
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory whose parents other users may pass through (pytest's tmp_path is 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="rvperm", dir="/tmp"))
    os.chmod(parent, 0o755)
    yield parent / "var"
    shutil.rmtree(parent)


def _revoca(data: Path, *args: str, **extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVOCA_", "SOFTHSM2_"))}
    env.update(REVOCA_DATA_DIR=str(data), REVOCA_HSM_KEY_ALGORITHM="p256", REVOCA_HSM_SOCKET=str(data / "h.sock"),
               **extra)
    proc = subprocess.run([REVOCA, *args], env=env, capture_output=True, text=True, timeout=120, cwd=data.parent)
    assert proc.returncode == 0, proc.stderr


def _as_nobody(data: Path) -> dict[str, str]:
    share = next((data / "demo-shares").glob("share-1-*.txt"))
    proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                           PROBE, str(data), str(share)], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_after_init_nobody_reads_anything(data_dir: Path) -> None:
    _revoca(data_dir, "init", "--demo")
    assert world_readable(data_dir) == []
    got = _as_nobody(data_dir)
    assert set(got.values()) <= {"PermissionError", "OperationalError"}, got
    assert len(got) == 6


def test_a_data_directory_left_open_is_closed_at_the_next_start(data_dir: Path,
                                                                 ceremony_templates: CeremonyTemplates) -> None:
    # what `init --demo` leaves (the test above has it): a copy of this worker's demo ceremony,
    # its database where `revoca` looks by default, in the data directory
    with demo_installation(ceremony_templates, "sqlite", data_dir.parent, with_keys=False) as made:
        assert made.data_dir == data_dir, (made.data_dir, data_dir)
        sqlite_copy(made.settings.db_url, f"sqlite:///{data_dir / 'revoca.db'}")
        label = made.settings.hsm.token_label
    (data_dir.parent / "revoca.db").unlink(missing_ok=True)
    for path in (data_dir, *data_dir.rglob("*")):  # as an older revoca (umask 022) left it
        os.chmod(path, path.stat().st_mode | (0o005 if path.is_dir() else 0o004))
    assert world_readable(data_dir)
    assert _as_nobody(data_dir)["database file"] == "read"  # the attack, as it was
    _revoca(data_dir, "init", "--if-needed", REVOCA_HSM_TOKEN_LABEL=label)
    assert world_readable(data_dir) == []
    assert set(_as_nobody(data_dir).values()) <= {"PermissionError", "OperationalError"}
