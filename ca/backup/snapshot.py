"""One backup: a consistent copy of the database and the files a restore needs (seed 004 5.4.5,
5.5.4, 5.5.7.2), with a manifest of SHA-256 digests.

What goes in, and why:
- the database: SQLite through its online backup API (a consistent copy while services write),
  PostgreSQL through `pg_dump --format=custom` (one snapshot transaction);
- the token store (softhsm2.conf, tokens/): the keys are encrypted under the user PIN, which
  only M key managers' shares rebuild; shares are never in a backup (demo-shares/ is left out);
- crls/ (the signed lists the archive refers to), ocsp/ and tls/ (responder key files and the
  RA's TLS key), tsa/, and the configuration file when there is one.
What stays out: the shares, the demo terminal's and verifier's credentials (they belong to
those parties), the LDAP directory (the publisher rebuilds it from the database), sockets,
locks and the backups themselves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ca.config import Settings
from ca.errors import RevocaError
from ca.storage import dumps

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE_DIR = "database"
FILES_DIR = "files"
# under the data directory: what a restore needs beside the database
KEPT = ("softhsm2.conf", "tokens", "crls", "ocsp", "tls", "tsa")
SKIPPED_SUFFIXES = (".lock", ".sock", ".lease")


@dataclasses.dataclass(frozen=True)
class Backup:
    path: Path
    created_at: dt.datetime
    files: int
    size: int
    digest: str  # SHA-256 of the manifest: names this backup in the audit log



def take(settings: Settings, config_path: str | None, root: Path, now: dt.datetime) -> Backup:
    """Write a new backup under `root`; its directory appears complete or not at all (written
    under a temporary name, renamed last)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)  # holds the token files and the RA's TLS key: root only
    name = now.strftime("%Y%m%dT%H%M%SZ")
    final = root / name
    if final.exists():
        raise RevocaError(f"a backup named {name} already exists in {root}")
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        (work / DATABASE_DIR).mkdir()
        database = _dump_database(settings, work / DATABASE_DIR)
        files = work / FILES_DIR
        files.mkdir()
        for entry in KEPT:
            source = _kept_path(settings, entry)
            if source.exists():
                _copy(source, files / entry)
        if config_path:
            shutil.copy2(config_path, files / "revoca.toml")
        digests = {str(p.relative_to(work)): sha256_of(p) for p in sorted(files_under(work))}
        manifest = {"format": FORMAT, "created_at": now.isoformat(), "database": database, "files": digests}
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        (work / MANIFEST).write_bytes(text)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    sizes = sum(p.stat().st_size for p in files_under(final))
    return Backup(final, now, len(digests), sizes, hashlib.sha256(text).hexdigest())


def _kept_path(settings: Settings, entry: str) -> Path:
    if entry == "softhsm2.conf":
        return settings.softhsm_conf
    if entry == "tokens":
        return settings.softhsm_conf.parent / "tokens"
    return settings.data_dir / entry


def _dump_database(settings: Settings, out: Path) -> dict[str, str]:
    path = dumps.dump(settings.db_url, out)
    return {"kind": dumps.kind(settings.db_url), "file": f"{DATABASE_DIR}/{path.name}"}


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True,
                        ignore=lambda _d, names: [n for n in names if n.endswith(SKIPPED_SUFFIXES)])
    else:
        shutil.copy2(source, target)


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != MANIFEST:
            yield path


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
