"""A full disk: one line, 503, and nothing acknowledged that is not stored (issue 12).

Found in an attack: a full disk gave a traceback from `crl issue` and a 500 from the RA.  The
data lives here on a small tmpfs filled to the last byte (a real ENOSPC from the kernel).
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ca.crl.issue import issue_list
from ca.enums import ListType, Role
from ca.errors import ServiceUnavailable
from ca.ra.app import create_app
from ca.storage.engine import make_engine, session_scope
from ca.storage.store import ReadStore

from support.clock import NO_NTP
from support.database import sqlite_copy
from support.installation import Installation
from support.ra_fixtures import add_operator, basic_auth, register_terminals, revocations, subscribers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a small tmpfs")

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(mount: Path) -> None:
    """Write until the kernel says ENOSPC: not one more byte fits."""
    with open(mount / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 512, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC


def test_crl_issue_on_a_full_disk_is_one_error_and_nothing_is_archived(installation: Installation,
                                                                      small_disk: Path) -> None:
    with session_scope(installation.engine, readonly=True) as s:
        before = {k: v.number for k, v in ReadStore(s).latest_issued_crls().items()}
    (small_disk / "crls").mkdir()
    fill(small_disk)
    with pytest.raises(ServiceUnavailable) as refused:
        issue_list(installation.engine, installation.keys, small_disk, "tokyo", ListType.CRL, now=NOW,
                   time_guard=NO_NTP)
    assert "cannot write" in str(refused.value) and "No space left on device" in str(refused.value)
    assert "\n" not in str(refused.value)
    with session_scope(installation.engine, readonly=True) as s:
        after = {k: v.number for k, v in ReadStore(s).latest_issued_crls().items()}
    assert after == before  # no archive row: nothing will be published
    assert not list((small_disk / "crls").rglob("*.crl"))


def test_the_ra_on_a_full_disk_answers_503_and_revokes_nothing(installation: Installation, small_disk: Path,
                                                              tmp_path: Path) -> None:
    [terminal] = register_terminals(installation.engine, installation.keys, ["t-full"], tmp_path, now=NOW)
    add_operator(installation.engine, "full-clerk", Role.RECEPTIONIST)
    url = f"sqlite:///{small_disk / 'revoca.db'}"
    sqlite_copy(installation.settings.db_url, url)
    engine = make_engine(url)
    target = subscribers(engine, "osaka")[2]
    assert target.id not in revocations(engine)  # opens the database: its WAL and index exist from here
    fill(small_disk)
    app = create_app(engine, installation.keys)
    body = {"issuer_ca": "osaka", "serial": target.hex_serial, "reason": "keyCompromise", "applicant": "self",
            "identity_document_checked": True, "idempotency_key": f"full-{uuid.uuid4()}"}
    answer = app.test_client().post("/v1/revocations", json=body, headers=basic_auth("full-clerk"),
                                    environ_base={"revoca.client_cert_der": terminal.der})
    assert answer.status_code == 503, answer.get_json()
    assert "cannot write" in answer.get_json()["error"] and answer.headers["Retry-After"]
    (small_disk / "filler").unlink()
    assert target.id not in revocations(engine)  # what was refused was not stored either
    engine.dispose()
