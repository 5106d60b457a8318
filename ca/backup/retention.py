"""Which daily backups to remove: older than [backup] keep_days and never recorded as copied
to external media (those are the monthly copies: kept until an operator removes them)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

BACKUP_NAME_FORMAT = "%Y%m%dT%H%M%SZ"


def backups(root: Path) -> list[tuple[dt.datetime, Path]]:
    """The finished backups under `root`, oldest first (work in progress starts with a dot)."""
    found = []
    if root.is_dir():
        for path in root.iterdir():
            try:
                made = dt.datetime.strptime(path.name, BACKUP_NAME_FORMAT).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
            if path.is_dir():
                found.append((made, path))
    return sorted(found)


def expired(root: Path, now: dt.datetime, keep_days: int, offsite: set[str]) -> list[Path]:
    """Never the newest backup, whatever its age."""
    found = backups(root)
    limit = now - dt.timedelta(days=keep_days)
    return [path for made, path in found[:-1] if made < limit and path.name not in offsite]


def remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path)
