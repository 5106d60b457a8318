"""Nothing under the data directory is readable by other local users (issue 12).

Found in an attack: `var/` was 0755 and the database and CRL files 0644, so `nobody` read the
operators' and verifiers' password hashes, every revocation with its reason, the audit log and
every CRL, around both "only verifiers read CRLs" and "reasons only to verifiers".

Every revoca process starts with umask 027 (`restrict_new_files`): what it creates is at most
0640/0750, never world-readable.  `secure_tree` takes the world's bits off what an older
version (or a copy) left behind; `revoca init`, `revoca run` and every `revoca serve` call it
on start.  The group bits are what the services' identities share (ca.host.identities).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("revoca")

UMASK = 0o027


def restrict_new_files() -> None:
    os.umask(UMASK)


def secure_tree(root: Path) -> int:
    """Remove the world's permissions from `root` and everything under it (symlinks are not
    followed); the number of entries changed."""
    changed = 0
    if not root.exists():
        return 0
    for path in (root, *root.rglob("*")):
        try:
            st = path.lstat()
        except (FileNotFoundError, PermissionError):  # removed meanwhile (a lock, a WAL file), or not ours to see
            continue
        if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            continue  # a socket's access is its directory's business (ca.hsm.service.bind)
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o007:
            try:
                os.chmod(path, mode & ~0o007)
            except FileNotFoundError:  # renamed or removed since the lstat: a CRL's partial file that
                continue  # another process (the scheduler, a CLI) just moved into place, say
            except PermissionError:  # another identity's file: its owner's start tightens it
                continue
            changed += 1
    return changed


def world_readable(root: Path) -> list[Path]:
    """Entries under `root` (itself included) that other users may read or enter."""
    found = []
    for path in (root, *root.rglob("*")):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o005:
            found.append(path)
    return found


def protect_data_dir(data_dir: Path) -> None:
    """What a process that writes under `data_dir` does first: umask 027, the directory made
    (0750) if missing, and the world's bits taken off whatever is already there."""
    restrict_new_files()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    changed = secure_tree(data_dir)
    if changed:
        log.warning("took read access for other users off %d entries under %s", changed, data_dir)
