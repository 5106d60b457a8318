"""`revoca restore`: a verified backup onto a fresh machine (seed 004 5.7: recovery).

Only into an empty place: a data directory that is absent or empty and a database with no
tables, so a restore can never mix two installations or roll back a live one (which would
forget the revocations made since the backup).  The token store comes back as it was; its
keys open only when M key managers present their shares again, as after any start.  The LDAP
repository is not in a backup: the publisher republishes every CA's newest lists from the
restored database.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from ca.backup.snapshot import FILES_DIR
from ca.backup.verify import CheckerFactory, Verification, read_manifest, verify
from ca.config import Settings
from ca.errors import AlreadyExists, IntegrityFailure
from ca.storage import dumps


@dataclasses.dataclass(frozen=True)
class Restored:
    backup: str
    data_dir: Path
    database: str
    config_copy: Path | None


def restore(path: Path, settings: Settings, token_checker: CheckerFactory) -> tuple[Restored, Verification]:
    """Verify `path`, then lay it out under `settings` (data directory and database)."""
    manifest, _ = read_manifest(path)
    is_sqlite = dumps.kind(settings.db_url) == "sqlite"
    _refuse_unless_empty(settings)
    verification = verify(path, token_checker, None if is_sqlite else settings.db_url)
    if not verification.ok:
        raise IntegrityFailure(verification.line())
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True, mode=0o750)
    config_copy = None
    for entry in sorted((path / FILES_DIR).iterdir()):
        if entry.name == "revoca.toml":
            config_copy = data / "revoca.toml.from-backup"
            shutil.copy2(entry, config_copy)
        elif entry.name == "softhsm2.conf":
            continue  # rewritten below for this machine's paths
        elif entry.is_dir():
            shutil.copytree(entry, _target(settings, entry.name), symlinks=True)
        else:
            shutil.copy2(entry, _target(settings, entry.name))
    if (path / FILES_DIR / "softhsm2.conf").exists():
        from ca.hsm.token import write_softhsm_conf

        write_softhsm_conf(settings.softhsm_conf)  # tokendir: the restored tokens/ beside it
    dumps.restore(path / manifest["database"]["file"], settings.db_url)
    return Restored(path.name, data, dumps.shown(settings.db_url), config_copy), verification


def _target(settings: Settings, name: str) -> Path:
    if name == "tokens":
        return settings.softhsm_conf.parent / "tokens"
    return settings.data_dir / name


def _refuse_unless_empty(settings: Settings) -> None:
    data = settings.data_dir
    if data.exists() and any(p.name != "revoca.toml" for p in data.iterdir()):
        raise AlreadyExists(f"{data} is not empty: restore only into a new data directory "
                            "(a restore over a live installation would forget what happened since the backup)")
    if dumps.has_tables(settings.db_url):
        raise AlreadyExists(f"the database {dumps.shown(settings.db_url)} already has tables: restore only into an "
                            "empty database")
