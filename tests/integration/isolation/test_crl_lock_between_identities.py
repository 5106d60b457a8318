"""The CRL directory lock works for the scheduler's user when root's `crl issue` made the lock file.

Found while giving each service its own user (issue 12): the lock file was opened for appending,
so one that root's `revoca crl issue` created (0640, the spool's group) stopped the scheduler.
The lock is taken on a read-only descriptor, which flock allows.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from support.tools import as_other_users

pytestmark = as_other_users

PROBE = "import sys; from pathlib import Path; from ca.crl.issue import _exclusive\n" \
        "with _exclusive(Path(sys.argv[1])):\n    print('locked')\n"


def test_a_lock_file_root_made_serves_another_member_of_the_group() -> None:
    parent = Path(tempfile.mkdtemp(prefix="rvlock", dir="/tmp"))
    try:
        os.chmod(parent, 0o755)
        spool = parent / "crl"
        spool.mkdir(mode=0o770)
        gid = grp.getgrnam("nogroup").gr_gid
        os.chown(spool, 0, gid)
        lock = spool / ".lock"
        lock.touch()
        os.chown(lock, 0, gid)
        os.chmod(lock, 0o640)  # as root's `crl issue` (umask 027) leaves it
        proc = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                               "-c", PROBE, str(spool)], capture_output=True, text=True, timeout=60, cwd="/")
        assert proc.returncode == 0 and proc.stdout.strip() == "locked", proc.stderr
    finally:
        shutil.rmtree(parent)
